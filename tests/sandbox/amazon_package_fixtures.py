"""The Buy with Prime sandbox's packages as tests drive them: a raw GraphQL caller (``Bwp``), the
``updateOrderPackageInformation`` payloads, and one sandbox per module reset before every test.

Shared by the sandbox's own package and event-delivery tests and by the connector's package reads;
take the fixtures by name (``server = amazon_package_fixtures.server``)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.sandbox.amazon_fixtures import CATALOG, CLIENT_ID, CLIENT_SECRET, TARGET_ID

from primebridge.connectors.amazon.client import load_document
from primebridge.sandbox.amazon import create_app
from primebridge.sandbox.amazon.events import business_product_id
from primebridge.sandbox.server import ThreadedServer

FRAGMENTS = (resources.files("primebridge.connectors.amazon") / "documents" / "orderFields.graphql").read_text()
CREATE = load_document("createOrder.graphql")
PACKAGES = """
mutation updateOrderPackageInformation($orderIdentifier: OrderIdentifierInput!,
                                       $input: UpdateOrderPackageInformationInput!) {
  updateOrderPackageInformation(orderIdentifier: $orderIdentifier, input: $input) {
    order { ...OrderFields }
  }
}
""" + FRAGMENTS
ADDRESS = {"name": "John Smith", "streetAddress": "399 Boren Ave N", "locality": "Seattle", "region": "WA",
           "countryCode": "US", "postalCode": "98109"}
BP = business_product_id(TARGET_ID)


class Bwp:
    """A running sandbox with a raw GraphQL caller and package helpers."""

    def __init__(self, app: Starlette, url: str) -> None:
        self.app = app
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)
        token = self.http.post("/token", data={"grant_type": "client_credentials"},
                               auth=(CLIENT_ID, CLIENT_SECRET)).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}", "x-api-target-id": TARGET_ID,
                        "x-api-version": "2024-11-01"}

    def gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables}, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def ok(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = self.gql(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def code(self, query: str, variables: dict[str, Any]) -> tuple[str, str]:
        body = self.gql(query, variables)
        assert len(body["errors"]) == 1, body
        classification = body["errors"][0]["extensions"]["classification"]
        return classification["type"], classification["code"]

    def create(self, *lines: dict[str, Any], started: bool = True) -> dict[str, Any]:
        data = {"lineItems": list(lines) or [line()], "recipient": {"deliveryAddress": ADDRESS},
                "desiredExecutionState": "STARTED" if started else "NOT_STARTED"}
        return self.ok(CREATE, {"input": data})["createOrder"]["order"]

    def update(self, order_id: str, *details: dict[str, Any]) -> dict[str, Any]:
        return self.ok(PACKAGES, variables(order_id, *details))["updateOrderPackageInformation"]["order"]

    def refused(self, order_id: str, *details: dict[str, Any]) -> tuple[str, str]:
        return self.code(PACKAGES, variables(order_id, *details))

    def events(self) -> list[dict[str, Any]]:
        return self.http.get("/_sandbox/events").json()


def line(sku: str = "LAMP-1", value: int = 1, provider: str = "AMAZON") -> dict[str, Any]:
    details: dict[str, Any] = {"deliveryProvider": provider}
    if provider == "AMAZON":
        details["deliveryTerms"] = {"isPrimeEligible": False, "deliverySpeed": "STANDARD"}
    product = {"identifier": {"sku": sku}, "title": "A product", "price": {"amount": 28, "currencyCode": "USD"}}
    return {"product": product, "amount": {"value": value}, "selectedDeliveryOffer": {"details": details}}


def variables(order_id: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"orderIdentifier": {"orderId": order_id}, "input": {"packageInformation": {"details": list(details)}}}


def state(package_id: str, target: str, reason: str | None = None,
          amounts: dict[str, int] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"state": target}
    if reason:
        info["reason"] = reason
    if amounts is not None:
        info["packageInformationDetailsFor"] = {"orderLineItemAmounts": [
            {"lineItemId": {"lineItemId": line_id}, "amount": {"value": value}} for line_id, value in amounts.items()]}
    return {"id": package_id, "packageState": {"packageInformationState": info}}


def milestone(package_id: str, tracker: dict[str, Any], code: str, **extra: Any) -> dict[str, Any]:
    return {"id": package_id, "packageState": {"packageTrackerState": {
        "packageTrackerIdentifier": tracker["packageTrackerIdentifier"], "state": code, **extra}}}


def packages(order: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in order["packageInformation"]["details"]}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Starlette, str]]:
    app = create_app(catalog=CATALOG)
    with ThreadedServer(app, name="bwp-packages") as srv:
        yield app, srv.url
    app.state.sandbox.deliveries.close()


@pytest.fixture
def bwp(server: tuple[Starlette, str]) -> Iterator[Bwp]:
    app, url = server
    app.state.sandbox.reset()
    client = Bwp(app, url)
    yield client
    client.http.close()
