"""The Buy with Prime sandbox over raw HTTP: auth, documented validation rules, state, admin API."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from graphql import build_schema
from starlette.applications import Starlette
from tests.sandbox.amazon_fixtures import CATALOG, CLIENT_ID, CLIENT_SECRET, TARGET_ID

from primebridge.connectors.amazon.client import load_document
from primebridge.sandbox.amazon import create_app
from primebridge.sandbox.server import ThreadedServer

CREATE = load_document("createOrder.graphql")
UPDATE = load_document("updateOrder.graphql")
ORDER = load_document("order.graphql")
ADDRESS = {"name": "John Smith", "streetAddress": "399 Boren Ave N", "locality": "Seattle", "region": "WA",
           "countryCode": "US", "postalCode": "98109"}


class Bwp:
    """A running sandbox plus a raw GraphQL caller."""

    def __init__(self, app: Starlette, url: str) -> None:
        self.app = app
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            response = self.http.post("/token", data={"grant_type": "client_credentials"},
                                      auth=(CLIENT_ID, CLIENT_SECRET))
            self._token = response.json()["access_token"]
        return self._token

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", "x-api-target-id": TARGET_ID,
                "x-api-version": "2024-11-01", **extra}

    def post(self, query: str, variables: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post("/graphql", json={"query": query, "variables": variables},
                              headers=self.headers() if headers is None else headers)

    def gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.post(query, variables)
        assert response.status_code == 200, response.text
        return response.json()

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        body = self.gql(CREATE, {"input": data})
        assert "errors" not in body, body["errors"]
        return body["data"]["createOrder"]["order"]

    def error(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = self.gql(query, variables)
        assert len(body["errors"]) == 1, body
        return body["errors"][0]

    def classification(self, query: str, variables: dict[str, Any]) -> tuple[str, str]:
        error = self.error(query, variables)
        return error["extensions"]["classification"]["type"], error["extensions"]["classification"]["code"]


def line(sku: str = "LAMP-1", *, value: int = 1, prime: bool = False, provider: str = "AMAZON",
         alias: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"deliveryProvider": provider}
    if provider == "AMAZON":
        details["deliveryTerms"] = {"isPrimeEligible": prime, **({} if prime else {"deliverySpeed": "STANDARD"})}
    if prime:
        details |= {"deliveryPreviewId": "SIP-1", "id": "offer-1"}
    item: dict[str, Any] = {
        "product": {"identifier": {"sku": sku}, "title": "A product", "price": {"amount": 28, "currencyCode": "USD"}},
        "amount": {"value": value}, "selectedDeliveryOffer": {"details": details}}
    if alias:
        item["aliases"] = [{"aliasType": "OMS_LINE_ID", "aliasId": alias}]
    return item


def order_input(*lines: dict[str, Any], alias: str = "4711", **extra: Any) -> dict[str, Any]:
    return {"lineItems": list(lines) or [line()], "aliases": [{"aliasType": "OMS_ORDER_ID", "aliasId": alias}],
            "recipient": {"deliveryAddress": ADDRESS},
            "customer": {"contact": {"emailData": {"name": "John Smith", "email": "john@example.com"}}}, **extra}


def by_id(order_id: str) -> dict[str, Any]:
    return {"orderIdentifier": {"orderId": order_id}}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Starlette, str]]:
    app = create_app(catalog=CATALOG)
    with ThreadedServer(app, name="bwp-sandbox") as srv:
        yield app, srv.url


@pytest.fixture
def bwp(server: tuple[Starlette, str]) -> Iterator[Bwp]:
    app, url = server
    app.state.sandbox.reset()
    app.state.knobs.update({"throttle_rate": 0.0, "error_rate": 0.0})
    client = Bwp(app, url)
    yield client
    client.http.close()


# -- token endpoint and request checks -------------------------------------------------------------

def test_token_by_basic_header_or_body(bwp: Bwp) -> None:
    basic = bwp.http.post("/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    body = bwp.http.post("/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                         "client_secret": CLIENT_SECRET})
    for response in (basic, body):
        assert response.status_code == 200
        assert response.json()["token_type"] == "bearer" and response.json()["expires_in"] == 900
    assert basic.json()["access_token"] != body.json()["access_token"]


def test_token_refusals(bwp: Bwp) -> None:
    wrong = bwp.http.post("/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "nope"))
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
    grant = bwp.http.post("/token", data={"grant_type": "password"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")


def test_graphql_needs_a_valid_bearer_token(bwp: Bwp) -> None:
    no_token = bwp.post(ORDER, by_id("x"), headers={"x-api-target-id": TARGET_ID, "x-api-version": "2024-11-01"})
    assert no_token.status_code == 401
    forged = bwp.post(ORDER, by_id("x"), headers=bwp.headers(Authorization="Bearer forged"))
    assert forged.status_code == 401
    assert bwp.app.state.sandbox.stats_snapshot()["graphql.unauthorized"] == 2


def test_target_id_either_header_and_version(bwp: Bwp) -> None:
    headers = bwp.headers()
    del headers["x-api-target-id"]
    missing = bwp.post(ORDER, by_id("x"), headers=headers)
    assert missing.status_code == 200
    assert missing.json()["errors"][0]["extensions"]["classification"]["type"] == "AccessDeniedError"
    omni = bwp.post(ORDER, by_id("x"), headers={**headers, "X-Omni-TargetId": TARGET_ID})
    assert omni.json()["errors"][0]["extensions"]["classification"]["type"] == "ResourceNotFoundError"
    old = bwp.post(ORDER, by_id("x"), headers=bwp.headers(**{"x-api-version": "2024-01-01"}))
    assert old.status_code == 400


def test_malformed_requests(bwp: Bwp) -> None:
    not_json = bwp.http.post("/graphql", content=b"nope", headers=bwp.headers())
    assert not_json.status_code == 400
    bad_query = bwp.gql("query { order(orderIdentifier: {orderId: \"x\"}) { nope } }", {})
    assert bad_query["errors"][0]["extensions"]["classification"] == {"type": "ValidationError",
                                                                      "code": "InvalidRequest"}


# -- createOrder --------------------------------------------------------------------------------

def test_create_order_shape_and_ids(bwp: Bwp) -> None:
    order = bwp.create(order_input(line(value=2, alias="4711/10"), line("GIFT", provider="MERCHANT")))
    assert re.fullmatch(r"322-[A-Z0-9]{4}-[A-Z0-9]{6}", order["id"])
    assert all(re.fullmatch(r"[0-9a-f]{10}-[0-9a-f]{10}", item["id"]) for item in order["lineItems"])
    assert order["aliases"] == [{"aliasType": "OMS_ORDER_ID", "aliasId": "4711"}]
    assert order["metadata"]["executionState"] == "NOT_STARTED"
    assert order["lineItems"][0]["amount"] == {"value": 2, "unit": "ONE"}
    assert order["lineItems"][0]["aliases"] == [{"aliasType": "OMS_LINE_ID", "aliasId": "4711/10"}]
    assert order["lineItems"][1]["deliveryOffer"]["details"]["deliveryProvider"] == "MERCHANT"
    assert order["packageInformation"] == {"summary": None, "details": []}
    alias = {"orderIdentifier": {"alias": {"aliasType": "OMS_ORDER_ID", "aliasId": "4711"}}}
    assert bwp.gql(ORDER, alias)["data"]["order"] == order


def test_duplicate_alias_is_a_conflict(bwp: Bwp) -> None:
    first = bwp.create(order_input())
    error = bwp.error(CREATE, {"input": order_input(line("BOOK-1"))})
    assert error["extensions"]["classification"] == {"type": "ConflictError", "code": "AliasValueAlreadyExists"}
    assert error["path"] == ["createOrder"] and first["id"] in error["message"]
    assert len(bwp.app.state.sandbox.list_orders()) == 1


def prime_input(**changes: Any) -> dict[str, Any]:
    return order_input(line(prime=True), shopperIdentity={"lwaAccessToken": {"value": "Atza|shopper"}}, **changes)


def _without_preview() -> dict[str, Any]:
    data = prime_input()
    del data["lineItems"][0]["selectedDeliveryOffer"]["details"]["deliveryPreviewId"]
    return data


def _without_title() -> dict[str, Any]:
    data = order_input()
    del data["lineItems"][0]["product"]["title"]
    return data


def _two_identifiers() -> dict[str, Any]:
    data = order_input()
    data["lineItems"][0]["product"]["identifier"]["externalId"] = "LAMP-1"
    return data


def _both_offer_kinds() -> dict[str, Any]:
    data = order_input()
    data["lineItems"][0]["selectedDeliveryOffer"]["summary"] = {"deliveryProvider": "AMAZON"}
    return data


@pytest.mark.parametrize(("data", "code"), [
    (order_input(line("NOPE")), "InvalidSku"),
    (order_input(line(value=0)), "InvalidLineItemAmount"),
    (_without_preview(), "MissingDeliveryPreview"),
    ({**prime_input(), "shopperIdentity": None}, "MissingShopperIdentity"),
    (order_input(*[line(prime=True)] * 21, shopperIdentity={"lwaAccessToken": {"value": "t"}}),
     "LineItemLimitExceeded"),
    (order_input(*[line()] * 21), "LineItemLimitExceeded"),
    ({**order_input(), "recipient": None}, "MissingDeliveryAddress"),
    ({**order_input(), "recipient": {"deliveryAddress": {**ADDRESS, "postalCode": ""}}}, "MissingDeliveryAddress"),
    ({**order_input(), "aliases": [{"aliasType": "T", "aliasId": str(i)} for i in range(6)]}, "AliasLimitExceeded"),
    ({**order_input(), "lineItems": []}, "MissingLineItems"),
    (_without_title(), "MissingProductDetails"),
    (_two_identifiers(), "InvalidProductIdentifier"),
    (_both_offer_kinds(), "InvalidDeliveryOffer"),
    (order_input(line(value=1.5)), "InvalidRequest"),  # type: ignore[arg-type]
])
def test_documented_validation(bwp: Bwp, data: dict[str, Any], code: str) -> None:
    assert bwp.classification(CREATE, {"input": copy.deepcopy(data)}) == ("ValidationError", code)
    assert bwp.app.state.sandbox.list_orders() == []


def test_limits_and_merchant_lines_that_pass(bwp: Bwp) -> None:
    mixed = order_input(*[line(prime=True)] * 20, *[line()] * 20,
                        shopperIdentity={"lwaAccessToken": {"value": "t"}})
    assert len(bwp.create(mixed)["lineItems"]) == 40
    merchant_only = order_input(line("ANYTHING", provider="MERCHANT"), alias="4712", recipient=None)
    assert bwp.create(merchant_only)["lineItems"][0]["product"]["identifier"]["sku"] == "ANYTHING"


def test_accept_unknown_skus_and_catalog_identifier_kinds() -> None:
    app = create_app(accept_unknown_skus=True)
    with ThreadedServer(app) as srv:
        assert Bwp(app, srv.url).create(order_input(line("WHATEVER")))["id"]
    app = create_app(catalog=[{"sku": "S-1", "title": "t", "price": 1, "amazonSku": "MSKU-1"}])
    with ThreadedServer(app) as srv:
        client = Bwp(app, srv.url)
        item = line()
        item["product"]["identifier"] = {"amazonSku": {"value": "MSKU-1"}}
        assert client.create(order_input(item))["lineItems"][0]["product"]["identifier"]["amazonSku"] == {
            "value": "MSKU-1"}
        item["product"]["identifier"] = {"externalId": "S-1"}
        assert client.create(order_input(item, alias="2"))["id"]


def test_create_started_makes_a_pending_package_of_amazon_lines(bwp: Bwp) -> None:
    order = bwp.create(order_input(line(value=3), line("GIFT", provider="MERCHANT"),
                                   desiredExecutionState="STARTED"))
    assert order["metadata"]["executionState"] == "STARTED"
    package_info = order["packageInformation"]
    assert package_info["summary"] == {"state": "PENDING"}
    [package] = package_info["details"]
    assert package["state"] == "PENDING" and package["reason"] is None
    assert package["packageInformationDetailsFor"]["orderLineItemAmounts"] == [
        {"lineItem": {"id": order["lineItems"][0]["id"]}, "amount": {"value": 3, "unit": "ONE"}}]


# -- updateOrder --------------------------------------------------------------------------------

def update(order_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {**by_id(order_id), "input": data}


def test_release_hold(bwp: Bwp) -> None:
    order = bwp.create(order_input())
    start = update(order["id"], {"desiredExecutionState": "STARTED"})
    released = bwp.gql(UPDATE, start)["data"]["updateOrder"]["order"]
    assert released["metadata"]["executionState"] == "STARTED"
    assert released["packageInformation"]["summary"] == {"state": "PENDING"}
    again = bwp.gql(UPDATE, start)["data"]["updateOrder"]["order"]
    assert again["packageInformation"] == released["packageInformation"]  # no second package
    assert bwp.classification(UPDATE, update(order["id"], {"desiredExecutionState": "NOT_STARTED"})) == (
        "ValidationError", "InvalidExecutionStateTransition")
    assert bwp.app.state.sandbox.stats_snapshot()["updateOrder.released"] == 1


def test_aliases_are_append_only_and_at_most_five(bwp: Bwp) -> None:
    order = bwp.create(order_input())
    other = bwp.create(order_input(alias="4712"))
    four = [{"aliasType": "EXTERNAL_ID", "aliasId": f"x{i}"} for i in range(4)]
    updated = bwp.gql(UPDATE, update(order["id"], {"aliases": four}))["data"]["updateOrder"]["order"]
    assert updated["aliases"] == order["aliases"] + four
    assert bwp.gql(UPDATE, update(order["id"], {"aliases": four[:1]}))["data"]["updateOrder"]["order"][
        "aliases"] == updated["aliases"]  # re-adding a present alias changes nothing
    assert bwp.classification(UPDATE, update(order["id"], {"aliases": [{"aliasType": "T", "aliasId": "6"}]})) == (
        "ValidationError", "AliasLimitExceeded")
    assert bwp.classification(UPDATE, update(other["id"], {"aliases": four[:1]})) == (
        "ConflictError", "AliasValueAlreadyExists")


def test_line_and_package_aliases(bwp: Bwp) -> None:
    order = bwp.create(order_input(line(), line("BOOK-1"), desiredExecutionState="STARTED"))
    first, second = (item["id"] for item in order["lineItems"])
    package = order["packageInformation"]["details"][0]["id"]
    alias = {"aliasType": "EXTERNAL_ID", "aliasId": "000010"}
    updated = bwp.gql(UPDATE, update(order["id"], {
        "lineItems": [{"id": {"lineItemId": first}, "aliases": [alias]}],
        "packageInformation": {"details": [{"id": package, "aliases": [{"aliasType": "DELIVERY", "aliasId": "8001"}]}]},
    }))["data"]["updateOrder"]["order"]
    assert updated["lineItems"][0]["aliases"] == [alias]
    assert updated["packageInformation"]["details"][0]["aliases"] == [{"aliasType": "DELIVERY", "aliasId": "8001"}]
    taken = {"lineItems": [{"id": {"lineItemId": second}, "aliases": [alias]}]}
    assert bwp.classification(UPDATE, update(order["id"], taken)) == ("ConflictError", "AliasValueAlreadyExists")
    no_line = {"lineItems": [{"id": {"lineItemId": "nope"}, "aliases": [alias]}]}
    assert bwp.classification(UPDATE, update(order["id"], no_line)) == ("ValidationError", "InvalidLineItemId")
    no_package = {"packageInformation": {"details": [{"id": "nope"}]}}
    assert bwp.classification(UPDATE, update(order["id"], no_package)) == (
        "ValidationError", "PackageInformationDetailIdNotFound")


def test_invalid_update_changes_nothing(bwp: Bwp) -> None:
    order = bwp.create(order_input())
    assert bwp.classification(UPDATE, update(order["id"], {
        "desiredExecutionState": "STARTED", "aliases": [{"aliasType": "EXTERNAL_ID", "aliasId": "new"}],
        "lineItems": [{"id": {"lineItemId": "nope"}}]}))[1] == "InvalidLineItemId"
    after = bwp.gql(ORDER, by_id(order["id"]))["data"]["order"]
    assert after["metadata"]["executionState"] == "NOT_STARTED" and after["aliases"] == order["aliases"]


def test_unknown_order(bwp: Bwp) -> None:
    assert bwp.classification(ORDER, by_id("322-NONE-NONE00")) == ("ResourceNotFoundError", "OrderNotFound")
    assert bwp.classification(UPDATE, update("322-NONE-NONE00", {})) == ("ResourceNotFoundError", "OrderNotFound")
    both = {"orderIdentifier": {"orderId": "x", "alias": {"aliasType": "A", "aliasId": "1"}}}
    assert bwp.classification(ORDER, both) == ("ValidationError", "InvalidOrderIdentifier")


# -- faults and admin API -----------------------------------------------------------------------

def test_throttle_knob_answers_like_bwp(bwp: Bwp) -> None:
    bwp.token()
    assert bwp.http.put("/_sandbox/knobs", json={"throttle_rate": 1.0, "retry_after_seconds": 4}).status_code == 200
    throttled = bwp.post(ORDER, by_id("x"))
    assert throttled.status_code == 200
    assert throttled.json()["errors"][0]["extensions"]["classification"]["type"] == "ThrottlingError"
    assert throttled.headers["retry-after"] == "4"
    token = bwp.http.post("/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert token.status_code == 429
    assert bwp.http.get("/_sandbox/stats").status_code == 200  # admin API is never throttled
    bwp.http.put("/_sandbox/knobs", json={"throttle_rate": 0.0, "error_rate": 1.0})
    assert bwp.post(ORDER, by_id("x")).status_code == 503


def test_admin_api(bwp: Bwp) -> None:
    assert bwp.http.post("/_sandbox/catalog", json=[{"sku": "NEW-1", "title": "New", "price": "9.99"}]).json() == {
        "seeded": 1, "catalog_size": 3}
    assert {item["sku"] for item in bwp.http.get("/_sandbox/catalog").json()} == {"LAMP-1", "BOOK-1", "NEW-1"}
    assert bwp.http.post("/_sandbox/catalog", json=[{"title": "no sku"}]).status_code == 400
    order = bwp.create(order_input(line("NEW-1")))
    listed = bwp.http.get("/_sandbox/orders").json()
    assert [(o["id"], o["aliases"], o["metadata"]["executionState"]) for o in listed] == [
        (order["id"], order["aliases"], "NOT_STARTED")]
    detail = bwp.http.get(f"/_sandbox/orders/{order['id']}").json()
    assert detail["recipient"]["deliveryAddress"] == ADDRESS
    assert bwp.http.get("/_sandbox/orders/322-NONE-NONE00").status_code == 404
    assert bwp.http.get("/_sandbox/stats").json() == {"createOrder": 1, "createOrder.created": 1, "token.minted": 1}
    build_schema(bwp.http.get("/_sandbox/schema").text)
    assert bwp.http.get("/_sandbox/knobs").json()["throttle_rate"] == 0.0
    assert bwp.http.post("/_sandbox/reset").status_code == 200
    assert bwp.http.get("/_sandbox/orders").json() == []
    assert {item["sku"] for item in bwp.http.get("/_sandbox/catalog").json()} == {"LAMP-1", "BOOK-1"}
    assert bwp.http.get("/_sandbox/stats").json() == {}
