"""The SAP sandbox speaks OData V2 the way SAP Gateway does (checked at the HTTP level)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.sandbox import sap_fixtures
from tests.sandbox.sap_fixtures import SERVICE, raw_client, sample_order, seed

from primebridge.sandbox.sap import create_app
from primebridge.sandbox.server import ThreadedServer

# The shared fixtures (a conftest would be the usual home; these are re-exported by name).
sap_server = sap_fixtures.sap_server
admin = sap_fixtures.admin
track = sap_fixtures.track

DTO = re.compile(r"^/Date\(\d+\+0000\)/$")
DT = re.compile(r"^/Date\(\d+\)/$")


@pytest.fixture()
def sap(sap_server: ThreadedServer, admin: httpx.Client) -> Iterator[httpx.Client]:
    with raw_client(sap_server.url) as client:
        yield client


def csrf(client: httpx.Client) -> str:
    response = client.get("/", headers={"X-CSRF-Token": "Fetch"})
    assert response.status_code == 200
    return response.headers["x-csrf-token"]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "innererror"}
    assert body["error"]["message"]["lang"] == "en"
    assert isinstance(body["error"]["innererror"]["errordetails"], list)
    return dict(body["error"])


# -- auth, CSRF ----------------------------------------------------------------------------------

def test_basic_auth_is_enforced(sap_server: ThreadedServer, admin: httpx.Client) -> None:
    with raw_client(sap_server.url, auth=None) as anonymous:
        response = anonymous.get("/A_SalesOrder")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    with raw_client(sap_server.url, auth=("bridge", "wrong")) as wrong:
        assert wrong.get("/A_SalesOrder").status_code == 401
    assert admin.get("/_sandbox/stats").json()["auth_failures"] == 2


def test_csrf_token_is_required_and_bound_to_the_session_cookie(sap_server: ThreadedServer, sap: httpx.Client,
                                                               admin: httpx.Client) -> None:
    order_id = seed(admin)
    text = {"Language": "EN", "LongTextID": "Z001", "LongText": "hello"}
    url = f"/A_SalesOrder('{order_id}')/to_Text"

    refused = sap.post(url, json=text)
    assert refused.status_code == 403
    assert refused.headers["x-csrf-token"] == "Required"

    token = csrf(sap)
    assert "SAP_SESSIONID_SBX_100" in sap.cookies
    with raw_client(sap_server.url) as other:  # same token, no session cookie
        assert other.post(url, json=text, headers={"X-CSRF-Token": token}).status_code == 403
    assert sap.post(url, json=text, headers={"X-CSRF-Token": "forged"}).status_code == 403

    created = sap.post(url, json=text, headers={"X-CSRF-Token": token})
    assert created.status_code == 201, created.text
    assert created.json()["d"]["LongText"] == "hello"
    assert created.headers["location"].endswith(
        f"A_SalesOrderText(SalesOrder='{order_id}',Language='EN',LongTextID='Z001')")

    assert csrf(sap) == token  # a second fetch in the same session returns the same token
    admin.post("/_sandbox/csrf/expire").raise_for_status()
    assert sap.delete(created.headers["location"], headers={"X-CSRF-Token": token}).status_code == 403
    fresh = csrf(sap)
    assert fresh != token
    assert sap.delete(created.headers["location"], headers={"X-CSRF-Token": fresh}).status_code == 204


# -- ETags ---------------------------------------------------------------------------------------

def test_header_updates_need_a_current_etag(sap: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    token = csrf(sap)
    path = f"/A_SalesOrder('{order_id}')"
    read = sap.get(path)
    etag = read.headers["etag"]
    assert etag == read.json()["d"]["__metadata"]["etag"]
    assert re.fullmatch(r"W/\"datetimeoffset'\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\d\.\d{7}Z'\"", etag)

    missing = sap.patch(path, json={"DeliveryBlockReason": "01"}, headers={"X-CSRF-Token": token})
    assert missing.status_code == 428
    error_of(missing)
    with_etag = {"X-CSRF-Token": token, "If-Match": etag}
    changed = sap.patch(path, json={"DeliveryBlockReason": "01"}, headers=with_etag)
    assert changed.status_code == 204
    stale = sap.patch(path, json={"DeliveryBlockReason": ""}, headers=with_etag)
    assert stale.status_code == 412
    assert "changed in the meantime" in error_of(stale)["message"]["value"]
    star = sap.request("MERGE", path, json={"DeliveryBlockReason": ""},
                       headers={"X-CSRF-Token": token, "If-Match": "*"})
    assert star.status_code == 204
    assert admin.get(f"/_sandbox/sales-orders/{order_id}").json()["DeliveryBlockReason"] == ""


def test_etag_and_last_change_move_on_every_change_including_texts(sap: httpx.Client,
                                                                   admin: httpx.Client) -> None:
    order_id = seed(admin)
    token = csrf(sap)
    path = f"/A_SalesOrder('{order_id}')"
    seen = [sap.get(path).json()["d"]]
    sap.post(path + "/to_Text", json={"Language": "EN", "LongTextID": "Z001", "LongText": "a"},
             headers={"X-CSRF-Token": token}).raise_for_status()
    seen.append(sap.get(path).json()["d"])
    item_text = (f"/A_SalesOrderItemText(SalesOrder='{order_id}',SalesOrderItem='10',Language='EN',"
                 "LongTextID='Z004')")
    assert sap.patch(item_text, json={"LongText": "p2"}, headers={"X-CSRF-Token": token}).status_code == 204
    seen.append(sap.get(path).json()["d"])
    item = f"/A_SalesOrderItem(SalesOrder='{order_id}',SalesOrderItem='20')"
    rejected = sap.patch(item, json={"SalesDocumentRjcnReason": "Z1"}, headers={"X-CSRF-Token": token})
    assert rejected.status_code == 204
    seen.append(sap.get(path).json()["d"])

    etags = [entity["__metadata"]["etag"] for entity in seen]
    assert len(set(etags)) == len(etags)
    stamps = [int(entity["LastChangeDateTime"][6:-7]) for entity in seen]
    assert stamps == sorted(stamps)
    assert seen[-1]["TotalNetAmount"] == "39.98"  # item 20 now rejected
    assert seen[-1]["OverallSDDocumentRejectionSts"] == "B"


def test_read_only_and_unknown_properties_are_refused(sap: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    token = csrf(sap)
    path = f"/A_SalesOrder('{order_id}')"
    headers = {"X-CSRF-Token": token, "If-Match": "*"}
    read_only = sap.patch(path, json={"TotalNetAmount": "1.00"}, headers=headers)
    assert read_only.status_code == 400
    assert error_of(read_only)["innererror"]["errordetails"][0]["propertyref"] == "TotalNetAmount"
    unknown = sap.patch(path, json={"HeaderDeliveryBlockReason": "01"}, headers=headers)
    assert unknown.status_code == 400 and "HeaderDeliveryBlockReason" in error_of(unknown)["message"]["value"]
    too_long = sap.patch(path, json={"DeliveryBlockReason": "TOO"}, headers=headers)
    assert too_long.status_code == 400 and "too long" in error_of(too_long)["message"]["value"]
    address = sap.post(f"/A_SalesOrderHeaderPartner(SalesOrder='{order_id}',PartnerFunction='SH')/to_Address",
                       json={"CityName": "X"}, headers={"X-CSRF-Token": token})
    assert address.status_code == 405  # partner addresses only by deep insert


# -- query options -------------------------------------------------------------------------------

def test_json_shapes_dates_decimals_and_deferred_navigation(sap: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    entity = sap.get(f"/A_SalesOrder('{order_id}')", params={"$expand": "to_Item/to_Text"}).json()["d"]
    meta = entity["__metadata"]
    assert meta["type"] == "API_SALES_ORDER_SRV.A_SalesOrderType"
    assert meta["uri"].endswith(f"{SERVICE}/A_SalesOrder('{order_id}')")
    assert DTO.match(entity["LastChangeDateTime"]) and DT.match(entity["CreationDate"])
    assert entity["TotalNetAmount"] == "44.98"
    assert entity["CustomerPurchaseOrderDate"] is None
    assert entity["to_Partner"] == {"__deferred": {"uri": meta["uri"] + "/to_Partner"}}
    items = entity["to_Item"]["results"]
    assert [i["SalesOrderItem"] for i in items] == ["10", "20", "30"]
    assert items[0]["RequestedQuantity"] == "2" and items[0]["NetAmount"] == "39.98"
    assert items[0]["to_Text"]["results"][0]["LongTextID"] == "Z004"
    assert "etag" not in items[0]["__metadata"]  # items carry no concurrency token in the EDMX


def test_select_and_nested_select(sap: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    entity = sap.get(f"/A_SalesOrder('{order_id}')", params={
        "$select": "SalesOrder,to_Item/SalesOrderItem", "$expand": "to_Item"}).json()["d"]
    assert set(entity) == {"__metadata", "SalesOrder", "to_Item"}
    assert all(set(i) == {"__metadata", "SalesOrderItem"} for i in entity["to_Item"]["results"])
    bad = sap.get(f"/A_SalesOrder('{order_id}')", params={"$expand": "to_Nothing"})
    assert bad.status_code == 400


def test_filter_on_last_change_orderby_top_skip_and_count(sap: httpx.Client, admin: httpx.Client) -> None:
    ids = [seed(admin, sample_order(type="OR" if i % 2 else "ZBWP")) for i in range(6)]
    stamps = {r["SalesOrder"]: r["LastChangeDateTime"] for r in sap.get(
        "/A_SalesOrder", params={"$select": "SalesOrder,LastChangeDateTime"}).json()["d"]["results"]}
    assert set(stamps) == set(ids)
    third = admin.get(f"/_sandbox/sales-orders/{ids[2]}").json()["LastChangeDateTime"]
    literal = "datetimeoffset'" + third.replace("+00:00", "Z") + "'"

    def ids_for(**params: str) -> list[str]:
        response = sap.get("/A_SalesOrder", params={"$select": "SalesOrder", **params})
        assert response.status_code == 200, response.text
        return [r["SalesOrder"] for r in response.json()["d"]["results"]]

    assert ids_for(**{"$filter": f"LastChangeDateTime ge {literal}"}) == ids[2:]
    assert ids_for(**{"$filter": f"LastChangeDateTime gt {literal}"}) == ids[3:]
    assert ids_for(**{"$filter": f"LastChangeDateTime lt {literal}"}) == ids[:2]
    assert ids_for(**{"$filter": f"LastChangeDateTime le {literal} and SalesOrderType eq 'OR'"}) == [ids[1]]
    assert ids_for(**{"$filter": "SalesOrderType eq 'ZBWP' or SalesOrder eq '" + ids[1] + "'"}) == [
        ids[0], ids[1], ids[2], ids[4]]
    assert ids_for(**{"$filter": "not (SalesOrderType eq 'ZBWP')"}) == ids[1::2]
    assert ids_for(**{"$orderby": "LastChangeDateTime desc", "$top": "2"}) == ids[::-1][:2]
    assert ids_for(**{"$orderby": "SalesOrder asc", "$skip": "4"}) == ids[4:]
    counted = sap.get("/A_SalesOrder", params={"$top": "1", "$inlinecount": "allpages",
                                               "$filter": "SalesOrderType eq 'OR'"}).json()["d"]
    assert counted["__count"] == "3" and len(counted["results"]) == 1
    assert sap.get("/A_SalesOrder/$count").text == "6"


@pytest.mark.parametrize(("filter_", "fragment"), [
    ("LastChangeDateTime ge '2024-01-01'", "cannot be compared"),
    ("LastChangeDateTime ge datetime'2024-01-01T00:00:00'", "cannot be compared"),
    ("Nope eq 'x'", "Property 'Nope' not found"),
    ("SalesOrder eq", "expected more input"),
    ("SalesOrder eq 'x' and", "expected more input"),
    ("LastChangeDateTime ge datetimeoffset'yesterday'", "Invalid datetimeoffset literal"),
])
def test_bad_filters_get_sap_errors(sap: httpx.Client, admin: httpx.Client, filter_: str,
                                    fragment: str) -> None:
    response = sap.get("/A_SalesOrder", params={"$filter": filter_})
    assert response.status_code == 400
    assert fragment in error_of(response)["message"]["value"]


def test_long_text_is_not_filterable(sap: httpx.Client, admin: httpx.Client) -> None:
    response = sap.get("/A_SalesOrderText", params={"$filter": "LongText eq 'x'"})
    assert response.status_code == 400 and "not filterable" in error_of(response)["message"]["value"]


def test_server_driven_paging_with_next_links(sap: httpx.Client, admin: httpx.Client) -> None:
    ids = [seed(admin, sample_order(items=[{"material": "M"}])) for _ in range(5)]
    admin.put("/_sandbox/settings", json={"server_page_size": 2}).raise_for_status()
    collected: list[str] = []
    url: str | None = "/A_SalesOrder?$select=SalesOrder&$orderby=SalesOrder%20asc&$inlinecount=allpages"
    pages = 0
    while url:
        body = sap.get(url).json()["d"]
        assert body["__count"] == "5"
        collected += [r["SalesOrder"] for r in body["results"]]
        url = body.get("__next")
        assert url is None or "$skiptoken=" in url
        pages += 1
    assert collected == ids and pages == 3


def test_not_found_and_unknown_sets_use_the_sap_error_shape(sap: httpx.Client, admin: httpx.Client) -> None:
    missing = sap.get("/A_SalesOrder('999999')")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "/IWBEP/CM_MGW_RT/020"
    assert sap.get("/A_SalesOrderScheduleLine").status_code == 404
    assert sap.get("/A_SalesOrder", headers={"Accept": "application/atom+xml"}).status_code == 406
    assert sap.get("/A_SalesOrder", params={"$format": "json"}, headers={"Accept": "*/*"}).status_code == 200


# -- writes --------------------------------------------------------------------------------------

def test_deep_insert_and_x_http_method_tunnelling(sap: httpx.Client, admin: httpx.Client) -> None:
    token = csrf(sap)
    body = {
        "SalesOrderType": "OR", "SoldToParty": "17100001", "TransactionCurrency": "EUR",
        "to_Item": {"results": [{"Material": "SKU-9", "RequestedQuantity": "4", "ProductionPlant": "1010",
                                 "to_Text": [{"Language": "EN", "LongTextID": "Z004", "LongText": "p"}]}]},
        "to_Partner": [{"PartnerFunction": "SH", "Customer": "17100001",
                        "to_Address": [{"AddresseeFullName": "Zoe", "CityName": "Berlin", "Country": "DE"}]}],
        "to_Text": [{"Language": "EN", "LongTextID": "Z003", "LongText": "X"}],
    }
    created = sap.post("/A_SalesOrder", json=body, headers={"X-CSRF-Token": token})
    assert created.status_code == 201, created.text
    entity = created.json()["d"]
    order_id = entity["SalesOrder"]
    assert entity["to_Item"]["results"][0]["SalesOrderItem"] == "10"
    assert entity["to_Partner"]["results"][0]["PartnerFunctionInternalCode"] == "WE"
    assert entity["to_Partner"]["results"][0]["to_Address"]["results"][0]["CityName"] == "Berlin"
    assert created.headers["etag"] == entity["__metadata"]["etag"]

    tunnelled = sap.post(f"/A_SalesOrder('{order_id}')", json={"ShippingCondition": "02"},
                         headers={"X-CSRF-Token": token, "X-HTTP-Method": "MERGE",
                                  "If-Match": created.headers["etag"]})
    assert tunnelled.status_code == 204
    assert admin.get(f"/_sandbox/sales-orders/{order_id}").json()["ShippingCondition"] == "02"
    incomplete = sap.post("/A_SalesOrder", json={"SalesOrderType": "OR"}, headers={"X-CSRF-Token": token})
    assert incomplete.status_code == 400 and "SoldToParty" in error_of(incomplete)["message"]["value"]


def test_duplicate_text_and_text_for_unknown_item_are_refused(sap: httpx.Client, admin: httpx.Client) -> None:
    order_id = seed(admin)
    token = csrf(sap)
    item = f"/A_SalesOrderItem(SalesOrder='{order_id}',SalesOrderItem='10')/to_Text"
    duplicate = sap.post(item, json={"Language": "EN", "LongTextID": "Z004", "LongText": "again"},
                         headers={"X-CSRF-Token": token})
    assert duplicate.status_code == 400 and "already exists" in error_of(duplicate)["message"]["value"]
    text = {"SalesOrder": order_id, "SalesOrderItem": "99", "Language": "EN", "LongTextID": "Z002",
            "LongText": "x"}
    direct = sap.post("/A_SalesOrderItemText", json=text, headers={"X-CSRF-Token": token})
    assert direct.status_code == 400 and "Item '99'" in error_of(direct)["message"]["value"]


# -- admin API and knobs -------------------------------------------------------------------------

def test_admin_seed_patch_view_list_and_reset(admin: httpx.Client) -> None:
    assert admin.post("/_sandbox/sales-orders", json={"bogus": 1}).status_code == 400
    order_id = seed(admin, sample_order(id="777"))
    assert order_id == "777"
    view = admin.get("/_sandbox/sales-orders/777").json()
    assert [t["LongTextID"] for t in view["texts"]] == ["Z003", "Z006"]
    assert view["items"][0]["UnitPrice"] == "19.99"
    assert {p["PartnerFunction"] for p in view["partners"]} == {"SP", "SH"}

    patched = admin.patch("/_sandbox/sales-orders/777", json={
        "delivery_block": "01", "texts": {"Z003": None, "Z001": "AMZ"},
        "items": [{"id": "10", "qty": "5", "texts": {"Z004": "p9"}}], "ship_to": None}).json()
    assert patched["DeliveryBlockReason"] == "01"
    assert patched["etag"] != view["etag"] and patched["LastChangeDateTime"] > view["LastChangeDateTime"]
    assert [t["LongTextID"] for t in patched["texts"]] == ["Z006", "Z001"]
    assert patched["items"][0]["RequestedQuantity"] == "5" and patched["items"][0]["NetAmount"] == "99.95"
    assert {p["PartnerFunction"] for p in patched["partners"]} == {"SP"}
    assert admin.patch("/_sandbox/sales-orders/1", json={}).status_code == 404

    assert [o["id"] for o in admin.get("/_sandbox/sales-orders").json()["orders"]] == ["777"]
    admin.post("/_sandbox/reset").raise_for_status()
    assert admin.get("/_sandbox/sales-orders").json()["orders"] == []
    assert admin.get("/_sandbox/sales-orders/777").status_code == 404


def test_fault_knobs_answer_with_sap_errors(sap: httpx.Client, admin: httpx.Client) -> None:
    admin.put("/_sandbox/knobs", json={"error_rate": 1.0}).raise_for_status()
    failed = sap.get("/A_SalesOrder")
    assert failed.status_code == 503
    error_of(failed)
    admin.put("/_sandbox/knobs", json={"error_rate": 0.0, "throttle_rate": 1.0, "retry_after_seconds": 3})
    throttled = sap.get("/A_SalesOrder")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "3"
    assert admin.get("/_sandbox/stats").status_code == 200  # admin API is never faulted


def test_metadata_is_404_without_the_contract_file(tmp_path: Path) -> None:
    app = create_app(metadata_path=tmp_path / "absent.edmx")
    with ThreadedServer(app) as server, raw_client(server.url, auth=("sandbox", "sandbox")) as client:
        response = client.get("/$metadata")
        assert response.status_code == 404
        assert "absent" in error_of(response)["message"]["value"]
        assert client.get("/").json()["d"]["EntitySets"][0] == "A_SalesOrder"


def test_oauth_token_endpoint_and_bearer_access(sap_server: ThreadedServer, admin: httpx.Client) -> None:
    with httpx.Client(base_url=sap_server.url) as client:
        bad = client.post("/sap/bc/sec/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=("bridge-client", "wrong"))
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
        assert client.post("/sap/bc/sec/oauth2/token", data={"grant_type": "password"},
                           auth=("bridge-client", "bridge-secret")).status_code == 400
        token = client.post("/sap/bc/sec/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=("bridge-client", "bridge-secret")).json()
        assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
        headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"}
        assert client.get(SERVICE + "/A_SalesOrder", headers=headers).status_code == 200
        admin.post("/_sandbox/oauth/revoke").raise_for_status()
        assert client.get(SERVICE + "/A_SalesOrder", headers=headers).status_code == 401
