"""Builds the inventory flows from the settings (called by ``bootstrap.build``): the SP-API source,
one ledger per OMS listed in ``inventory.oms``, the SKU mapping and the store.

Kept apart from bootstrap.py so that the composition root stays a list of bindings, and so that the
CLI, the demo and the benchmark build exactly what ``serve`` runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from primebridge.config import Settings
from primebridge.domain.errors import ConfigError
from primebridge.domain.inventory_rules import ALL_OMS, SkuMapping
from primebridge.flows.amazon_to_oms.inventory_mapping import CatalogueDirectory, Retry, SkuResolver
from primebridge.flows.amazon_to_oms.inventory_realtime import INVENTORY_CHANGED, InventoryRealtime
from primebridge.flows.amazon_to_oms.inventory_reconciliation import FullReconciliation, ReconciliationBusy
from primebridge.ports import InventoryLedger, ProductDirectory
from primebridge.runtime.db import Database
from primebridge.runtime.inventory_store import InventoryStore
from primebridge.runtime.scheduler import Schedule

if TYPE_CHECKING:
    from primebridge.connectors.amazon import BwpGraphQLClient
    from primebridge.connectors.http import AuditSink

log = structlog.get_logger(__name__)
FULL_SCHEDULE = "inventory.full_reconciliation"
LEDGER_NAMES = ("sap", "netsuite")


@dataclass
class Inventory:
    realtime: InventoryRealtime
    reconciliation: FullReconciliation
    store: InventoryStore
    interval: float
    handle_events: bool
    _background: threading.Thread | None = field(default=None, repr=False)

    def register(self, handlers: dict[str, Any]) -> None:
        if self.handle_events:
            handlers.setdefault(INVENTORY_CHANGED, self.realtime.handle_event)

    def schedules(self) -> list[Schedule]:
        return [Schedule(FULL_SCHEDULE, self.interval, self.start_scheduled)] if self.interval > 0 else []

    def start_scheduled(self) -> str:
        """The scheduler's task: a full scan takes minutes to hours at the SP-API rate, so it runs in a
        thread of its own instead of holding up the order pulls; the store's lease keeps it single."""
        if self._background is not None and self._background.is_alive():
            return "still running"

        def run() -> None:
            try:
                resume = self.store.unfinished_run() is not None
                finished = self.reconciliation.run(resume=resume, trigger="schedule")
                log.info("inventory.scheduled_done", run=finished.id, **finished.counters.as_dict())
            except ReconciliationBusy as exc:
                log.info("inventory.scheduled_skipped", reason=str(exc))
            except Exception as exc:
                log.warning("inventory.scheduled_failed", error=f"{type(exc).__name__}: {exc}")

        self._background = threading.Thread(target=run, name="inventory-full", daemon=True)
        self._background.start()
        return "started"


def inventory_oms(settings: Settings) -> list[str]:
    """``inventory.oms``, or every enabled OMS when it is empty."""
    return list(settings.inventory.oms) or [n for n, on in (("sap", settings.sap.enabled),
                                                            ("netsuite", settings.netsuite.enabled)) if on]


def load_mapping(settings: Settings) -> SkuMapping:
    """The mapping table (``inventory.sku_map`` plus ``inventory.mapping_file``), refused when it names
    an OMS without an inventory ledger: rows for ``netsuit`` would otherwise silently never apply, and
    every SKU would be reported unmapped."""
    cfg = settings.inventory
    table = cfg.mapping_table()
    unknown = sorted(name for name in table if name != ALL_OMS and name not in LEDGER_NAMES)
    if unknown:
        raise ConfigError(f"inventory mapping names OMS {', '.join(repr(n) for n in unknown)}; use "
                          f"{' or '.join(LEDGER_NAMES)} (or leave the oms column empty for every OMS)")
    try:
        return SkuMapping(table, product_field=cfg.product_field)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def build_ledgers(settings: Settings, names: list[str], *, audit: AuditSink | None,
                  transports: dict[str, httpx.BaseTransport | None]) -> dict[str, InventoryLedger]:
    ledgers: dict[str, InventoryLedger] = {}
    for name in names:
        if name == "sap":
            if not settings.sap.enabled:
                raise ConfigError("inventory.oms lists sap, but sap.enabled is false")
            from primebridge.connectors.sap import build_sap_inventory

            ledgers[name] = build_sap_inventory(settings.sap, audit=audit, transport=transports.get("sap"))
        elif name == "netsuite":
            if not settings.netsuite.enabled:
                raise ConfigError("inventory.oms lists netsuite, but netsuite.enabled is false")
            from primebridge.connectors.netsuite import build_netsuite_inventory

            ledgers[name] = build_netsuite_inventory(settings.netsuite, audit=audit,
                                                     transport=transports.get("netsuite"))
        else:
            raise ConfigError(f"inventory.oms: {name!r} has no inventory ledger (sap or netsuite)")
    return ledgers


def build_inventory(settings: Settings, db: Database, *, audit: AuditSink | None, bwp: BwpGraphQLClient,
                    transports: dict[str, httpx.BaseTransport | None]) -> Inventory | None:
    """``bwp``: the orders connector's Buy with Prime client, shared (one token) for product reads."""
    cfg = settings.inventory
    if not cfg.enabled:
        return None
    from primebridge.connectors.spapi import build_inventory_source

    ledgers = build_ledgers(settings, inventory_oms(settings), audit=audit, transports=transports)
    source = build_inventory_source(settings.spapi, audit=audit)
    mapping = load_mapping(settings)
    directory = _directory(settings, bwp) if cfg.use_products else None
    store = InventoryStore(db)
    retry = Retry(cfg.retry_attempts)
    parallel = cfg.parallel
    if "netsuite" in ledgers:
        # NetSuite caps concurrent requests per account; more parallel pages would only queue there.
        parallel = min(parallel, settings.netsuite.concurrency)
    reconciliation = FullReconciliation(source, ledgers, SkuResolver(mapping, directory, retry=retry), store,
                                        parallel=parallel, report_dir=cfg.report_dir, retry=retry,
                                        lease_seconds=cfg.lease_seconds)
    realtime = InventoryRealtime(source, ledgers, SkuResolver(mapping, directory, retry=Retry(1)), store)
    return Inventory(realtime=realtime, reconciliation=reconciliation, store=store,
                     interval=cfg.full_sync_interval_seconds, handle_events=cfg.realtime)


def _directory(settings: Settings, bwp: BwpGraphQLClient) -> ProductDirectory:
    """Buy with Prime's ``products`` and ``inventoryItem`` queries."""
    from primebridge.connectors.amazon import BwpProducts
    from primebridge.connectors.amazon.errors import NotFound

    products = BwpProducts(bwp)

    def item_sku(inventory_item_id: str) -> str | None:
        try:
            return products.inventory_item(inventory_item_id).seller_sku
        except NotFound as exc:
            raise LookupError(str(exc)) from None

    return CatalogueDirectory(products.iter_products, refresh_seconds=settings.inventory.products_refresh_seconds,
                              item_lookup=item_sku)
