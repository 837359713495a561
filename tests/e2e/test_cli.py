"""The real ``primebridge`` command line against the sandboxes, with a config file as an operator has.

Commands run in-process through Typer's ``CliRunner`` (fast), with the same config TOML that
``primebridge -c`` would read in production; outcomes are checked in the sandboxes as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import tomli_w
from click.testing import Result
from typer.testing import CliRunner

from primebridge.entrypoints.cli import app
from primebridge.sandbox.profile import sandbox_config
from tests.e2e import harness
from tests.e2e.harness import Sandboxes, closed_port_url

sandboxes = harness.sandboxes

# Amazon client secret, NetSuite consumer and token secrets, and base64("sandbox:sandbox") for SAP Basic.
SECRETS = ("sandbox-secret", "sandbox-cs", "sandbox-ts", "c2FuZGJveDpzYW5kYm94")
WIDE = {"COLUMNS": "4000"}  # tables and JSON unwrapped, so a search cannot miss a split word


@pytest.fixture(autouse=True)
def _keep_logging_config() -> Iterator[None]:
    """Every command configures structlog for its own run; put the test session's config back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def write_config(path: Path, sandboxes: Sandboxes, store: Path, **overrides: Any) -> Path:
    urls = sandboxes.urls
    data = sandbox_config(amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"],
                          store_url=f"sqlite:///{store}", overrides={"log_level": "WARNING", **overrides})
    path.write_text(tomli_w.dumps(data))
    return path


@pytest.fixture
def config(sandboxes: Sandboxes, tmp_path: Path) -> Path:
    sandboxes.reset()
    return write_config(tmp_path / "primebridge.toml", sandboxes, tmp_path / "cli.db")


def pb(config: Path | None, *args: str, env: dict[str, str] | None = None) -> Result:
    argv = [*args, "--config", str(config)] if config is not None else list(args)
    return CliRunner().invoke(app, argv, env=env or WIDE, catch_exceptions=False)


def job_rows(output: str) -> dict[str, list[str]]:
    """``jobs list`` table rows by job id: [id, kind, order, status, attempts, next, outcome]."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells and cells[0].isdigit():
            rows[cells[0]] = cells
    return rows


def test_operator_workflow_sync_list_show_retry_replay_and_audit(config: Path, sandboxes: Sandboxes) -> None:
    seeder = sandboxes.seeder
    good = seeder.sap_order()
    broken = seeder.sap_order(ship_to=False)
    netsuite = seeder.netsuite_order()

    upgraded = pb(config, "db", "upgrade")
    assert upgraded.exit_code == 0 and "schema at revision" in upgraded.output

    synced = pb(config, "sync", "orders", "--process")
    assert synced.exit_code == 0, synced.output
    assert "sap: 2 order sync job(s) enqueued" in synced.output
    assert "netsuite: 1 order sync job(s) enqueued" in synced.output

    listed = pb(config, "jobs", "list")
    assert listed.exit_code == 0
    assert "done: 2 · rejected: 1" in listed.output
    rows = job_rows(listed.output)
    by_order = {row[2]: row for row in rows.values()}
    assert by_order[f"sap:order:{good}"][3] == "done"
    assert by_order[f"netsuite:order:{netsuite}"][3] == "done"
    rejected_id = by_order[f"sap:order:{broken}"][0]

    only_rejected = job_rows(pb(config, "jobs", "list", "--status", "rejected").output)
    assert list(only_rejected) == [rejected_id]
    assert "ship-to" in only_rejected[rejected_id][6]

    shown = pb(config, "jobs", "show", rejected_id)
    assert shown.exit_code == 0
    assert '"status": "rejected"' in shown.output and "the order has no ship-to address" in shown.output

    # The merchant fixes the order in SAP; the operator retries the rejected job.
    seeder.sap_change(broken, {"ship_to": {"name": "Bob Receiver", "street": "Pine St", "house_number": "22",
                                           "city": "Tacoma", "postal_code": "98402", "region": "WA",
                                           "country": "US"}})
    retried = pb(config, "jobs", "retry", rejected_id)
    assert retried.exit_code == 0 and f"job {rejected_id} queued again" in retried.output
    assert pb(config, "sync", "orders", "--oms", "sap", "--process").exit_code == 0
    after = pb(config, "jobs", "show", rejected_id)
    assert '"status": "done"' in after.output
    assert len(re.findall(r"^│\s+\d+\s+│", after.output, re.M)) == 2  # two attempts listed
    header, _ = seeder.sap_amazon_ids(broken)
    assert header is not None

    # A done job cannot be retried, only replayed; the replay is idempotent.
    good_id = by_order[f"sap:order:{good}"][0]
    refused = pb(config, "jobs", "retry", good_id)
    assert refused.exit_code == 1 and "retried (it must be dead or rejected)" in refused.output
    created = seeder.amazon_stats()["createOrder.created"]
    replayed = pb(config, "jobs", "replay", good_id)
    assert replayed.exit_code == 0 and "queued again" in replayed.output
    assert pb(config, "sync", "orders", "--process").exit_code == 0
    rerun = pb(config, "jobs", "show", good_id)
    assert '"status": "done"' in rerun.output and "unchanged since last sync" in rerun.output
    assert seeder.amazon_stats()["createOrder.created"] == created

    audit = pb(config, "audit", good, "--full")
    assert audit.exit_code == 0
    assert "graphql createOrder" in audit.output
    assert re.search(r"primebridge\s+│\s+create\s+│\s+ok", audit.output)
    for secret in SECRETS:
        assert secret not in audit.output
    assert not re.search(r'"authorization":\s*"(?!\*\*\*)', audit.output, re.I)
    assert "nothing recorded" in pb(config, "audit", "no-such-order").output


def test_config_check_reaches_every_system(config: Path) -> None:
    assert pb(config, "db", "upgrade").exit_code == 0
    result = pb(config, "config", "check")

    assert result.exit_code == 0, result.output
    for system in ("configuration", "store", "amazon", "events", "sap", "netsuite"):
        assert re.search(rf"{system}\s+│\s+ok", result.output), system


def test_config_check_reports_event_credentials_that_would_refuse_every_delivery(sandboxes: Sandboxes,
                                                                                 tmp_path: Path) -> None:
    """Without working [events] credentials BwP's deliveries all get 401: config check says so up front."""
    config = write_config(tmp_path / "events.toml", sandboxes, tmp_path / "cli.db", **{
        "events.basic_password": "env:PB_TEST_UNSET_EVENTS_PASSWORD"})
    result = pb(config, "config", "check")
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if line.strip("│ ").startswith("events"))
    assert "failed" in line and "PB_TEST_UNSET_EVENTS_PASSWORD" in line, line


