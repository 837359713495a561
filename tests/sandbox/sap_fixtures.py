"""Fixtures for the SAP sandbox and connector tests: one real server per module, reset per test."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import httpx
import pytest

from primebridge.config import SapConfig
from primebridge.sandbox.sap import DEFAULT_SERVICE_PATH, create_app
from primebridge.sandbox.sap.contracts import contracts_dir
from primebridge.sandbox.server import ThreadedServer

CONTRACTS = contracts_dir()
EDMX = CONTRACTS / "API_SALES_ORDER_SRV.edmx"
SERVICE = DEFAULT_SERVICE_PATH
OAUTH_CLIENTS = {"bridge-client": "bridge-secret"}

T = TypeVar("T", bound="_Closable")


class _Closable(Protocol):
    def close(self) -> None: ...


Track = Callable[[T], T]


@pytest.fixture()
def track() -> Iterator[Callable[[Any], Any]]:
    """``track(build_sap_orders(...))``: closes the connector's HTTP clients after the test."""
    opened: list[_Closable] = []

    def register(obj: Any) -> Any:
        opened.append(obj)
        return obj

    yield register
    for obj in opened:
        obj.close()


SAMPLE_ORDER: dict[str, Any] = {
    "type": "OR",
    "shipping_condition": "01",
    "currency": "USD",
    "sold_to": {"customer": "1000001", "name": "Ann Buyer", "street": "Main St", "house_number": "1",
                "city": "Seattle", "postal_code": "98101", "region": "WA", "country": "US",
                "email": "ann@example.com"},
    "ship_to": {"name": "Bob Receiver", "street": "Pine St", "house_number": "22", "city": "Tacoma",
                "postal_code": "98402", "region": "WA", "country": "US", "phone": "+1 555 0100"},
    "items": [
        {"material": "SKU-1", "qty": "2", "plant": "1010", "price": "19.99", "tax": "3.20", "title": "Widget",
         "texts": {"Z004": "preview-1", "Z005": "offer-1"}},
        {"material": "SKU-2", "qty": "1", "plant": "2000", "price": "5.00", "tax": "0.40", "title": "Gadget"},
        {"material": "SKU-3", "qty": "3", "plant": "1010", "price": "1.50", "rejection_reason": "Z1"},
    ],
    "texts": {"Z003": "X", "Z006": "shopper-token-1"},
}


def sample_order(**changes: Any) -> dict[str, Any]:
    order = copy.deepcopy(SAMPLE_ORDER)
    order.update(changes)
    return order


@pytest.fixture(scope="module")
def sap_server() -> Iterator[ThreadedServer]:
    app = create_app(username="bridge", password="s3cret", oauth_clients=OAUTH_CLIENTS, metadata_path=EDMX)
    with ThreadedServer(app, name="sap-sandbox") as server:
        yield server


@pytest.fixture()
def admin(sap_server: ThreadedServer) -> Iterator[httpx.Client]:
    """Admin API client; the sandbox is reset before every test so tests do not see each other."""
    with httpx.Client(base_url=sap_server.url, timeout=10) as client:
        client.post("/_sandbox/reset").raise_for_status()
        client.put("/_sandbox/knobs", json={"error_rate": 0, "throttle_rate": 0, "latency_ms": 0,
                                            "retry_after_seconds": 1}).raise_for_status()
        yield client


def seed(admin: httpx.Client, order: dict[str, Any] | None = None) -> str:
    response = admin.post("/_sandbox/sales-orders", json=order if order is not None else sample_order())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def sap_config(url: str, **changes: Any) -> SapConfig:
    values: dict[str, Any] = {"enabled": True, "base_url": url, "username": "bridge", "password": "s3cret"}
    values.update(changes)
    return SapConfig(**values)


def raw_client(url: str, *, auth: tuple[str, str] | None = ("bridge", "s3cret")) -> httpx.Client:
    """A plain HTTP client for protocol-level checks (JSON accepted by default)."""
    return httpx.Client(base_url=url + SERVICE, auth=auth, headers={"Accept": "application/json"}, timeout=10)
