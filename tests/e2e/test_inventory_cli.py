"""The inventory parts of the command line as an operator meets them: ``config check`` proves SP-API and
the OMS inventory settings before the first run, the mapping CSV is validated, and ``inventory sync``
and ``inventory report`` print per-run results. In-process through Typer's ``CliRunner``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import tomli_w
from click.testing import Result
from typer.testing import CliRunner

from primebridge.entrypoints.cli import app
from primebridge.runtime import migrate
from primebridge.runtime.db import Database
from primebridge.runtime.inventory_store import InventoryStore
from primebridge.sandbox.profile import sandbox_config
from tests.e2e import harness
from tests.e2e.harness import Sandboxes
from tests.e2e.inventory_harness import SpApi, spapi, spapi_overrides

sandboxes = harness.sandboxes
__all__ = ["spapi"]

WIDE = {"COLUMNS": "4000"}
PLANT, SLOC = "AMZ1", "0001"


@pytest.fixture(autouse=True)
def _keep_logging_config() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def write_config(tmp_path: Path, sandboxes: Sandboxes, spapi: SpApi, **overrides: Any) -> Path:
    urls = sandboxes.urls
    data = sandbox_config(amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"],
                          store_url=f"sqlite:///{tmp_path / 'inv.db'}", overrides={
                              "log_level": "WARNING", **spapi_overrides(spapi.url), "inventory.enabled": True,
                              "inventory.full_sync_interval_seconds": 0, "inventory.report_dir": str(tmp_path / "r"),
                              "sap.inventory.plant": PLANT, "sap.inventory.storage_location": SLOC, **overrides})
    path = tmp_path / "primebridge.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def pb(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--config", str(config)], env=WIDE, catch_exceptions=False)


def row(output: str, system: str) -> str:
    return next(line for line in output.splitlines() if line.strip("│ ").startswith(f"{system} "))


@pytest.fixture
def fresh(sandboxes: Sandboxes, spapi: SpApi) -> Sandboxes:
    sandboxes.reset()
    spapi.reset()
    return sandboxes


def test_config_check_proves_spapi_and_the_inventory_settings(fresh: Sandboxes, spapi: SpApi,
                                                              tmp_path: Path) -> None:
    mapping = tmp_path / "map.csv"
    mapping.write_text("seller_sku,oms_item,oms\nSKU-A,MAT-A,\nSKU-B,MAT-B,SAP\n")
    result = pb(write_config(tmp_path, fresh, spapi, **{"inventory.mapping_file": str(mapping)}), "config", "check")

    assert result.exit_code == 0, result.output
    assert re.search(r"spapi\s+│\s+ok\s+│\s+LWA token obtained; getInventorySummaries answered", result.output)
    # The CSV's "SAP" is read as sap (it used to be a table for an OMS named "SAP", silently never used).
    assert "sap 2, netsuite 1 SKUs" in row(result.output, "inventory")
    assert f"plant {PLANT} storage location {SLOC}" in row(result.output, "sap inventory")
    assert re.search(r"netsuite inventory\s+│\s+ok\s+│\s+location 7", result.output)
    assert spapi.stats()["counters"]["lwa.issued"] >= 1


def test_config_check_names_a_wrong_location_credentials_and_mapping(fresh: Sandboxes, spapi: SpApi,
                                                                     tmp_path: Path) -> None:
    mapping = tmp_path / "map.csv"
    mapping.write_text("seller_sku,oms_item,oms\nSKU-A,MAT-A,netsuit\n")
    config = write_config(tmp_path, fresh, spapi, **{
        "inventory.mapping_file": str(mapping), "netsuite.inventory.location_id": "999",
        "spapi.refresh_token": "Atzr|not-the-sellers-token", "sap.inventory.storage_location": "ZZZZ"})
    result = pb(config, "config", "check")

    assert result.exit_code == 1
    assert "failed" in row(result.output, "spapi") and "invalid_grant" in row(result.output, "spapi")
    assert "failed" in row(result.output, "inventory") and "'netsuit'" in row(result.output, "inventory")
    assert "failed" in row(result.output, "netsuite inventory") and "999" in row(result.output, "netsuite inventory")
    assert "holds NO stock" in row(result.output, "sap inventory")  # a warning: a new location may be empty
    # The same mapping refuses to start the service instead of reporting every SKU unmapped.
    sync = pb(config, "inventory", "sync", "--full")
    assert sync.exit_code == 2 and "netsuit" in sync.output


def test_sync_and_report_print_per_sku_and_oms_counts(fresh: Sandboxes, spapi: SpApi, tmp_path: Path) -> None:
    spapi.set("SKU-A", 9)
    spapi.set("SKU-NOMAP", 1)
    fresh.seeder.http.post(f"{fresh.urls['sap']}/_sandbox/stock", json={"items": [
        {"material": "MAT-A", "plant": PLANT, "storage_location": SLOC, "quantity": 2}]}).raise_for_status()
    config = write_config(tmp_path, fresh, spapi, **{"inventory.oms": ["sap"], "inventory.use_products": False,
                                                     "inventory.sku_map": {"sap": {"SKU-A": "MAT-A"}}})
    sync = pb(config, "inventory", "sync", "--full")

    assert sync.exit_code == 0, sync.output
    assert "2 SKUs scanned; per SKU and OMS (sap): 0 equal, 1 differences, 1 adjusted in 1 document(s), " \
           "1 unmapped" in sync.output
    report = pb(config, "inventory", "report")
    assert report.exit_code == 0, report.output
    assert re.search(r"SKU-A\s+│\s+MAT-A\s+│\s+9\s+│\s+2\s+│\s+increase", report.output)
    assert "neither in the mapping table for sap" in report.output


def test_runs_shows_a_killed_run_as_interrupted_with_the_resume_hint(fresh: Sandboxes, spapi: SpApi,
                                                                   tmp_path: Path) -> None:
    """A SIGKILLed run cannot write its own end: the store still says ``running``. ``inventory runs``
    tells it from a live one by the lease the live one keeps renewing."""
    config = write_config(tmp_path, fresh, spapi, **{"inventory.oms": ["sap"], "inventory.use_products": False,
                                                     "inventory.sku_map": {"sap": {"SKU-A": "MAT-A"}}})
    db = Database(f"sqlite:///{tmp_path / 'inv.db'}")
    migrate.upgrade(db)
    store = InventoryStore(db)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}:deadbeef"  # as a killed CLI leaves it: lease not yet expired
    assert store.acquire(dead, 600)
    run = store.start_run(["sap"], "cli")
    assert store.renew(dead, 600, run.id)
    status = re.compile(rf"│\s+{run.id}\s+│\s+sap\s+│\s+cli\s+│\s+(\w+)\s+│")
    try:
        listed = pb(config, "inventory", "runs")
        assert listed.exit_code == 0, listed.output
        assert status.findall(listed.output) == ["interrupted"]
        assert f"run {run.id} stopped interrupted; continue it with inventory sync --full --resume" in listed.output
        report = pb(config, "inventory", "report")
        assert f"run {run.id} (sap, cli) interrupted" in report.output and "--resume" in report.output

        alive = f"{socket.gethostname()}:{os.getpid()}:alive123"  # a live holder renewing its lease
        assert store.take_over(dead, alive, 600) and store.renew(alive, 600, run.id)
        listed = pb(config, "inventory", "runs")
        assert status.findall(listed.output) == ["running"] and "--resume" not in listed.output

        assert store.take_over(alive, "another-host:4242:0123abcd", -1)  # a holder elsewhere, lease expired
        assert status.findall(pb(config, "inventory", "runs").output) == ["interrupted"]
        stored = store.get_run(run.id)
        assert stored is not None and stored.status == "running"  # only what is shown changed
    finally:
        db.dispose()