def test_config_check_fails_clearly_when_sap_is_unreachable(sandboxes: Sandboxes, tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.toml", sandboxes, tmp_path / "cli.db",
                          **{"sap.base_url": closed_port_url()})

    result = pb(config, "config", "check")

    assert result.exit_code == 1
    sap_line = next(line for line in result.output.splitlines() if line.strip("│ ").startswith("sap"))
    assert "failed" in sap_line and "Connect" in sap_line, sap_line
    assert re.search(r"netsuite\s+│\s+ok", result.output)


def test_an_invalid_config_value_exits_2_naming_the_key(sandboxes: Sandboxes, tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.toml", sandboxes, tmp_path / "cli.db",
                          **{"runtime.worker_concurrency": 0})

    for command in (("config", "check"), ("jobs", "list")):
        result = pb(config, *command)
        assert result.exit_code == 2
        assert "runtime.worker_concurrency" in result.output


def test_demo_runs_end_to_end_from_a_clean_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRIMEBRIDGE_CLI", "./dev")   # as `./dev demo` sets it: the hints name ./dev

    result = pb(None, "demo")

    assert result.exit_code == 0, result.output
    assert "all expected outcomes seen for 13 orders" in result.output
    assert "SAP S/4HANA → Buy with Prime" in result.output and "NetSuite → Buy with Prime" in result.output
    assert (tmp_path / "var" / "demo" / "primebridge.db").exists()
    assert (tmp_path / "var" / "demo" / "primebridge.toml").exists()
    # The commands the demo suggests work as printed: its config file also holds the inventory sections.
    config = Path("var/demo/primebridge.toml")
    assert f"./dev inventory report 1 -c {config}" in result.output
    assert f"./dev audit 4500 -c {config}" in result.output
    report = pb(config, "inventory", "report", "1")
    assert report.exit_code == 0 and "DEMO-MORE" in report.output, report.output
    assert "PACKAGE_DELIVERED" in pb(config, "events", "list").output


def test_sandbox_config_prints_a_valid_config_for_the_served_sandboxes() -> None:
    """What a newcomer runs instead of writing Python: the file loads and points at the given ports."""
    import tomllib

    from primebridge.config import settings_from_dict

    result = pb(None, "sandbox", "config", "--amazon-port", "18201", "--sap-port", "18202", "--web-port", "18280")
    assert result.exit_code == 0, result.output
    settings = settings_from_dict(tomllib.loads(result.output))
    assert settings.amazon.graphql_url == "http://127.0.0.1:18201/graphql"
    assert settings.sap.base_url == "http://127.0.0.1:18202" and settings.netsuite.enabled
    assert str(settings.web.public_url).rstrip("/") == "http://127.0.0.1:18280" and settings.web.port == 18280
    assert settings.events.basic_password is not None and settings.spapi.endpoint == "http://127.0.0.1:8104"


def test_config_check_flags_a_schema_behind_without_failing(sandboxes: Sandboxes, tmp_path: Path) -> None:
    """A store not upgraded yet is worth the operator's attention, not a failure: serve upgrades it."""
    fresh = write_config(tmp_path / "fresh.toml", sandboxes, tmp_path / "never-upgraded.db")
    result = pb(fresh, "config", "check")

    assert result.exit_code == 0, result.output
    assert re.search(r"store\s+│\s+attention", result.output), result.output
    assert "db upgrade" in result.output
