"""Inventory into SAP S/4HANA and into NetSuite end to end: SP-API sandbox → primebridge → the OMS
sandbox's stock and adjustment documents (SAP material documents, NetSuite inventory adjustments),
read back from that sandbox itself. The OMS-specific parts are in inventory_harness.py (``oms_stock``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from primebridge.flows.amazon_to_oms.inventory_reconciliation import report_paths
from primebridge.sandbox.profile import sandbox_config
from tests.e2e import harness
from tests.e2e.harness import Bridge, Sandboxes, wait_for
from tests.e2e.inventory_harness import (
    EVENT_AUTH,
    MIX,
    UNMAPPED,
    OmsStock,
    SpApi,
    inventory_bridge,
    inventory_event,
    oms_stock,
    spapi,
    spapi_overrides,
)

sandboxes = harness.sandboxes
store_url = harness.store_url
__all__ = ["spapi"]

# Both OMSs on SQLite; SAP also on PostgreSQL (upserts, RETURNING and the lease on the real store).
BOTH_OMS_BOTH_STORES = pytest.mark.parametrize(
    ("oms", "store_url"),
    [(oms, "sqlite") for oms in ("sap", "netsuite")]
    + [pytest.param(oms, "postgres", marks=pytest.mark.postgres) for oms in ("sap", "netsuite")],
    indirect=True)


@pytest.fixture(params=["sap", "netsuite"])
def oms(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def setup(oms: str, sandboxes: Sandboxes, spapi: SpApi, store_url: str,
          tmp_path: Path) -> Iterator[tuple[Bridge, OmsStock]]:
    sandboxes.reset()
    spapi.reset()
    stock = oms_stock(oms, sandboxes)
    for sku, (amazon, _) in MIX.items():
        spapi.set(sku, amazon)
    spapi.set(UNMAPPED, 4)
    stock.set({stock.item(sku): quantity for sku, (_, quantity) in MIX.items() if quantity is not None})
    items = {sku: stock.item(sku) for sku in MIX}
    bridge = inventory_bridge(sandboxes, spapi, store_url, oms, items, stock.settings, str(tmp_path / "reports"))
    try:
        yield bridge, stock
    finally:
        bridge.close()


@BOTH_OMS_BOTH_STORES
def test_full_reconciliation(setup: tuple[Bridge, OmsStock], tmp_path: Path) -> None:
    bridge, stock = setup
    inventory = bridge.service.inventory
    assert inventory is not None
    run = inventory.reconciliation.run()
    assert run.status == "done"
    item = stock.item
    assert stock.quantity(item("HIGHER")) == 9 and stock.quantity(item("LOWER")) == 1
    assert stock.quantity(item("EQUAL")) == 5
    assert stock.quantity(item("UNKNOWN")) is None
    assert stock.quantity(item("NEGATIVE")) == 1 and stock.quantity(item("TEXT")) == 1
    assert sorted(stock.adjusted_items()) == [item("HIGHER"), item("LOWER")]
    c = run.counters
    assert (c.scanned, c.equal, c.posted, c.unmapped, c.unknown, c.invalid, c.failed) == (7, 1, 2, 1, 1, 2, 0)
    csv_path, json_path = report_paths(tmp_path / "reports", run.id)
    text = csv_path.read_text()
    assert "INV-NOMAP" in text and "unmapped" in text and json_path.exists()
    rows = {r["seller_sku"]: r for r in json.loads(json_path.read_text())["rows"]}
    documents = stock.document_ids()
    assert rows["INV-HIGHER"]["document"] in documents and rows["INV-HIGHER"]["action"] == "increase"
    assert rows["INV-LOWER"]["action"] == "decrease" and rows["INV-UNKNOWN"]["action"] == "unknown"
    # a second run finds nothing to do
    again = inventory.reconciliation.run()
    assert again.counters.posted == 0 and len(stock.documents()) == len(documents)


def test_inventory_changed_event_updates_the_oms(setup: tuple[Bridge, OmsStock], spapi: SpApi) -> None:
    bridge, stock = setup
    # SKU-1 is a Buy with Prime product: its inventory item INV-SKU-1 (what the event names) resolves
    # through the inventoryItem query; its sku is the OMS item (SAP material, NetSuite item name).
    stock.set({"SKU-1": 3})
    spapi.set("SKU-1", 8)
    answer = bridge.post("/events/amazon", inventory_event("INV-SKU-1"), headers=EVENT_AUTH)
    assert answer.status_code == 200, answer.text
    bridge.run_until_idle()
    assert stock.quantity("SKU-1") == 8
    # an event older than the reading just applied changes nothing, even though Amazon moved on
    spapi.set("SKU-1", 2)
    bridge.post("/events/amazon", inventory_event("INV-SKU-1", event_time="2020-01-01T00:00:00Z"), headers=EVENT_AUTH)
    bridge.run_until_idle()
    assert stock.quantity("SKU-1") == 8
    # a newer one applies the current quantity
    bridge.post("/events/amazon", inventory_event("INV-SKU-1", event_time="2031-01-01T00:00:00Z"), headers=EVENT_AUTH)
    bridge.run_until_idle()
    assert stock.quantity("SKU-1") == 2
    assert len(stock.adjusted_items()) == 2
    jobs = bridge.jobs()
    assert [j.status for j in jobs] == ["done", "done", "done"]
    assert "stale" in (jobs[1].outcome or "")


@BOTH_OMS_BOTH_STORES
def test_a_killed_run_resumed_posts_no_double_adjustment(oms: str, sandboxes: Sandboxes, spapi: SpApi,
                                                         store_url: str, tmp_path: Path) -> None:
    """The CLI is killed with SIGKILL mid-run; ``--resume`` finishes it, and every item ends at
    Amazon's quantity with exactly one adjustment."""
    sandboxes.reset()
    spapi.reset(page_size=2, rate=4.0, burst=1)  # 20 pages at 4/s: about 5 s, long enough to kill midway
    stock = oms_stock(oms, sandboxes)
    skus = [f"K-{i:03}" for i in range(40)]
    for i, sku in enumerate(skus):
        spapi.set(sku, 100 + i)
    stock.set({f"MK-{i:03}": i for i in range(40)})
    overrides = {**spapi_overrides(spapi.url), "spapi.rate_per_second": 4.0, "spapi.burst": 1,
                 "inventory.enabled": True, "inventory.oms": [oms], "inventory.use_products": False,
                 "inventory.sku_map": {oms: {sku: f"MK-{i:03}" for i, sku in enumerate(skus)}},
                 "inventory.report_dir": str(tmp_path / "reports"), "inventory.full_sync_interval_seconds": 0,
                 **stock.settings}
    urls = sandboxes.urls
    config = sandbox_config(amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"],
                            store_url=store_url, overrides=overrides)
    path = tmp_path / "primebridge.toml"
    path.write_text(tomli_w.dumps(config))
    env = {**os.environ, "PRIMEBRIDGE_CONFIG": str(path)}
    cli = [sys.executable, "-m", "primebridge.entrypoints.cli", "inventory", "sync", "--full"]
    child = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(stock.adjusted_items()) >= 6, "the first adjustments", timeout=60)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    before = len(stock.adjusted_items())
    assert before < 40, "the run finished before it could be killed"
    spapi.reset(page_size=2, rate=200.0, burst=10)
    for i, sku in enumerate(skus):  # the reset cleared the entries: the same catalogue again
        spapi.set(sku, 100 + i)
    resumed = subprocess.run([*cli, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    adjusted = stock.adjusted_items()
    assert sorted(adjusted) == sorted(set(adjusted)) and len(adjusted) == 40
    assert all(stock.quantity(f"MK-{i:03}") == 100 + i for i in range(40))
    report = subprocess.run([sys.executable, "-m", "primebridge.entrypoints.cli", "inventory", "report"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0 and "done" in report.stdout and "increase" in report.stdout
