"""The NetSuite sandbox over HTTP: record semantics, SuiteQL endpoint, governance, knobs, admin API."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from tests.sandbox import netsuite_fixtures
from tests.sandbox.netsuite_fixtures import ADMIN, admin, admin_response, error_detail, serve

from primebridge.sandbox.server import ThreadedServer

SO = "/services/rest/record/v1/salesOrder"
SUITEQL = "/services/rest/query/v1/suiteql"

server = serve(custom_fields=["custbody_pb_hold", "custbody_pb_amazon_order_id", "custcol_pb_amazon_line_id"])
ns = netsuite_fixtures.ns


@pytest.fixture()
def url(server: ThreadedServer) -> str:
    admin(server.url, "POST", "reset")
    admin(server.url, "PUT", "knobs", {"error_rate": 0, "throttle_rate": 0})
    admin(server.url, "PUT", "governance", {"concurrency_limit": 5, "gate_closed": False})
    admin(server.url, "PUT", "clock", {"now": "2025-03-01T12:00:00Z"})
    admin(server.url, "POST", "sales-orders", {
        "customer": {"name": "Ada", "email": "ada@example.com"}, "status": "A", "external_id": "BWP-1",
        "ship_method": "Prime", "shipping_address": {"addressee": "Ada", "addr1": "1 Main", "city": "Reno",
                                                     "zip": "89501", "country": "US"},
        "lines": [{"item": "SKU-1", "quantity": 2, "rate": "10", "location": "AMZ"},
                  {"item": "SKU-2", "quantity": 1, "rate": "5", "location": "AMZ"}]})
    return server.url


def _get(ns: httpx.Client, record_id: str = "1001") -> dict[str, Any]:
    response = ns.get(f"{SO}/{record_id}", params={"expandSubResources": "true"})
    assert response.status_code == 200, response.text
    return response.json()


# -- records -------------------------------------------------------------------------------------------


def test_get_shapes_refs_enums_and_eid_addressing(ns: httpx.Client, url: str) -> None:
    record = _get(ns)
    assert record["id"] == "1001" and record["tranId"] == "SO1001"
    assert record["entity"]["refName"] == "Ada" and record["entity"]["links"][0]["href"].startswith(url)
    assert record["status"] == {"id": "A", "refName": "Pending Approval"}
    assert record["currency"]["refName"] == "USA"  # a currency record's name is not its ISO code
    assert record["shippingAddress"]["country"] == {"id": "US", "refName": "United States"}
    assert record["lastModifiedDate"] == "2025-03-01T12:00:00Z"
    assert ns.get(f"{SO}/eid:BWP-1").json()["id"] == "1001"
    simple = ns.get("/services/rest/record/v1/salesorder/1001", params={"simpleEnumFormat": "true",
                                                                          "fields": "status,tranId"}).json()
    assert set(simple) == {"links", "status", "tranId"} and simple["status"] == "A"
    assert ns.get("/services/rest/record/v1/currency/1").json()["symbol"] == "USD"


def test_unknown_ids_and_types_are_404(ns: httpx.Client) -> None:
    missing = ns.get(f"{SO}/999")
    assert missing.status_code == 404 and error_detail(missing)["o:errorCode"] == "NONEXISTENT_ID"
    assert ns.get("/services/rest/record/v1/noSuchRecord/1").status_code == 404


def test_patch_merges_lines_stamps_user_and_time(ns: httpx.Client, url: str) -> None:
    admin_response(url, "PUT", "clock", {"advance_seconds": 30})
    response = ns.patch(f"{SO}/1001", json={
        "orderStatus": {"id": "B"}, "custbody_pb_hold": True,
        "item": {"items": [{"line": 2, "isclosed": True, "custcol_pb_amazon_line_id": "AL-2"},
                           {"item": {"id": _get(ns)["item"]["items"][0]["item"]["id"]}, "quantity": 4}]}},
        headers={"X-NetSuite-PropertyNameValidation": "error"})
    assert response.status_code == 204 and response.headers["location"].endswith(f"{SO}/1001")
    record = _get(ns)
    assert record["status"]["id"] == "B" and record["custbody_pb_hold"] is True
    lines = record["item"]["items"]
    assert [(ln["line"], ln["isClosed"], ln["quantity"]) for ln in lines] == [(1, False, 2), (2, True, 1),
                                                                              (3, False, 4)]
    assert lines[1]["custcol_pb_amazon_line_id"] == "AL-2"
    assert record["lastModifiedDate"] == "2025-03-01T12:00:30Z"
    assert admin_response(url, "GET", "sales-orders/1001").json()["_sandbox"]["lastModifiedBy"] == "7"


def test_patch_replace_and_null_sublist(ns: httpx.Client) -> None:
    assert ns.patch(f"{SO}/1001", params={"replace": "item"},
                    json={"item": {"items": [{"line": 2}]}}).status_code == 204
    assert [ln["line"] for ln in _get(ns)["item"]["items"]] == [2]
    assert ns.patch(f"{SO}/1001", json={"item": None}).status_code == 204
    assert _get(ns)["item"]["items"] == []


@pytest.mark.parametrize(("body", "code", "path"), [
    ({"status": {"id": "B"}}, "INVALID_CONTENT", "status"),
    ({"orderStatus": "Z"}, "INVALID_CONTENT", "orderStatus"),
    ({"item": {"items": [{"line": 9, "quantity": 1}]}}, "INVALID_CONTENT", "item.items[0].line"),
    ({"item": {"items": [{"line": 1, "quantity": 0}]}}, "INVALID_CONTENT", "item.items[0].quantity"),
    ({"item": {"items": [{"line": 1, "location": {"id": "999"}}]}}, "INVALID_CONTENT",
     "item.items[0].location"),
    ({"shipMethod": {"id": "nope"}}, "INVALID_CONTENT", "shipMethod"),
    ({"memmo": "typo"}, "INVALID_CONTENT", "memmo"),
    ({"custbody_not_defined": "x"}, "INVALID_CONTENT", "custbody_not_defined"),
])
def test_invalid_patches_are_400_with_path_and_change_nothing(ns: httpx.Client, body: dict[str, Any], code: str,
                                                              path: str) -> None:
    before = _get(ns)
    response = ns.patch(f"{SO}/1001", json={"memo": "changed", **body},
                        headers={"X-NetSuite-PropertyNameValidation": "error"})
    assert response.status_code == 400, response.text
    detail = error_detail(response)
    assert (detail["o:errorCode"], detail["o:errorPath"]) == (code, path)
    assert _get(ns) == before


def test_unknown_fields_are_only_a_warning_by_default(ns: httpx.Client) -> None:
    response = ns.patch(f"{SO}/1001", json={"memmo": "typo", "memo": "ok"})
    assert response.status_code == 204
    assert "memmo" in response.headers["x-netsuite-warning"]
    assert _get(ns)["memo"] == "ok"


def test_create_returns_204_with_an_absolute_location(ns: httpx.Client, url: str) -> None:
    base = _get(ns)
    body = {"entity": {"id": base["entity"]["id"]}, "externalId": "BWP-2",
            "item": {"items": [{"item": {"id": base["item"]["items"][0]["item"]["id"]}, "quantity": 1}]}}
    response = ns.post(SO, json=body)
    assert response.status_code == 204 and response.content == b""
    assert response.headers["location"] == f"{url}{SO}/1002"
    assert _get(ns, "1002")["status"]["id"] == "A"
    duplicate = ns.post(SO, json=body)
    assert duplicate.status_code == 400 and error_detail(duplicate)["o:errorPath"] == "externalId"
    no_lines = ns.post(SO, json={"entity": {"id": base["entity"]["id"]}})
    assert no_lines.status_code == 400 and error_detail(no_lines)["o:errorCode"] == "USER_ERROR"


def test_transform_needs_an_approved_order(ns: httpx.Client) -> None:
    refused = ns.post(f"{SO}/1001/!transform/itemFulfillment", json={})
    assert refused.status_code == 400 and "Pending Approval" in error_detail(refused)["detail"]
    ns.patch(f"{SO}/1001", json={"orderStatus": "B"}).raise_for_status()
    partial = ns.post(f"{SO}/1001/!transform/itemFulfillment", json={
        "item": {"items": [{"orderLine": 1, "quantity": 1}, {"orderLine": 2, "itemReceive": False}]}})
    assert partial.status_code == 204
    fulfillment = ns.get(partial.headers["location"], params={"expandSubResources": "true"}).json()
    assert [(ln["orderLine"], ln["quantity"]) for ln in fulfillment["item"]["items"]] == [(1, 1.0)]
    assert _get(ns)["status"]["id"] == "D"


# -- SuiteQL -------------------------------------------------------------------------------------------


def test_suiteql_requires_prefer_transient(ns: httpx.Client) -> None:
    response = ns.post(SUITEQL, json={"q": "SELECT id FROM transaction"})
    assert response.status_code == 400 and "Prefer: transient" in error_detail(response)["detail"]


def test_suiteql_paging_links_and_errors(ns: httpx.Client, url: str) -> None:
    for n in range(4):
        admin_response(url, "POST", "sales-orders", {"customer": f"C{n}", "lines": [{"item": "X", "quantity": 1}]})
    headers = {"Prefer": "transient"}
    query = {"q": "SELECT id FROM transaction WHERE id > ? ORDER BY id", "params": [1001]}
    page = ns.post(SUITEQL, params={"limit": 2, "offset": 2}, json=query, headers=headers).json()
    assert (page["count"], page["offset"], page["hasMore"], page["totalResults"]) == (2, 2, False, 4)
    assert [row["id"] for row in page["items"]] == ["1004", "1005"]
    assert {link["rel"] for link in page["links"]} == {"self", "first", "prev", "last"}
    first = ns.post(SUITEQL, params={"limit": 2, "offset": 0}, json=query, headers=headers).json()
    assert first["hasMore"] is True
    assert next(link for link in first["links"] if link["rel"] == "next")["href"].endswith("offset=2")
    misaligned = ns.post(SUITEQL, params={"limit": 2, "offset": 1}, json=query, headers=headers)
    assert misaligned.status_code == 400 and "multiple" in error_detail(misaligned)["detail"]
    too_big = ns.post(SUITEQL, params={"limit": 1001}, json=query, headers=headers)
    assert too_big.status_code == 400
    bad = ns.post(SUITEQL, json={"q": "SELECT id FROM transaction GROUP BY id"}, headers=headers)
    assert bad.status_code == 400 and "GROUP" in error_detail(bad)["detail"]


# -- governance, knobs and admin -----------------------------------------------------------------------


def test_concurrency_limit_answers_429(ns: httpx.Client, url: str) -> None:
    admin_response(url, "PUT", "governance", {"concurrency_limit": 1, "gate_closed": True})
    holder = threading.Thread(target=lambda: ADMIN.get(f"{url}{SO}/1001"))
    holder.start()
    try:
        deadline = time.monotonic() + 10
        while admin_response(url, "GET", "stats").json()["in_flight"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        blocked = ns.get(f"{SO}/1001")
    finally:
        admin_response(url, "PUT", "governance", {"gate_closed": False})
        holder.join()
    assert blocked.status_code == 429
    assert error_detail(blocked)["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"
    limits = ns.get("/services/rest/system/v1/governanceLimits").json()
    assert limits["accountConcurrencyLimit"] == 1


def test_fault_knobs_use_netsuite_error_shapes(ns: httpx.Client, url: str) -> None:
    admin_response(url, "PUT", "knobs", {"error_rate": 1.0})
    failed = ns.get(f"{SO}/1001")
    assert failed.status_code == 500 and error_detail(failed)["o:errorCode"] == "UNEXPECTED_ERROR"
    admin_response(url, "PUT", "knobs", {"error_rate": 0, "throttle_rate": 1.0, "retry_after_seconds": 3})
    throttled = ns.get(f"{SO}/1001")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "3"
    assert admin_response(url, "GET", "sales-orders/1001").status_code == 200  # admin API is never faulted


def test_admin_seed_validation_change_list_and_reset(url: str) -> None:
    bad = admin_response(url, "POST", "sales-orders", {"customer": "X", "lines": [{"item": "A", "qty": 1}]})
    assert bad.status_code == 400 and "qty" in bad.json()["error"]
    assert admin_response(url, "POST", "sales-orders", {"customer": "X", "lines": []}).status_code == 400
    admin_response(url, "PUT", "clock", {"advance_seconds": 60})
    changed = admin_response(url, "PATCH", "sales-orders/1001", {"status": "B", "lines": [{"line": 2, "closed": True}]})
    assert changed.status_code == 200
    view = changed.json()
    assert view["status"]["id"] == "B" and view["_sandbox"]["lastModifiedBy"] == "3"
    assert view["lastModifiedDate"] == "2025-03-01T12:01:00Z"
    assert admin_response(url, "PATCH", "sales-orders/1001", {"lines": [{"line": 7}]}).status_code == 400
    refused = admin_response(url, "PATCH", "sales-orders/1001", {"memo": "half", "bogus": 1})
    assert refused.status_code == 400 and "bogus" in refused.json()["error"]
    assert "memo" not in admin_response(url, "GET", "sales-orders/1001").json()  # a refused change changes nothing
    assert len(admin_response(url, "GET", "sales-orders").json()["items"]) == 1
    assert admin_response(url, "GET", "sales-orders/5").status_code == 404
    admin_response(url, "POST", "reset")
    assert admin_response(url, "GET", "sales-orders").json()["items"] == []
    assert admin_response(url, "GET", "stats").json()["requests"] == 0
