"""Shared set-up of the inventory end-to-end tests: the SP-API sandbox next to the other three, a
primebridge with inventory enabled for one OMS, and per OMS the stock read back from its sandbox
(``oms_stock``), so that tests/e2e/test_inventory.py runs the same cases into SAP and into NetSuite.

The Amazon catalogue is the SP-API sandbox's explicit entries only (generated size 0), so each test
states every SKU it has; pages are small so a scan has several.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Protocol

import httpx
import pytest

from primebridge.sandbox.server import ThreadedServer
from primebridge.sandbox.spapi import DEFAULT_REFRESH_TOKEN, create_app
from tests.e2e.harness import Bridge, Sandboxes, make_bridge

BP = "businessProduct/bp-00000000-0000-4000-8000-00000000e2e4"
EVENT_AUTH = {"Authorization": "Basic " + base64.b64encode(b"bwp-sandbox:sandbox-events-password").decode()}

# seller SKU → (Amazon quantity, OMS stock or None for "not at the location")
MIX: dict[str, tuple[Any, int | None]] = {
    "INV-EQUAL": (5, 5),
    "INV-HIGHER": (9, 2),
    "INV-LOWER": (1, 7),
    "INV-UNKNOWN": (3, None),     # mapped, but the OMS has no stock row there
    "INV-NEGATIVE": (-2, 1),      # Amazon reports nonsense
    "INV-TEXT": ("many", 1),
}
UNMAPPED = "INV-NOMAP"


class SpApi:
    def __init__(self, server: ThreadedServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10.0)

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self, *, page_size: int = 2, rate: float = 200.0, burst: int = 10) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()
        self.http.put("/_sandbox/catalogue", json={"size": 0, "page_size": page_size}).raise_for_status()
        self.http.put("/_sandbox/rate-limit", json={"rate": rate, "burst": burst}).raise_for_status()

    def set(self, sku: str, quantity: Any, *, updated: str | None = None) -> None:
        body: dict[str, Any] = {"sellerSku": sku, "fulfillableQuantity": quantity}
        if updated:
            body["lastUpdatedTime"] = updated
        self.http.post("/_sandbox/inventory", json=[body]).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/_sandbox/stats").json())


@pytest.fixture(scope="module")
def spapi() -> Iterator[SpApi]:
    server = ThreadedServer(create_app(catalogue_size=0, page_size=2, rate=200.0, burst=10), name="spapi").start()
    made = SpApi(server)
    try:
        yield made
    finally:
        made.http.close()
        server.stop()


def spapi_overrides(url: str) -> dict[str, Any]:
    return {"spapi.endpoint": url, "spapi.lwa_url": f"{url}/auth/o2/token", "spapi.client_id": "sandbox-lwa-client",
            "spapi.client_secret": "sandbox-lwa-secret", "spapi.refresh_token": DEFAULT_REFRESH_TOKEN,
            "spapi.rate_per_second": 200.0, "spapi.burst": 10}


def inventory_bridge(sandboxes: Sandboxes, spapi: SpApi, store_url: str, oms: str, items: dict[str, str],
                     overrides: dict[str, Any], report_dir: str) -> Bridge:
    """``items`` maps seller SKU → OMS item (the mapping table); the other OMS stays untouched."""
    return make_bridge(sandboxes, store_url, overrides={
        **spapi_overrides(spapi.url), "inventory.enabled": True, "inventory.oms": [oms],
        "inventory.sku_map": {oms: items}, "inventory.report_dir": report_dir,
        "inventory.full_sync_interval_seconds": 0, "inventory.parallel": 2, **overrides})


def inventory_event(item_id: str, *, event_id: str | None = None,
                    event_time: str = "2030-01-01T00:00:00Z") -> dict[str, Any]:
    event_id = event_id or str(uuid.uuid4())
    return {"idempotencyKey": base64.b64encode(f"sub-inv#{event_id}".encode()).decode(),
            "eventDescriptor": "INVENTORY_CHANGED", "resources": [f"{BP}/inventory-item/{item_id}"],
            "eventId": event_id, "apiVersion": "2024-11-01", "subscriptionId": "sub-inv",
            "eventTime": event_time, "data": {}}


class OmsStock(Protocol):
    """One OMS's stock at the synced location and the adjustment documents posted there, read back
    through its sandbox's admin API."""

    oms: str
    settings: dict[str, Any]  # the OMS's inventory overrides (location / plant and storage location)

    def item(self, sku: str) -> str: ...  # the OMS item a seller SKU of ``MIX`` maps to
    def set(self, items: dict[str, int]) -> None: ...
    def quantity(self, item: str) -> Decimal | None: ...
    def documents(self) -> list[dict[str, Any]]: ...
    def document_ids(self) -> set[str]: ...  # as the reconciliation report names them
    def adjusted_items(self) -> list[str]: ...  # one entry per adjusted line, over all documents


