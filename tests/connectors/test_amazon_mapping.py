"""Canonical request ↔ Buy with Prime GraphQL JSON, without any server."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from tests.sandbox.amazon_fixtures import amazon_line, merchant_line, request

from primebridge.connectors.amazon import mapping
from primebridge.connectors.amazon.errors import BadResponse
from primebridge.domain.errors import Rejected
from primebridge.domain.model import Alias, ExecutionState


def test_prime_line_carries_preview_offer_and_shopper_identity() -> None:
    data = mapping.create_order_input(request("4711", amazon_line(prime=True), shopper_token="Atza|shopper"))
    line = data["lineItems"][0]
    assert line["selectedDeliveryOffer"] == {"details": {
        "deliveryProvider": "AMAZON", "deliveryTerms": {"isPrimeEligible": True},
        "deliveryPreviewId": "SIP-10", "id": "offer-10"}}
    assert line["product"] == {"identifier": {"sku": "LAMP-1"}, "title": "title of LAMP-1",
                               "price": {"amount": 28.99, "currencyCode": "USD"}}
    assert line["aliases"] == [{"aliasType": "OMS_LINE_ID", "aliasId": "4711/10"}]
    assert line["taxes"] == {"summary": {"collectableTaxAmount": {"amount": 2.57, "currencyCode": "USD"}}}
    assert data["shopperIdentity"] == {"lwaAccessToken": {"value": "Atza|shopper"}}


def test_non_prime_amazon_line_names_a_speed_and_no_preview() -> None:
    details = mapping.create_order_input(request())["lineItems"][0]["selectedDeliveryOffer"]["details"]
    assert details == {"deliveryProvider": "AMAZON",
                       "deliveryTerms": {"isPrimeEligible": False, "deliverySpeed": "STANDARD"}}


def test_merchant_line_only_names_the_provider() -> None:
    data = mapping.create_order_input(request("4711", amazon_line(), merchant_line()))
    assert data["lineItems"][1]["selectedDeliveryOffer"] == {"details": {"deliveryProvider": "MERCHANT"}}
    assert data["lineItems"][1]["product"]["identifier"] == {"sku": "GIFT-WRAP"}


@pytest.mark.parametrize("state", list(ExecutionState))
def test_execution_state_alias_recipient_and_totals(state: ExecutionState) -> None:
    data = mapping.create_order_input(request("4711", state=state))
    assert data["desiredExecutionState"] == state.value
    assert data["aliases"] == [{"aliasType": "OMS_ORDER_ID", "aliasId": "4711"}]
    assert data["recipient"] == {"deliveryAddress": {
        "name": "John Smith", "streetAddress": "399 Boren Ave N", "locality": "Seattle", "region": "WA",
        "countryCode": "US", "postalCode": "98109", "contactNumber": "206-555-0100"}}
    assert data["customer"] == {"contact": {"emailData": {"name": "John Smith", "email": "john@example.com"}}}
    assert data["totalPrice"] == {"value": {"amount": 31.56, "currencyCode": "USD"}}
    assert data["taxes"] == {"summary": {"collectableTaxAmount": {"amount": 2.57, "currencyCode": "USD"}}}
    assert "shopperIdentity" not in data and "orderLinks" not in data


def test_decimals_become_json_numbers() -> None:
    data = mapping.create_order_input(request("4711", amazon_line(quantity="3.000")))
    assert json.dumps(data["lineItems"][0]["amount"]) == '{"value": 3}'
    assert mapping.number(Decimal("28.99")) == 28.99
    with pytest.raises(ValueError, match="finite"):
        mapping.number(Decimal("NaN"))


@pytest.mark.parametrize(("kind", "expected"), [
    ("sku", {"sku": "LAMP-1"}), ("externalId", {"externalId": "LAMP-1"}),
    ("amazonSku", {"amazonSku": {"value": "LAMP-1"}}), ("productId", {"productId": "LAMP-1"})])
def test_product_identifier_kind_is_configurable(kind: mapping.ProductIdentifier, expected: dict) -> None:
    data = mapping.create_order_input(request(), identifier=kind)
    assert data["lineItems"][0]["product"]["identifier"] == expected


def test_prime_data_gaps_are_rejected_before_sending() -> None:
    with pytest.raises(Rejected, match="shopper identity") as exc:
        mapping.create_order_input(request("4711", amazon_line(prime=True)))
    assert exc.value.code == "MissingPrimeData"
    line = replace(amazon_line(prime=True), delivery_offer_id=None)
    with pytest.raises(Rejected, match="delivery offer id"):
        mapping.create_order_input(request("4711", line, shopper_token="t"))


def test_order_link_when_configured() -> None:
    data = mapping.create_order_input(request(order_link_url="https://oms.example/4711"))
    assert data["orderLinks"] == [{"destinationType": "EXTERNAL_ORDER_MANAGEMENT", "url": "https://oms.example/4711"}]


def test_update_input_and_identifier() -> None:
    assert mapping.update_order_input(execution_state=ExecutionState.STARTED, aliases=(Alias("A", "1"),),
                                      line_aliases={"l-1": (Alias("L", "x"),)}) == {
        "desiredExecutionState": "STARTED", "aliases": [{"aliasType": "A", "aliasId": "1"}],
        "lineItems": [{"id": {"lineItemId": "l-1"}, "aliases": [{"aliasType": "L", "aliasId": "x"}]}]}
    assert mapping.order_identifier(alias=Alias("A", "1")) == {"alias": {"aliasType": "A", "aliasId": "1"}}
    with pytest.raises(ValueError):
        mapping.order_identifier(order_id="x", alias=Alias("A", "1"))


ORDER = {
    "id": "322-ABC1-AAAAAA",
    "aliases": [{"aliasType": "OMS_ORDER_ID", "aliasId": "4711"}],
    "metadata": {"executionState": "STARTED"},
    "lineItems": [{"id": "11312196b6-1883e00df5", "aliases": [{"aliasType": "OMS_LINE_ID", "aliasId": "4711/10"}],
                   "amount": {"value": 2, "unit": "ONE"},
                   "product": {"identifier": {"sku": None, "amazonSku": {"value": "MSKU-1"}}}}],
}


def test_order_from_json() -> None:
    order = mapping.order_from_json(ORDER)
    assert order.order_id == "322-ABC1-AAAAAA"
    assert order.execution_state is ExecutionState.STARTED
    assert order.aliases == (Alias("OMS_ORDER_ID", "4711"),)
    line = order.line_for_alias(Alias("OMS_LINE_ID", "4711/10"))
    assert line is not None and line.line_id == "11312196b6-1883e00df5"
    assert line.quantity == Decimal(2) and line.sku == "MSKU-1"


@pytest.mark.parametrize(("broken", "message"), [
    ({"metadata": {"executionState": "PAUSED"}}, "executionState is 'PAUSED'"),
    ({"id": None}, "has no id"),
    ({"lineItems": None}, "lineItems is not a list"),
    ({"aliases": [{"aliasType": "X"}]}, "lacks aliasType or aliasId"),
    ({"lineItems": [{"id": "l", "amount": {"value": "many"}}]}, "is not a number"),
    ({"lineItems": [{"id": "l", "amount": {"value": "NaN"}}]}, "'NaN' is not a finite number"),
    ({"lineItems": [{"id": "l", "amount": {"value": float("inf")}}]}, "inf is not a finite number"),
])
def test_bad_orders_name_the_field(broken: dict, message: str) -> None:
    with pytest.raises(BadResponse, match=message):
        mapping.order_from_json({**ORDER, **broken})
