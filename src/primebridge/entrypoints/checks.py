"""``primebridge config check``: the config parses, and every configured system answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from primebridge.config import Settings
from primebridge.domain.model import Alias


class Attention(str):
    """A check's detail that needs the operator's attention without failing the check (exit 0)."""


def _store(settings: Settings) -> str:
    from primebridge.runtime import migrate
    from primebridge.runtime.db import Database

    db = Database(settings.store.url)
    try:
        current, head = migrate.current_revision(db), migrate.head_revision()
    finally:
        db.dispose()
    if current != head:
        return Attention(f"reachable; schema at {current}, newest is {head}: run `primebridge db upgrade` "
                         "(serve also upgrades it at start)")
    return f"reachable; schema at {current}"


def _amazon(settings: Settings) -> str:
    from primebridge.connectors.amazon import build_amazon_orders

    orders = build_amazon_orders(settings.amazon)
    orders.get_order_by_alias(Alias(settings.sap.routing.alias_type, "primebridge-config-check"))
    return f"token obtained and GraphQL answered at {settings.amazon.graphql_url}"


def _events(settings: Settings) -> str:
    """The Buy with Prime intake's credentials resolve, and the URL `events subscribe` registers.

    Nothing is called: BwP reaches primebridge, not the other way round. Without credentials every
    delivery is refused with 401, which would otherwise only show as events that never arrive.
    """
    from primebridge.entrypoints.amazon_event_auth import EventCredentials

    events = settings.events
    credentials = EventCredentials(events)   # resolves the secrets and checks their pairing, as serve does
    kinds = [kind for kind, on in (("Basic", credentials.basic), ("OAuth", credentials.client)) if on is not None]
    if not kinds:
        raise ValueError("neither events.basic_password nor events.oauth_client_secret is set: "
                         "Buy with Prime deliveries to /events/amazon would all get 401")
    if events.destination_url:
        where = events.destination_url
    elif settings.web.public_url:
        where = str(settings.web.public_url).rstrip("/") + "/events/amazon"
    else:
        where = "unknown: set web.public_url or events.destination_url before `events subscribe`"
    return f"intake accepts {' and '.join(kinds)}; destination {where}"


def _oms(name: str) -> Callable[[Settings], str]:
    def check(settings: Settings) -> str:
        if name == "sap":
            from primebridge.connectors.sap import build_sap_orders

            system = build_sap_orders(settings.sap)
            where = settings.sap.base_url
        else:
            from primebridge.connectors.netsuite import build_netsuite_orders

            system = build_netsuite_orders(settings.netsuite)
            where = settings.netsuite.resolved_base_url()
        next(iter(system.changed_order_ids(datetime.now(UTC))), None)
        return f"change query answered at {where}"
    return check


def _spapi(settings: Settings) -> str:
    """The LWA refresh-token exchange and one targeted ``getInventorySummaries`` call (a SKU that does
    not exist: Amazon answers with an empty page), so credentials, seller authorisation, endpoint and
    marketplace are all proven before the first full reconciliation."""
    from primebridge.connectors.spapi import build_inventory_source

    cfg = settings.spapi
    # One retry at most: an operator waiting for a verdict is better served by the error than by backoff.
    source = build_inventory_source(cfg.model_copy(update={"max_retries": min(cfg.max_retries, 1)}))
    try:
        source.summaries(["primebridge-config-check"])
    finally:
        source.close()
    return (f"LWA token obtained; getInventorySummaries answered at {cfg.resolved_endpoint()} for marketplace "
            f"{cfg.marketplace_id} (client rate {cfg.rate_per_second:g}/s, burst {cfg.burst})")


def _inventory(settings: Settings) -> str:
    """What the inventory flows will use: the OMSs, the mapping table (file read and validated as at
    start), the schedule and a writable report directory. No call is made."""
    from primebridge.entrypoints.inventory_wiring import inventory_oms, load_mapping

    cfg = settings.inventory
    names = inventory_oms(settings)
    off = [name for name in names if not getattr(settings, name).enabled]
    if off:
        raise ValueError(f"inventory.oms lists {', '.join(off)}, which is not enabled")
    if not names:
        raise ValueError("inventory.enabled, but no OMS is enabled")
    table = load_mapping(settings).table
    entries = {name: len(set(table.get("*", {})) | set(table.get(name, {}))) for name in names}
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    probe = cfg.report_dir / ".primebridge-config-check"
    probe.write_text("ok")
    probe.unlink()
    source = f" from {cfg.mapping_file}" if cfg.mapping_file else ""
    mapped = ", ".join(f"{name} {count}" for name, count in entries.items())
    products = " then Buy with Prime products" if cfg.use_products else " only"
    schedule = (f"full reconciliation every {cfg.full_sync_interval_seconds:g} s"
                if cfg.full_sync_interval_seconds > 0 else "no scheduled full reconciliation")
    return f"mapping table{source}: {mapped} SKUs,{products}; {schedule}; reports in {cfg.report_dir}"


def _inventory_ledger(name: str) -> Callable[[Settings], str]:
    def check(settings: Settings) -> str:
        from primebridge.entrypoints.inventory_wiring import build_ledgers

        ledger: Any = build_ledgers(settings, [name], audit=None, transports={})[name]
        try:
            return str(ledger.check())
        finally:
            ledger.close()
    return check


def run_checks(settings: Settings, console: Console) -> bool:
    checks: list[tuple[str, Callable[[Settings], str]]] = [("configuration", lambda s: "valid"),
                                                            ("store", _store), ("amazon", _amazon),
                                                            ("events", _events)]
    if settings.sap.enabled:
        checks.append(("sap", _oms("sap")))
    if settings.netsuite.enabled:
        checks.append(("netsuite", _oms("netsuite")))
    if settings.inventory.enabled:
        checks += [("spapi", _spapi), ("inventory", _inventory)]
        from primebridge.entrypoints.inventory_wiring import inventory_oms

        checks += [(f"{name} inventory", _inventory_ledger(name)) for name in inventory_oms(settings)
                   if name in ("sap", "netsuite") and getattr(settings, name).enabled]
    table = Table("system", "result", "detail", "ms")
    ok = True
    for name, check in checks:
        started = time.perf_counter()
        try:
            detail = check(settings)
            result = "[yellow]attention[/yellow]" if isinstance(detail, Attention) else "[green]ok[/green]"
        except Exception as exc:
            detail, result, ok = f"{type(exc).__name__}: {exc}", "[red]failed[/red]", False
        table.add_row(name, result, detail, f"{(time.perf_counter() - started) * 1000:.0f}")
    console.print(table)
    return ok