class SapStock:
    oms = "sap"
    PLANT, SLOC = "AMZ1", "0001"
    settings: dict[str, Any] = {"sap.inventory.plant": PLANT, "sap.inventory.storage_location": SLOC}

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.http = sandboxes.seeder.http
        self.url = sandboxes.urls["sap"]

    def item(self, sku: str) -> str:
        return "M-" + sku.removeprefix("INV-")

    def set(self, items: dict[str, int]) -> None:
        self.http.post(f"{self.url}/_sandbox/stock", json={"items": [
            {"material": m, "plant": self.PLANT, "storage_location": self.SLOC, "quantity": q}
            for m, q in items.items()]}).raise_for_status()

    def quantity(self, item: str) -> Decimal | None:
        rows = self.http.get(f"{self.url}/_sandbox/stock", params={"material": item, "plant": self.PLANT,
                                                                  "storage_location": self.SLOC}).json()["rows"]
        return sum((Decimal(r["MatlWrhsStkQtyInMatlBaseUnit"]) for r in rows), Decimal(0)) if rows else None

    def documents(self) -> list[dict[str, Any]]:
        return list(self.http.get(f"{self.url}/_sandbox/material-documents").json()["documents"])

    def document_ids(self) -> set[str]:
        return {f'{d["MaterialDocument"]}/{d["MaterialDocumentYear"]}' for d in self.documents()}

    def adjusted_items(self) -> list[str]:
        return [item["Material"] for doc in self.documents() for item in doc["items"]]


class NetSuiteStock:
    oms = "netsuite"
    LOCATION = "7"
    settings: dict[str, Any] = {"netsuite.inventory.location_id": LOCATION, "netsuite.inventory.account_id": "500"}

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.http = sandboxes.seeder.http
        self.url = sandboxes.urls["netsuite"]

    def item(self, sku: str) -> str:
        return "NS-" + sku.removeprefix("INV-")

    def set(self, items: dict[str, int]) -> None:
        self.http.post(f"{self.url}/_sandbox/inventory", json={"location": self.LOCATION, "items": [
            {"item": m, "quantity": q} for m, q in items.items()]}).raise_for_status()

    def quantity(self, item: str) -> Decimal | None:
        found = self.http.get(f"{self.url}/_sandbox/inventory",
                              params={"item": item, "location": self.LOCATION}).json()
        return None if found["quantityOnHand"] is None else Decimal(found["quantityOnHand"])

    def documents(self) -> list[dict[str, Any]]:
        return list(self.http.get(f"{self.url}/_sandbox/inventory-adjustments").json()["items"])

    def document_ids(self) -> set[str]:
        return {d["id"] for d in self.documents()}

    def adjusted_items(self) -> list[str]:
        return [line["item"]["refName"] for doc in self.documents() for line in doc["inventory"]["items"]]


def oms_stock(oms: str, sandboxes: Sandboxes) -> OmsStock:
    stocks: dict[str, type[SapStock] | type[NetSuiteStock]] = {"sap": SapStock, "netsuite": NetSuiteStock}
    return stocks[oms](sandboxes)
