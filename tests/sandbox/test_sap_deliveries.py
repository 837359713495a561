"""The SAP sandbox's outbound delivery service (API_OUTBOUND_DELIVERY_SRV;v=0002) at the protocol level:
creation with reference to sales order items, CSRF, ETags, goods issue, texts, and the effect of deliveries
on the sales order items (open quantity, rejection, quantity changes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.sandbox import sap_fixtures
from tests.sandbox.sap_fixtures import SERVICE, sample_order, seed

from primebridge.sandbox.sap.deliveries import DELIVERY_SERVICE_PATH
from primebridge.sandbox.server import ThreadedServer

sap_server = sap_fixtures.sap_server
admin = sap_fixtures.admin


def _session(base: str, path: str) -> httpx.Client:
    client = httpx.Client(base_url=base + path, auth=("bridge", "s3cret"),
                          headers={"Accept": "application/json"}, timeout=10)
    response = client.get("/", headers={"X-CSRF-Token": "Fetch"})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.headers["x-csrf-token"]
    return client


@pytest.fixture()
def odata(sap_server: ThreadedServer, admin: httpx.Client) -> Iterator[httpx.Client]:
    """A delivery-service client that did the CSRF handshake (token + session cookie)."""
    client = _session(sap_server.url, DELIVERY_SERVICE_PATH)
    yield client
    client.close()


@pytest.fixture()
def orders(sap_server: ThreadedServer, admin: httpx.Client) -> Iterator[httpx.Client]:
    client = _session(sap_server.url, SERVICE)
    yield client
    client.close()


def _body(order_id: str, *items: tuple[str, str], texts: dict[str, str] | None = None,
          **header: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**header, "to_DeliveryDocumentItem": {"results": [
        {"ReferenceSDDocument": order_id, "ReferenceSDDocumentItem": item, "ActualDeliveryQuantity": qty,
         "DeliveryQuantityUnit": "PC"} for item, qty in items]}}
    if texts:
        body["to_DeliveryDocumentText"] = {"results": [
            {"TextElement": tid, "Language": "EN", "TextElementText": text} for tid, text in texts.items()]}
    return body


def _create(odata: httpx.Client, order_id: str, *items: tuple[str, str], **kw: Any) -> dict[str, Any]:
    response = odata.post("/A_OutbDeliveryHeader", json=_body(order_id, *items, **kw))
    assert response.status_code == 201, response.text
    return dict(response.json()["d"])


def _order_item(admin: httpx.Client, order_id: str, item: str) -> dict[str, Any]:
    view = admin.get(f"/_sandbox/sales-orders/{order_id}").json()
    return next(i for i in view["items"] if i["SalesOrderItem"] == item)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["message"]["value"])


# -- creation with reference ----------------------------------------------------------------------

def test_create_with_reference_derives_the_delivery_from_the_order(odata: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    created = _create(odata, order_id, ("10", "1"), ("20", "1"), texts={"Z101": "pkg-1"})

    doc = created["DeliveryDocument"]
    assert created["__metadata"]["etag"] == "W/\"'0001'\""
    assert created["__metadata"]["type"] == "API_OUTBOUND_DELIVERY_SRV.A_OutbDeliveryHeaderType"
    assert (created["DeliveryDocumentType"], created["SDDocumentCategory"], created["SoldToParty"]) == (
        "LF", "J", "1000001")
    assert created["OverallGoodsMovementStatus"] == "A"
    items = created["to_DeliveryDocumentItem"]["results"]
    assert [(i["DeliveryDocumentItem"], i["ReferenceSDDocumentItem"], i["Material"], i["Plant"],
             i["ActualDeliveryQuantity"]) for i in items] == [("10", "10", "SKU-1", "1010", "1"),
                                                             ("20", "20", "SKU-2", "2000", "1")]
    assert [t["TextElementText"] for t in created["to_DeliveryDocumentText"]["results"]] == ["pkg-1"]

    # The order items show what was delivered: item 10 in part (1 of 2), item 20 completely.
    assert _order_item(admin, order_id, "10")["DeliveryStatus"] == "B"
    assert _order_item(admin, order_id, "20")["DeliveryStatus"] == "C"
    assert admin.get(f"/_sandbox/sales-orders/{order_id}").json()["OverallDeliveryStatus"] == "B"

    listed = admin.get("/_sandbox/deliveries", params={"order": order_id}).json()["deliveries"]
    assert [(d["DeliveryDocument"], d["orders"], d["texts"]) for d in listed] == [(doc, [order_id], {"Z101": "pkg-1"})]
    found = odata.get("/A_OutbDeliveryItem", params={"$filter": f"ReferenceSDDocument eq '{order_id}'",
                                                     "$select": "DeliveryDocument"}).json()["d"]["results"]
    assert [r["DeliveryDocument"] for r in found] == [doc, doc]


def test_quantity_beyond_the_open_quantity_is_refused_and_nothing_is_written(odata: httpx.Client,
                                                                             admin: httpx.Client) -> None:
    order_id = seed(admin)
    _create(odata, order_id, ("10", "1"))
    message = _error(odata.post("/A_OutbDeliveryHeader", json=_body(order_id, ("10", "2"))), 400)
    assert "exceeds the open quantity 1" in message
    # The same item twice in one request counts twice.
    message = _error(odata.post("/A_OutbDeliveryHeader", json=_body(order_id, ("10", "1"), ("10", "1"))), 400)
    assert "exceeds the open quantity 0" in message
    assert len(admin.get("/_sandbox/deliveries").json()["deliveries"]) == 1
    _create(odata, order_id, ("10", "1"))
    assert _order_item(admin, order_id, "10")["DeliveryStatus"] == "C"
    message = _error(odata.post("/A_OutbDeliveryHeader", json=_body(order_id, ("10", "1"))), 400)
    assert "exceeds the open quantity 0" in message


@pytest.mark.parametrize(("body", "expected"), [
    (lambda o: _body(o, ("30", "1")), "is rejected (reason Z1)"),
    (lambda o: _body(o, ("90", "1")), "Item 90 of sales document"),
    (lambda o: _body("999999", ("10", "1")), "Sales document 999999 does not exist"),
    (lambda o: _body(o, ("10", "0")), "must be positive"),
    (lambda o: _body(o, ("10", "1"), BillOfLading="1Z"), "BillOfLading of A_OutbDeliveryHeaderType cannot be set"),
    (lambda o: _body(o, ("10", "1"), Foo="x"), "Property 'Foo' is invalid"),
    (lambda o: {"to_DeliveryDocumentItem": []}, "at least one item"),
    (lambda o: {**_body(o, ("10", "1")), "to_DeliveryDocumentItem": {"results": [
        {"ReferenceSDDocument": o, "ReferenceSDDocumentItem": "10", "ActualDeliveryQuantity": "1",
         "DeliveryQuantityUnit": "KG"}]}}, "differs from the order item's unit PC"),
])
def test_invalid_creates_get_sap_errors(odata: httpx.Client, admin: httpx.Client, body: Any, expected: str) -> None:
    order_id = seed(admin)
    response = odata.post("/A_OutbDeliveryHeader", json=body(order_id))
    assert expected in _error(response, 400)
    assert response.json()["error"]["innererror"]["errordetails"][0]["severity"] == "error"
    assert admin.get("/_sandbox/deliveries").json()["deliveries"] == []


def test_items_are_only_created_with_their_delivery(odata: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    response = odata.post("/A_OutbDeliveryItem", json={"ReferenceSDDocument": order_id,
                                                       "ReferenceSDDocumentItem": "10"})
    assert "not creatable" in _error(response, 405)


def test_writes_need_the_csrf_token_and_reads_need_a_login(sap_server: ThreadedServer, admin: httpx.Client) -> None:
    order_id = seed(admin)
    with httpx.Client(base_url=sap_server.url + DELIVERY_SERVICE_PATH, auth=("bridge", "s3cret"),
                      headers={"Accept": "application/json"}) as client:
        response = client.post("/A_OutbDeliveryHeader", json=_body(order_id, ("10", "1")))
        assert response.status_code == 403 and response.headers["x-csrf-token"] == "Required"
    with httpx.Client(base_url=sap_server.url + DELIVERY_SERVICE_PATH, auth=("bridge", "wrong")) as client:
        assert client.get("/A_OutbDeliveryHeader").status_code == 401
    assert admin.get("/_sandbox/deliveries").json()["deliveries"] == []


# -- ETags, goods issue, texts ---------------------------------------------------------------------

def test_header_changes_need_the_current_etag(odata: httpx.Client, admin: httpx.Client) -> None:
    doc = _create(odata, seed(admin), ("10", "1"))["DeliveryDocument"]
    path = f"/A_OutbDeliveryHeader('{doc}')"
    assert _error(odata.patch(path, json={"BillOfLading": "1Z1"}), 428)
    stale = {"If-Match": "W/\"'0009'\""}
    assert "ETag mismatch" in _error(odata.patch(path, json={"BillOfLading": "1Z1"}, headers=stale), 412)
    current = odata.get(path).headers["etag"]
    assert odata.patch(path, json={"BillOfLading": "1Z1"}, headers={"If-Match": current}).status_code == 204
    header = odata.get(path).json()["d"]
    assert (header["BillOfLading"], header["__metadata"]["etag"]) == ("1Z1", "W/\"'0002'\"")
    assert _error(odata.patch(path, json={"BillOfLading": "1Z2"}, headers={"If-Match": current}), 412)
    response = odata.patch(path, json={"DeliveryDate": "/Date(1924992000000)/"}, headers={"If-Match": "*"})
    assert response.status_code == 204
    assert odata.get(path).json()["d"]["DeliveryDate"] == "/Date(1924992000000)/"
    assert "read-only" in _error(odata.patch(path, json={"SoldToParty": "X"}, headers={"If-Match": "*"}), 400)


def test_post_goods_issue_needs_if_match_and_happens_once(odata: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    doc = _create(odata, order_id, ("10", "2"))["DeliveryDocument"]
    params = {"DeliveryDocument": f"'{doc}'"}
    assert _error(odata.post("/PostGoodsIssue", params=params), 428)
    assert odata.get("/PostGoodsIssue", params=params).status_code == 405
    response = odata.post("/PostGoodsIssue", params=params, headers={"If-Match": "W/\"'0001'\""})
    assert response.status_code == 200, response.text
    report = response.json()["d"]["results"]
    assert [(r["DeliveryDocument"], r["Material"], r["ActualDeliveryQuantity"], r["SystemMessageType"])
            for r in report] == [(doc, "SKU-1", "2", "S")]

    header = odata.get(f"/A_OutbDeliveryHeader('{doc}')", params={"$expand": "to_DeliveryDocumentItem"}).json()["d"]
    assert header["OverallGoodsMovementStatus"] == "C" and header["ActualGoodsMovementDate"]
    assert header["__metadata"]["etag"] == "W/\"'0002'\""
    assert [i["GoodsMovementStatus"] for i in header["to_DeliveryDocumentItem"]["results"]] == ["C"]
    movements = admin.get("/_sandbox/goods-movements").json()["goods_movements"]
    assert [(m["delivery"], m["material"], m["quantity"], m["movement_type"]) for m in movements] == [
        (doc, "SKU-1", "2", "601")]

    assert "already been posted" in _error(odata.post("/PostGoodsIssue", params=params, headers={"If-Match": "*"}),
                                           400)
    path = f"/A_OutbDeliveryHeader('{doc}')"
    assert "already been posted" in _error(odata.patch(path, json={"BillOfLading": "1Z"}, headers={"If-Match": "*"}),
                                           400)
    assert "cannot be deleted" in _error(odata.delete(path, headers={"If-Match": "*"}), 400)
    # Texts stay changeable after goods issue.
    text = {"DeliveryDocument": doc, "TextElement": "Z104", "Language": "EN", "TextElementText": "Delivered"}
    assert odata.post("/A_OutbDeliveryHeaderText", json=text).status_code == 201
    assert "does not exist" in _error(odata.post("/PostGoodsIssue", params={"DeliveryDocument": "'1'"},
                                                 headers={"If-Match": "*"}), 400)
    assert _error(odata.post("/PostGoodsIssue", params={"Delivery": f"'{doc}'"}, headers={"If-Match": "*"}), 400)
    assert _error(odata.post("/ReverseGoodsIssue", params=params, headers={"If-Match": "*"}), 501)


def test_texts_are_written_by_key_and_read_through_the_header(odata: httpx.Client, admin: httpx.Client) -> None:
    doc = _create(odata, seed(admin), ("10", "1"), texts={"Z101": "pkg-1"})["DeliveryDocument"]
    via_nav = odata.post(f"/A_OutbDeliveryHeader('{doc}')/to_DeliveryDocumentText",
                         json={"TextElement": "Z102", "Language": "EN", "TextElementText": "Carrier: UPS"})
    assert via_nav.status_code == 201, via_nav.text
    duplicate = {"DeliveryDocument": doc, "TextElement": "Z102", "Language": "EN", "TextElementText": "again"}
    assert "already exists" in _error(odata.post("/A_OutbDeliveryHeaderText", json=duplicate), 400)
    key = f"/A_OutbDeliveryHeaderText(DeliveryDocument='{doc}',TextElement='Z102',Language='EN')"
    assert odata.patch(key, json={"TextElementText": "Carrier: DHL"}).status_code == 204  # texts carry no ETag
    assert "not addressable" in _error(odata.get("/A_OutbDeliveryHeaderText"), 400)
    assert "not addressable" in _error(odata.get(key), 400)
    texts = odata.get(f"/A_OutbDeliveryHeader('{doc}')/to_DeliveryDocumentText").json()["d"]["results"]
    assert {t["TextElement"]: t["TextElementText"] for t in texts} == {"Z101": "pkg-1", "Z102": "Carrier: DHL"}
    # Texts do not move the header's version.
    assert odata.get(f"/A_OutbDeliveryHeader('{doc}')").headers["etag"] == "W/\"'0001'\""
    assert odata.delete(key).status_code == 204
    assert _error(odata.get("/A_OutbDeliveryItem", params={"$filter": "Foo eq 'x'"}), 400)


def test_collection_query_options(odata: httpx.Client, admin: httpx.Client) -> None:
    first, second = seed(admin), seed(admin)
    docs = [_create(odata, order, (item, "1"))["DeliveryDocument"]
            for order, item in ((first, "10"), (second, "20"), (first, "10"))]
    both = f"DeliveryDocument eq '{docs[0]}' or DeliveryDocument eq '{docs[2]}'"
    data = odata.get("/A_OutbDeliveryHeader", params={"$filter": both, "$expand": "to_DeliveryDocumentText",
                                                      "$inlinecount": "allpages"}).json()["d"]
    assert [d["DeliveryDocument"] for d in data["results"]] == [docs[0], docs[2]] and data["__count"] == "2"
    assert data["results"][0]["to_DeliveryDocumentText"] == {"results": []}
    data = odata.get("/A_OutbDeliveryHeader", params={"$top": "1", "$skip": "1", "$select": "DeliveryDocument"}).json()
    assert data["d"]["results"] == [{"__metadata": data["d"]["results"][0]["__metadata"], "DeliveryDocument": docs[1]}]
    assert "not found" in _error(odata.get("/A_OutbDeliveryHeader", params={"$expand": "to_Foo"}), 400)
    assert _error(odata.get("/A_OutbDeliveryPartner"), 404)


# -- the sales order side ----------------------------------------------------------------------------

def test_order_item_rejection_and_quantity_respect_deliveries(odata: httpx.Client, orders: httpx.Client,
                                                              admin: httpx.Client) -> None:
    order_id = seed(admin)
    doc = _create(odata, order_id, ("10", "1"))["DeliveryDocument"]
    item = f"/A_SalesOrderItem(SalesOrder='{order_id}',SalesOrderItem='10')"
    assert "less than the quantity already delivered" in _error(orders.patch(item, json={"RequestedQuantity": "0.5"}),
                                                                400)
    assert orders.patch(item, json={"RequestedQuantity": "1"}).status_code == 204
    assert _order_item(admin, order_id, "10")["DeliveryStatus"] == "C"
    assert "subsequent documents" in _error(orders.delete(item), 400)
    assert "subsequent documents" in _error(orders.delete(f"/A_SalesOrder('{order_id}')",
                                                          headers={"If-Match": "*"}), 400)

    other = f"/A_SalesOrderItem(SalesOrder='{order_id}',SalesOrderItem='20')"
    assert orders.patch(other, json={"SalesDocumentRjcnReason": "Z2"}).status_code == 204
    assert "is rejected (reason Z2)" in _error(odata.post("/A_OutbDeliveryHeader",
                                                          json=_body(order_id, ("20", "1"))), 400)

    # Deleting the (not yet goods-issued) delivery gives the quantity back.
    path = f"/A_OutbDeliveryHeader('{doc}')"
    assert odata.delete(path, headers={"If-Match": "W/\"'0001'\""}).status_code == 204
    assert _order_item(admin, order_id, "10")["DeliveryStatus"] == "A"
    assert orders.patch(item, json={"RequestedQuantity": "0.5"}).status_code == 204


def test_admin_changes_and_reset(odata: httpx.Client, admin: httpx.Client) -> None:
    doc = _create(odata, seed(admin, sample_order()), ("10", "1"))["DeliveryDocument"]
    view = admin.patch(f"/_sandbox/deliveries/{doc}", json={"fields": {"BillOfLading": "USER"},
                                                            "goods_issue": True}).json()
    assert (view["BillOfLading"], view["goods_issued"], view["etag"]) == ("USER", True, "W/\"'0003'\"")
    assert admin.patch(f"/_sandbox/deliveries/{doc}", json={"oops": 1}).status_code == 400
    assert admin.get("/_sandbox/deliveries/1").status_code == 404
    assert admin.post("/_sandbox/reset").status_code == 200
    assert admin.get("/_sandbox/deliveries").json()["deliveries"] == []
    assert admin.get("/_sandbox/goods-movements").json()["goods_movements"] == []
