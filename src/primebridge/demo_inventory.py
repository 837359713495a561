"""The inventory part of ``primebridge demo``: a real-time update and a full reconciliation into SAP
and NetSuite, every outcome read back from the OMS sandboxes themselves.

Amazon's catalogue (the SP-API sandbox) holds a mix: a SKU equal in the OMS, one Amazon has more
of, one it has less of, one the mapping table does not know, one the OMS does not stock at the
Amazon location, and SKU-1, a Buy with Prime product that maps through the ``products`` query and
receives an ``INVENTORY_CHANGED`` event.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from rich.console import Console
from rich.table import Table

from primebridge.config import settings_from_dict
from primebridge.domain.events import event_from_json
from primebridge.entrypoints.bootstrap import build
from primebridge.sandbox.spapi import DEFAULT_REFRESH_TOKEN

PLANT, SLOC, LOCATION = "AMZ1", "0001", "7"
# seller SKU → (Amazon quantity, OMS stock or None = not stocked at the Amazon location, expected action)
MIX: dict[str, tuple[int, int | None, str]] = {
    "DEMO-EQUAL": (5, 5, "none"), "DEMO-MORE": (9, 2, "increase"), "DEMO-LESS": (1, 7, "decrease"),
    "DEMO-NOTSTOCKED": (3, None, "unknown"), "DEMO-NOMAP": (4, None, "unmapped"),
}
EVENT_SKU, EVENT_BEFORE, EVENT_AFTER = "SKU-1", 3, 8
NOTES = {"none": " (equal)", "increase": " (SAP movement 501, NetSuite +)", "decrease": " (SAP 502, NetSuite −)",
         "unknown": " (not stocked at the Amazon location: reported)", "unmapped": " (no OMS item: reported)"}


def item(sku: str) -> str:
    return "DM-" + sku.removeprefix("DEMO-")


def _config(base: dict[str, Any], spapi: str, report_dir: Path) -> dict[str, Any]:
    config = copy.deepcopy(base)
    config["spapi"] = {"endpoint": spapi, "lwa_url": f"{spapi}/auth/o2/token", "client_id": "sandbox-lwa-client",
                       "client_secret": "sandbox-lwa-secret", "refresh_token": DEFAULT_REFRESH_TOKEN,
                       "rate_per_second": 50.0, "burst": 5}
    config["sap"].setdefault("inventory", {}).update({"plant": PLANT, "storage_location": SLOC})
    config["netsuite"].setdefault("inventory", {}).update({"location_id": LOCATION, "account_id": "500"})
    config["inventory"] = {"enabled": True, "sku_map": {"*": {sku: item(sku) for sku in MIX if sku != "DEMO-NOMAP"}},
                           "report_dir": str(report_dir), "full_sync_interval_seconds": 0}
    return config


class _Oms:
    def __init__(self, http: httpx.Client, urls: dict[str, str]) -> None:
        self.http = http
        self.urls = urls

    def seed(self, stock: dict[str, int]) -> None:
        self.http.post(f"{self.urls['sap']}/_sandbox/stock", json={"items": [
            {"material": m, "plant": PLANT, "storage_location": SLOC, "quantity": q} for m, q in stock.items()]}
        ).raise_for_status()
        self.http.post(f"{self.urls['netsuite']}/_sandbox/inventory", json={"location": LOCATION, "items": [
            {"item": m, "quantity": q} for m, q in stock.items()]}).raise_for_status()

    def quantity(self, oms: str, name: str) -> Decimal | None:
        if oms == "sap":
            rows = self.http.get(f"{self.urls['sap']}/_sandbox/stock", params={
                "material": name, "plant": PLANT, "storage_location": SLOC}).json()["rows"]
            return sum((Decimal(r["MatlWrhsStkQtyInMatlBaseUnit"]) for r in rows), Decimal(0)) if rows else None
        found = self.http.get(f"{self.urls['netsuite']}/_sandbox/inventory",
                              params={"item": name, "location": LOCATION}).json()
        return None if found["quantityOnHand"] is None else Decimal(found["quantityOnHand"])


def run_inventory_demo(console: Console, base_config: dict[str, Any], urls: dict[str, str],
                       http: httpx.Client, directory: Path) -> list[str]:
    """Runs the inventory demo; returns the problems found (empty when every outcome was seen)."""
    from primebridge.demo import cli_name  # demo.py imports this module: import at call time

    problems: list[str] = []
    spapi = urls["spapi"]
    http.post(f"{spapi}/_sandbox/reset").raise_for_status()
    http.put(f"{spapi}/_sandbox/catalogue", json={"size": 0, "page_size": 2}).raise_for_status()
    http.post(f"{spapi}/_sandbox/inventory", json=[{"sellerSku": sku, "fulfillableQuantity": amazon}
                                                   for sku, (amazon, _, _) in MIX.items()]
              + [{"sellerSku": EVENT_SKU, "fulfillableQuantity": EVENT_AFTER}]).raise_for_status()
    oms = _Oms(http, urls)
    oms.seed({item(sku): stock for sku, (_, stock, _) in MIX.items() if stock is not None} | {EVENT_SKU: EVENT_BEFORE})
    config = _config(base_config, spapi, directory / "inventory")
    # The demo's config file gains the inventory sections, so the printed report command works with it.
    config_path = directory / "primebridge.toml"
    config_path.write_text(tomli_w.dumps(config))
    service = build(settings_from_dict(config))
    try:
        inventory = service.inventory
        assert inventory is not None
        event = event_from_json({"eventId": "demo-inventory-1", "eventDescriptor": "INVENTORY_CHANGED",
                                 "resources": [f"businessProduct/bp-demo/inventory-item/INV-{EVENT_SKU}"], "data": {}})
        outcome = service.event_handlers["INVENTORY_CHANGED"](event)
        run = inventory.reconciliation.run()
        rows = {(r["oms"], r["seller_sku"]): r for r in _rows(inventory)}
    finally:
        service.close()
    table = Table(title="Amazon inventory → SAP S/4HANA and NetSuite", title_justify="left")
    for column in ("seller SKU", "Amazon", "SAP before → after", "NetSuite before → after", "action"):
        table.add_column(column)
    for sku, (amazon, stock, action) in MIX.items():
        after = {name: oms.quantity(name, item(sku)) for name in ("sap", "netsuite")}
        expected = Decimal(amazon) if action in ("none", "increase", "decrease") else (
            None if stock is None else Decimal(stock))
        for name in ("sap", "netsuite"):
            if after[name] != expected:
                problems.append(f"inventory {sku} in {name}: {after[name]}, expected {expected}")
            got = rows.get((name, sku), {}).get("action", "none")
            if got != action:
                problems.append(f"inventory {sku} in {name}: action {got}, expected {action}")
        table.add_row(sku, str(amazon), f"{_q(stock)} → {_q(after['sap'])}", f"{_q(stock)} → {_q(after['netsuite'])}",
                      action + NOTES.get(action, ""))
    event_after = {name: oms.quantity(name, EVENT_SKU) for name in ("sap", "netsuite")}
    table.add_row(f"{EVENT_SKU} (event)", str(EVENT_AFTER), f"{EVENT_BEFORE} → {_q(event_after['sap'])}",
                  f"{EVENT_BEFORE} → {_q(event_after['netsuite'])}", "INVENTORY_CHANGED")
    if any(q != EVENT_AFTER for q in event_after.values()):
        problems.append(f"INVENTORY_CHANGED for {EVENT_SKU} left {event_after}, expected {EVENT_AFTER} ({outcome})")
    if run.status != "done":
        problems.append(f"inventory run {run.id} ended {run.status}: {run.error}")
    console.print(table)
    c = run.counters
    console.print(f"full reconciliation (run {run.id}): {c.scanned} SKUs scanned; counted per SKU and OMS: "
                  f"{c.posted} adjusted in {c.documents} OMS documents, {c.unmapped} unmapped, {c.unknown} unknown. "
                  f"SKU-1 was set by its INVENTORY_CHANGED event before the run, which then found it equal. "
                  f"Drift report: {cli_name()} inventory report {run.id} -c {config_path}", soft_wrap=True,
                  highlight=False)
    return problems


def _rows(inventory: Any) -> list[dict[str, str]]:
    from primebridge.flows.amazon_to_oms.inventory_reconciliation import iter_report

    runs = inventory.store.runs(limit=1)
    return list(iter_report(inventory.store, runs[0].id)) if runs else []


def _q(value: Decimal | int | None) -> str:
    return "-" if value is None else str(value)
