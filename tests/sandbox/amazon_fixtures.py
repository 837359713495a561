"""Helpers shared by the Buy with Prime connector and sandbox tests: sample requests and clients
wired to a running sandbox (plain functions, so each test file keeps its own pytest fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from primebridge.config import AmazonConfig
from primebridge.connectors.amazon import BwpGraphQLClient, BwpOrders, ClientCredentialsTokens, build_amazon_orders
from primebridge.connectors.amazon.client import request_operation
from primebridge.connectors.http import build_client
from primebridge.domain.model import (
    Address,
    Alias,
    DeliveryProvider,
    ExecutionState,
    FulfillmentLine,
    FulfillmentRequest,
    Money,
)

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
TARGET_ID = "sandbox-target"
CATALOG = [
    {"sku": "LAMP-1", "title": "LED Motion Sensor Headlamp", "price": 28},
    {"sku": "BOOK-1", "title": "In Search of Lost Time", "price": 10.5},
]
ADDRESS = Address(name="John Smith", street="399 Boren Ave N", city="Seattle", postal_code="98109",
                  country_code="US", region="WA", phone="206-555-0100")


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def amazon_line(line_id: str = "10", sku: str = "LAMP-1", quantity: str = "1", *, order_id: str = "4711",
                prime: bool = False, speed: str | None = "STANDARD") -> FulfillmentLine:
    return FulfillmentLine(
        oms_line_id=line_id, sku=sku, quantity=Decimal(quantity), provider=DeliveryProvider.AMAZON,
        prime=prime, delivery_speed=speed, title=f"title of {sku}", unit_price=usd("28.99"), tax=usd("2.57"),
        delivery_preview_id=f"SIP-{line_id}" if prime else None,
        delivery_offer_id=f"offer-{line_id}" if prime else None,
        alias=Alias("OMS_LINE_ID", f"{order_id}/{line_id}"))


def merchant_line(line_id: str = "20", sku: str = "GIFT-WRAP", *, order_id: str = "4711") -> FulfillmentLine:
    return FulfillmentLine(
        oms_line_id=line_id, sku=sku, quantity=Decimal(1), provider=DeliveryProvider.MERCHANT, prime=False,
        delivery_speed=None, title="Gift wrap", unit_price=usd("3"),
        alias=Alias("OMS_LINE_ID", f"{order_id}/{line_id}"))


def request(order_id: str = "4711", *lines: FulfillmentLine,
            state: ExecutionState = ExecutionState.NOT_STARTED, shopper_token: str | None = None,
            **extra: Any) -> FulfillmentRequest:
    return FulfillmentRequest(
        oms="sap", oms_order_id=order_id, alias=Alias("OMS_ORDER_ID", order_id), execution_state=state,
        recipient=ADDRESS, currency="USD", lines=lines or (amazon_line(order_id=order_id),),
        customer_name="John Smith", customer_email="john@example.com", shopper_identity_token=shopper_token,
        total=usd("31.56"), tax_total=usd("2.57"), **extra)


def http_client(url: str) -> httpx.Client:
    return build_client(system="amazon", base_url=url, timeout=10, operation=request_operation)


def tokens(url: str, *, secret: str = CLIENT_SECRET, renew_before: float = 120,
           client_auth: str = "basic", clock: Callable[[], float] | None = None) -> ClientCredentialsTokens:
    extra = {"clock": clock} if clock is not None else {}
    return ClientCredentialsTokens(http_client(url), "/token", CLIENT_ID, secret, renew_before,
                                   client_auth=client_auth, **extra)  # type: ignore[arg-type]


def graphql_client(url: str, source: ClientCredentialsTokens | None = None, **kwargs: Any) -> BwpGraphQLClient:
    source = source or tokens(url)
    kwargs.setdefault("target_id", TARGET_ID)
    return BwpGraphQLClient(http_client(url), source, **kwargs)


def orders(url: str, **config: Any) -> BwpOrders:
    """``BwpOrders`` built the production way, from an ``AmazonConfig``."""
    cfg = AmazonConfig(graphql_url=f"{url}/graphql", token_url=f"{url}/token", client_id=CLIENT_ID,
                       client_secret=config.pop("client_secret", CLIENT_SECRET), target_id=TARGET_ID, **config)
    return build_amazon_orders(cfg)


def stats(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/_sandbox/stats").json()
