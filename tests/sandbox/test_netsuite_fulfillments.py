"""The NetSuite sandbox's item fulfillments over HTTP: the SO → IF transform and its checks, GET and
PATCH of itemFulfillment, closing and lowering sales-order lines, SuiteQL on fulfillments, admin views."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.sandbox import netsuite_fixtures
from tests.sandbox.netsuite_fixtures import ADMIN, admin, error_detail, serve

from primebridge.sandbox.server import ThreadedServer

SO = "/services/rest/record/v1/salesOrder"
IF = "/services/rest/record/v1/itemFulfillment"
SUITEQL = "/services/rest/query/v1/suiteql"
PKG = "custbody_pb_amazon_package_id"
STRICT = {"X-NetSuite-PropertyNameValidation": "error"}

server = serve(custom_fields=[PKG, "custbody_pb_carrier", "custcol_pb_amazon_line_id"])
ns = netsuite_fixtures.ns


@pytest.fixture()
def url(server: ThreadedServer) -> str:
    admin(server.url, "POST", "reset")
    admin(server.url, "PUT", "clock", {"now": "2025-03-01T12:00:00Z"})
    admin(server.url, "POST", "sales-orders", {
        "customer": "Ada", "status": "B",
        "lines": [{"item": "SKU-1", "quantity": 3, "rate": "10", "location": "AMZ"},
                  {"item": "SKU-2", "quantity": 1, "rate": "5", "location": "AMZ"},
                  {"item": "SKU-3", "quantity": 1, "rate": "5", "closed": True}]})
    return server.url


def _transform(ns: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return ns.post(f"{SO}/1001/!transform/itemFulfillment", json=body, headers=headers)


def _lines(*rows: tuple[int, bool, int | None]) -> dict[str, Any]:
    return {"items": [{"orderLine": n, "itemReceive": r, **({"quantity": q} if q is not None else {})}
                      for n, r, q in rows]}


def _fulfilled(ns: httpx.Client) -> list[float]:
    order = ns.get(f"{SO}/1001", params={"expandSubResources": "true"}).json()
    return [line["quantityFulfilled"] for line in order["item"]["items"]]


def test_transform_creates_the_record_with_packages_and_custom_fields(ns: httpx.Client, url: str) -> None:
    response = _transform(ns, {"shipStatus": {"id": "C"}, "externalId": "PB-PKG-1", PKG: "PKG-1",
                               "custbody_pb_carrier": "ups", "item": _lines((1, True, 2), (2, False, None)),
                               "package": {"items": [{"packageTrackingNumber": "1Z1", "packageWeight": 1.2}]}},
                          **STRICT)
    assert response.status_code == 204 and response.content == b""
    assert response.headers["location"] == f"{url}{IF}/1002"
    ful = ns.get(f"{IF}/1002", params={"expandSubResources": "true"}).json()
    assert (ful["tranId"], ful["createdFrom"]["id"], ful["shipStatus"]) == \
        ("IF1002", "1001", {"id": "C", "refName": "Shipped"})
    assert (ful[PKG], ful["custbody_pb_carrier"], ful["externalId"]) == ("PKG-1", "ups", "PB-PKG-1")
    assert [(ln["orderLine"], ln["quantity"], ln["location"]["refName"]) for ln in ful["item"]["items"]] == \
        [(1, 2.0, "AMZ")]
    assert ful["package"]["items"] == [{"packageTrackingNumber": "1Z1", "packageWeight": 1.2}]
    assert ns.get(f"{IF}/eid:PB-PKG-1").json()["id"] == "1002"
    assert set(ns.get(f"{IF}/1002").json()["package"]) == {"links"}  # sublists are links unless expanded
    assert _fulfilled(ns) == [2.0, 0.0, 0.0]


def test_transform_fulfils_unmentioned_open_lines_in_full(ns: httpx.Client) -> None:
    assert _transform(ns, {"item": _lines((1, True, 1))}).status_code == 204
    assert _fulfilled(ns) == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(("item", "path", "words"), [
    (_lines((1, True, 4)), "item.items[0].quantity", "at most 3 of line 1; 4 was entered"),
    (_lines((1, True, 0)), "item.items[0].quantity", "Invalid Field Value 0"),
    (_lines((3, True, 1)), "item.items[0].orderLine", "Line 3 of sales order 1001 is closed"),
    (_lines((9, True, 1)), "item.items[0].orderLine", "Line 9 of sales order 1001 does not exist"),
    (_lines((1, True, 1), (1, True, 1)), "item.items[1].orderLine", "listed twice"),
    ({"items": [{"orderLine": 1, "itemReceive": "yes"}]}, "item.items[0].itemReceive", "Invalid Field Value"),
])
def test_transform_validates_lines_and_changes_nothing(ns: httpx.Client, item: Any, path: str, words: str) -> None:
    response = _transform(ns, {"item": item})
    assert response.status_code == 400
    detail = error_detail(response)
    assert (detail["o:errorCode"], detail["o:errorPath"]) == ("INVALID_CONTENT", path)
    assert words in detail["detail"]
    assert _fulfilled(ns) == [0.0, 0.0, 0.0]


def test_transform_checks_remaining_after_earlier_fulfillments(ns: httpx.Client) -> None:
    assert _transform(ns, {"item": _lines((1, True, 2), (2, False, None))}).status_code == 204
    again = _transform(ns, {"item": _lines((1, True, 2), (2, False, None))})
    assert again.status_code == 400 and "at most 1 of line 1; 2 was entered" in error_detail(again)["detail"]
    assert _transform(ns, {"item": _lines((1, True, 1), (2, True, None))}).status_code == 204
    done = _transform(ns, {})
    assert done.status_code == 400 and "cannot be fulfilled" in error_detail(done)["detail"]  # status F now


def test_transform_property_validation_and_duplicate_external_id(ns: httpx.Client) -> None:
    strict = _transform(ns, {"custbody_typo": "x", "item": _lines((1, True, 1))}, **STRICT)
    assert strict.status_code == 400 and error_detail(strict)["o:errorPath"] == "custbody_typo"
    lenient = _transform(ns, {"custbody_typo": "x", "externalId": "E-1", "item": _lines((1, True, 1))})
    assert lenient.status_code == 204 and "custbody_typo" in lenient.headers["x-netsuite-warning"]
    duplicate = _transform(ns, {"externalId": "E-1", "item": _lines((1, True, 1))})
    assert duplicate.status_code == 400
    detail = error_detail(duplicate)
    assert (detail["o:errorCode"], detail["o:errorPath"]) == ("DUP_RCRD", "externalId")
    read_only = _transform(ns, {"tranId": "X"})
    assert read_only.status_code == 400 and "read-only" in error_detail(read_only)["detail"]
    assert _fulfilled(ns) == [1.0, 1.0, 0.0]


def test_patch_fulfillment_fields_and_packages(ns: httpx.Client) -> None:
    _transform(ns, {"shipStatus": "B", "item": _lines((1, True, 1)),
                    "package": {"items": [{"packageTrackingNumber": "A"}]}}).raise_for_status()
    ns.patch(f"{IF}/1002", json={"shipStatus": {"id": "C"}, PKG: "P-9", "memo": "m",
                                 "package": {"items": [{"packageTrackingNumber": "B"}]}},
             headers=STRICT).raise_for_status()
    ful = ns.get(f"{IF}/1002", params={"expandSubResources": "true"}).json()
    assert (ful["shipStatus"]["id"], ful[PKG], ful["memo"]) == ("C", "P-9", "m")
    assert [p["packageTrackingNumber"] for p in ful["package"]["items"]] == ["A", "B"]  # non-keyed: appended
    ns.patch(f"{IF}/1002", params={"replace": "package"},
             json={"package": {"items": [{"packageTrackingNumber": "C"}]}, PKG: None}).raise_for_status()
    ful = ns.get(f"{IF}/1002", params={"expandSubResources": "true"}).json()
    assert [p["packageTrackingNumber"] for p in ful["package"]["items"]] == ["C"] and PKG not in ful


@pytest.mark.parametrize(("body", "params", "status", "code"), [
    ({"item": {"items": []}}, {}, 400, "INVALID_REQUEST"),
    ({"createdFrom": {"id": "1"}}, {}, 400, "INVALID_CONTENT"),
    ({"shipStatus": {"id": "Q"}}, {}, 400, "INVALID_CONTENT"),
    ({"package": {"items": [{"packageWeight": -1}]}}, {}, 400, "INVALID_CONTENT"),
    ({"package": {"items": [{"packageColour": "red"}]}}, {}, 400, "INVALID_CONTENT"),
    ({"memo": "x"}, {"replace": "item"}, 400, "INVALID_REQUEST"),
])
def test_patch_fulfillment_refusals_change_nothing(ns: httpx.Client, body: dict[str, Any], params: dict[str, str],
                                                   status: int, code: str) -> None:
    _transform(ns, {"item": _lines((1, True, 1)), PKG: "P-1"}).raise_for_status()
    before = ns.get(f"{IF}/1002", params={"expandSubResources": "true"}).json()
    response = ns.patch(f"{IF}/1002", json=body, params=params, headers=STRICT)
    assert response.status_code == status and error_detail(response)["o:errorCode"] == code
    assert ns.get(f"{IF}/1002", params={"expandSubResources": "true"}).json() == before


def test_unknown_fulfillment_is_404(ns: httpx.Client) -> None:
    for response in (ns.get(f"{IF}/4242"), ns.patch(f"{IF}/4242", json={"memo": "x"}), ns.get(f"{IF}/eid:nope")):
        assert response.status_code == 404 and error_detail(response)["o:errorCode"] == "NONEXISTENT_ID"


# -- sales-order lines: close and lower ----------------------------------------------------------------


def _so_lines(ns: httpx.Client) -> list[tuple[float, bool]]:
    order = ns.get(f"{SO}/1001", params={"expandSubResources": "true"}).json()
    return [(line["quantity"], line["isClosed"]) for line in order["item"]["items"]]


def test_close_and_lower_lines_with_fulfilled_quantities_respected(ns: httpx.Client) -> None:
    _transform(ns, {"item": _lines((1, True, 1), (2, False, None))}).raise_for_status()
    lowered_too_far = ns.patch(f"{SO}/1001", json={"item": {"items": [{"line": 2, "isClosed": True},
                                                                      {"line": 1, "quantity": 0.5}]}})
    assert lowered_too_far.status_code == 400
    detail = error_detail(lowered_too_far)
    assert (detail["o:errorCode"], detail["o:errorPath"]) == ("USER_ERROR", "item.items[1].quantity")
    assert "cannot lower the quantity of line 1 to 0.5: 1 have been fulfilled" in detail["detail"]
    assert _so_lines(ns) == [(3.0, False), (1.0, False), (1.0, True)]  # the whole PATCH was refused
    ns.patch(f"{SO}/1001", json={"item": {"items": [{"line": 2, "isClosed": True},
                                                    {"line": 1, "quantity": 1}]}}).raise_for_status()
    assert _so_lines(ns) == [(1.0, False), (1.0, True), (1.0, True)]
    order = ns.get(f"{SO}/1001").json()
    assert (order["status"]["id"], order["total"]) == ("F", 10.0)
    removed = ns.patch(f"{SO}/1001", params={"replace": "item"}, json={"item": {"items": [{"line": 2}]}})
    assert removed.status_code == 400 and "Line 1 has been fulfilled" in error_detail(removed)["detail"]


def test_closing_a_partly_fulfilled_line_is_allowed(ns: httpx.Client) -> None:
    _transform(ns, {"item": _lines((1, True, 1), (2, False, None))}).raise_for_status()
    ns.patch(f"{SO}/1001", json={"item": {"items": [{"line": 1, "isClosed": True}]}}).raise_for_status()
    assert _so_lines(ns)[0] == (3.0, True)
    refused = _transform(ns, {"item": _lines((1, True, 1))})
    assert refused.status_code == 400 and "is closed" in error_detail(refused)["detail"]


# -- SuiteQL and admin ---------------------------------------------------------------------------------


def test_suiteql_finds_fulfillments_by_package_field(ns: httpx.Client) -> None:
    _transform(ns, {"item": _lines((1, True, 1)), PKG: "P-1"}).raise_for_status()
    _transform(ns, {"item": _lines((1, True, 1)), PKG: "P-2"}).raise_for_status()
    query = {"q": f"SELECT t.id AS id, t.status AS status, t.createdfrom AS so FROM transaction t "
                  f"WHERE t.type = 'ItemShip' AND t.{PKG} = ? ORDER BY t.id", "params": ["P-2"]}
    page = ns.post(SUITEQL, json=query, headers={"Prefer": "transient"}).json()
    assert [(r["id"], r["status"], r["so"]) for r in page["items"]] == [("1003", "C", "1001")]
    query["params"] = ["nope"]
    assert ns.post(SUITEQL, json=query, headers={"Prefer": "transient"}).json()["items"] == []
    orders = {"q": f"SELECT id FROM transaction WHERE type = 'SalesOrd' AND {PKG} IS NULL"}
    assert [r["id"] for r in ns.post(SUITEQL, json=orders, headers={"Prefer": "transient"}).json()["items"]] == \
        ["1001"]


def test_admin_lists_and_shows_fulfillments(ns: httpx.Client, url: str) -> None:
    _transform(ns, {"item": _lines((1, True, 1)), PKG: "P-1"}).raise_for_status()
    ADMIN.post(f"{url}/_sandbox/sales-orders", json={"customer": "Bob", "lines": [{"item": "X", "quantity": 1}]})
    ns.post(f"{SO}/1003/!transform/itemFulfillment", json={}).raise_for_status()
    everything = ADMIN.get(f"{url}/_sandbox/item-fulfillments").json()["items"]
    assert [(f["id"], f["createdFrom"]["id"]) for f in everything] == [("1002", "1001"), ("1004", "1003")]
    mine = ADMIN.get(f"{url}/_sandbox/item-fulfillments", params={"sales_order": "1001"}).json()["items"]
    assert [f[PKG] for f in mine] == ["P-1"] and mine[0]["_sandbox"]["lastModifiedBy"] == "7"
    one = ADMIN.get(f"{url}/_sandbox/item-fulfillments/1004").json()
    assert one["item"]["items"][0]["quantity"] == 1.0
    assert ADMIN.get(f"{url}/_sandbox/item-fulfillments/9").status_code == 404
    stats = ADMIN.get(f"{url}/_sandbox/stats").json()
    assert stats["fulfillments"] == 2 and stats["operations"]["transform salesOrder"] == 2
