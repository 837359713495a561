"""Composition root: builds the store, connectors and flows from the settings, in one place.

Everything else receives what it needs from here (as in cosmicpython's ``bootstrap.py``), so a
test or the demo can build the same service pointed at the sandboxes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from primebridge.config import Settings
from primebridge.domain.errors import PermanentError
from primebridge.domain.routing import RoutingPolicy
from primebridge.entrypoints.inventory_wiring import Inventory, build_inventory
from primebridge.flows.amazon_to_oms.cancellations import AmazonCancellations
from primebridge.flows.amazon_to_oms.fulfillment_updates import PACKAGE_EVENTS, FulfillmentUpdates, PackageEvents
from primebridge.flows.amazon_to_oms.packages import OmsShipments
from primebridge.flows.oms_to_amazon.fulfill_with_amazon import FulfillWithAmazon
from primebridge.ports import AmazonOrders, Notifier, SalesOrderSystem, ShipmentDocuments
from primebridge.runtime import migrate
from primebridge.runtime.audit import StoreAudit
from primebridge.runtime.db import Database
from primebridge.runtime.events import EVENT_JOB, EventDispatcher, EventHandler
from primebridge.runtime.jobs import ClaimedJob, JobQueue
from primebridge.runtime.notify import DeadLetterAlerts, LogNotifier
from primebridge.runtime.package_store import SqlPackageStore
from primebridge.runtime.scheduler import Schedule, Scheduler
from primebridge.runtime.store import SYNC_ORDER, SqlStore
from primebridge.runtime.worker import Handler, RetryPolicy, Worker


@dataclass(frozen=True)
class OmsBinding:
    """One connected OMS: its adapter plus the merchant's rules for it. A third OMS plugs in by
    passing its own binding to ``build(extra_oms=...)``; nothing else needs to know its name."""

    system: SalesOrderSystem
    policy: RoutingPolicy
    initial_watermark: datetime
    sync_interval: float
    shipments: ShipmentDocuments | None = None  # Amazon package events are applied where one is given


@dataclass
class Service:
    settings: Settings
    db: Database
    audit: StoreAudit
    store: SqlStore
    queue: JobQueue
    amazon: AmazonOrders
    oms: dict[str, OmsBinding]
    fulfill: dict[str, FulfillWithAmazon] = field(default_factory=dict)
    # Amazon event type → handler (runtime/events.py has the dispatch contract). The flows register
    # theirs in build(); a type without a handler is stored and marked ignored.
    event_handlers: dict[str, EventHandler] = field(default_factory=dict)
    notifier: Notifier = field(default_factory=LogNotifier)
    package_events: PackageEvents | None = None
    inventory: Inventory | None = None  # inventory.enabled: INVENTORY_CHANGED + the full reconciliation

    def __post_init__(self) -> None:
        for name, binding in self.oms.items():
            self.fulfill[name] = FulfillWithAmazon(oms=binding.system, amazon=self.amazon, store=self.store,
                                                   policy=binding.policy)
        self._register_package_events()
        if self.inventory is not None:
            self.inventory.register(self.event_handlers)

    def _register_package_events(self) -> None:
        """PACKAGE_* events → shipment documents and cancellations in the OMS the order came from."""
        cfg = self.settings.package_events
        systems = {name: OmsShipments(binding.shipments, binding.policy.alias_type, binding.policy.line_alias_type,
                                      cfg.alias_type(name))
                   for name, binding in self.oms.items() if binding.shipments is not None}
        if not systems:
            return
        store = SqlPackageStore(self.store)
        amazon: Any = self.amazon  # the Amazon connector also implements AmazonPackageOrders
        updates = FulfillmentUpdates(amazon=amazon, store=store, notifier=self.notifier,
                                     write_alias=cfg.write_document_alias,
                                     notify_failures=cfg.notify_delivery_failures)
        self.package_events = PackageEvents(amazon=amazon, store=store, systems=systems, updates=updates,
                                            cancellations=AmazonCancellations(store))
        for event_type in PACKAGE_EVENTS:
            self.event_handlers.setdefault(event_type, self.package_events.handle)

    def _flow(self, oms: str) -> FulfillWithAmazon:
        flow = self.fulfill.get(oms)
        if flow is None:
            raise PermanentError(f"OMS {oms!r} is not enabled in the configuration")
        return flow

    def _sync_order(self, job: ClaimedJob) -> str:
        return self._flow(str(job.payload["oms"])).sync_order(str(job.payload["order_id"]))

    def handlers(self) -> dict[str, Handler]:
        return {SYNC_ORDER: self._sync_order, EVENT_JOB: self.event_dispatcher()}

    def event_dispatcher(self) -> EventDispatcher:
        return EventDispatcher(self.db, self.event_handlers)

    def dead_letter_alerts(self) -> DeadLetterAlerts:
        return DeadLetterAlerts(self.notifier, [self.event_dispatcher().dead_lettered])

    def pull_orders(self, oms: str) -> int:
        flow = self._flow(oms)
        return flow.pull_changes(self.oms[oms].initial_watermark)

    def schedules(self) -> list[Schedule]:
        return [Schedule(f"pull.{name}.sales_orders", binding.sync_interval,
                         lambda name=name: self.pull_orders(name)) for name, binding in self.oms.items()] + (
            self.inventory.schedules() if self.inventory is not None else [])

    def worker(self, name: str | None = None, concurrency: int | None = None) -> Worker:
        rt = self.settings.runtime
        return Worker(self.queue, self.handlers(), concurrency=concurrency or rt.worker_concurrency,
                      poll_interval=rt.poll_interval_seconds,
                      retry=RetryPolicy(base=rt.backoff_base_seconds, cap=rt.backoff_max_seconds),
                      notifier=self.dead_letter_alerts(), name=name)

    def scheduler(self, runner: str) -> Scheduler:
        return Scheduler(self.db, self.schedules(), runner=runner)

    def close(self) -> None:
        self.db.dispose()


@dataclass(frozen=True)
class Transports:
    """Optional transports per system (tests); ``None`` means real HTTP to the configured URL."""

    amazon: httpx.BaseTransport | None = None
    sap: httpx.BaseTransport | None = None
    netsuite: httpx.BaseTransport | None = None


_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def build(settings: Settings, *, upgrade_db: bool = True, transports: Transports | None = None,
          extra_oms: dict[str, OmsBinding] | None = None) -> Service:
    from primebridge.connectors.amazon import BwpOrders, build_bwp_client
    from primebridge.connectors.netsuite import build_netsuite_orders, build_netsuite_shipments
    from primebridge.connectors.sap import build_sap_orders, build_sap_shipments

    transports = transports or Transports()
    db = Database(settings.store.url)
    if upgrade_db:
        with _migrate_lock:
            if db.url not in _migrated:
                migrate.upgrade(db)
                _migrated.add(db.url)
    audit = StoreAudit(db)
    store = SqlStore(db, audit, max_attempts=settings.runtime.max_attempts)
    # One BwP client (one token) for orders and the inventory flows' product reads: same instance,
    # same credentials, so a second client would only fetch and renew a second token.
    bwp = build_bwp_client(settings.amazon, audit=audit, transport=transports.amazon)
    amazon = BwpOrders(bwp, identifier=settings.amazon.product_identifier)
    oms: dict[str, OmsBinding] = {}
    if settings.sap.enabled:
        oms["sap"] = OmsBinding(build_sap_orders(settings.sap, audit=audit, transport=transports.sap),
                                settings.sap.routing.policy(),
                                datetime.fromisoformat(settings.sap.initial_watermark),
                                settings.sap.sync_interval_seconds,
                                build_sap_shipments(settings.sap, audit=audit, transport=transports.sap))
    if settings.netsuite.enabled:
        oms["netsuite"] = OmsBinding(
            build_netsuite_orders(settings.netsuite, audit=audit, transport=transports.netsuite),
            settings.netsuite.routing.policy(), datetime.fromisoformat(settings.netsuite.initial_watermark),
            settings.netsuite.sync_interval_seconds,
            build_netsuite_shipments(settings.netsuite, audit=audit, transport=transports.netsuite))
    oms.update(extra_oms or {})
    from primebridge.runtime.notify import build_notifier

    inventory = build_inventory(settings, db, audit=audit, bwp=bwp,
                                transports={"sap": transports.sap, "netsuite": transports.netsuite})
    return Service(settings=settings, db=db, audit=audit, store=store,
                   queue=JobQueue(db, lease_seconds=settings.runtime.lease_seconds), amazon=amazon, oms=oms,
                   notifier=build_notifier(settings.notify), inventory=inventory)
