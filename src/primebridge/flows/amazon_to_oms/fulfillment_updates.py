"""Amazon fulfillment updates: shipped, tracked, delivered and failed packages become OMS documents.

One OMS document (SAP outbound delivery, NetSuite item fulfillment) per Amazon package id, whatever
happens. The flow works from the order's current state, not from the event: a DELIVERED event that
arrives before the IN_TRANSIT one creates the document first and then marks it delivered; the late
IN_TRANSIT event finds nothing left to do. ``ShipmentDocuments`` finds an existing document by the
package id stored on it, so a crash between creating it and recording it here creates nothing twice.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

import structlog

from primebridge.domain.errors import AlreadyExists, PermanentError, Rejected, TransientError
from primebridge.domain.events import AmazonEvent
from primebridge.domain.model import Alias
from primebridge.domain.packages import AmazonPackage, CancellationReason, PackageState, Shipment, ShipmentLine, Tracker
from primebridge.flows.amazon_to_oms.cancellations import AmazonCancellations
from primebridge.flows.amazon_to_oms.packages import OmsShipments, OrderContext, load_order
from primebridge.ports import AmazonPackageOrders, Notification, Notifier, PackageRecord, PackageStore
from primebridge.runtime import context

log = structlog.get_logger(__name__)

IN_TRANSIT_EVENT = "PACKAGE_DELIVERY_IN_TRANSIT"
DELIVERED_EVENT = "PACKAGE_DELIVERED"
CANCELLED_EVENT = "PACKAGE_DELIVERY_CANCELLED"
MILESTONE_EVENT = "PACKAGE_TRACKER_MILESTONE_CHANGED"
MAX_PACKAGE_ALIASES = 5


@dataclass(frozen=True, slots=True)
class Trigger:
    """The event that started this run: only used for times Amazon's order does not carry."""

    event_type: str | None = None
    package_id: str | None = None
    event_time: datetime | None = None

    def time_for(self, package_id: str, event_type: str) -> datetime | None:
        if self.event_type == event_type and self.package_id == package_id:
            return self.event_time
        return None


def shipped(package: AmazonPackage) -> bool:
    """Left Amazon's warehouse: in transit, delivered, or cancelled as undeliverable (only an
    IN_TRANSIT package can become UNDELIVERABLE, reference §2.9)."""
    return package.state in (PackageState.IN_TRANSIT, PackageState.DELIVERED) or (
        package.state is PackageState.CANCELLED and package.reason is CancellationReason.UNDELIVERABLE)


def tracker_signature(tracker: Tracker | None, *, with_milestone: bool = True) -> str | None:
    """What ``record_tracking`` writes, as a short digest: equal digests mean nothing new to write."""
    if tracker is None:
        return None
    milestone = tracker.latest_milestone if with_milestone else None
    parts = [tracker.tracking_number, tracker.carrier_code, tracker.tracking_url,
             tracker.estimated_delivery_earliest, tracker.estimated_delivery_latest]
    if milestone is not None:
        parts += [milestone.code, milestone.occurred_at, milestone.locality, milestone.region, milestone.country]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def _milestone_time(package: AmazonPackage, codes: frozenset[str]) -> datetime | None:
    tracker = package.tracker
    if tracker is None:
        return None
    latest = tracker.latest_milestone
    if latest is not None and latest.code in codes and latest.occurred_at is not None:
        return latest.occurred_at
    times = [m.occurred_at for m in tracker.milestones if m.code in codes and m.occurred_at is not None]
    return max(times) if times else None


def _shipped_at(package: AmazonPackage) -> datetime | None:
    tracker = package.tracker
    times = [m.occurred_at for m in (tracker.milestones if tracker else ()) if m.occurred_at is not None]
    return min(times) if times else None


def failure_reason(package: AmazonPackage) -> str:
    milestone = package.tracker.latest_milestone if package.tracker else None
    if package.state is PackageState.CANCELLED:
        return f"package cancelled by Amazon: {package.reason.value if package.reason else 'no reason'}"
    return f"carrier reports {milestone.code if milestone else 'a failure'}"


@dataclass
class FulfillmentUpdates:
    amazon: AmazonPackageOrders
    store: PackageStore
    notifier: Notifier
    write_alias: bool = True
    notify_failures: bool = True

    def apply(self, ctx: OrderContext, trigger: Trigger = Trigger()) -> list[str]:
        """Bring every shipped package of the order in line; returns what was done, per package."""
        done = []
        for package in ctx.packages:
            if shipped(package):
                actions = self._sync_package(ctx, package, trigger)
                done.append(f"package {package.package_id}: " + (", ".join(actions) or "in sync"))
        return done

    # -- one package --------------------------------------------------------------------------------

    def _sync_package(self, ctx: OrderContext, package: AmazonPackage, trigger: Trigger) -> list[str]:
        actions: list[str] = []
        record = self.store.get_package(ctx.oms, ctx.oms_order_id, package.package_id)
        if record is None:
            record = self._create(ctx, package, trigger)
            actions.append(f"{ctx.oms} document {record.document_id}")
        documents = ctx.side.documents
        if self.write_alias and not record.alias_written:
            record = self._write_alias(ctx, package, record)
            if record.alias_written:
                actions.append("alias on package")
        signature = tracker_signature(package.tracker)
        if package.tracker is not None and signature != record.tracking:
            documents.record_tracking(ctx.oms_order_id, record.document_id, package.tracker)
            record = replace(record, tracking=signature)
            self.store.save_package(record)
            milestone = package.tracker.latest_milestone
            actions.append(f"tracking {milestone.code if milestone else package.tracker.tracking_number}")
        if package.state is PackageState.DELIVERED and record.delivered_at is None:
            at = (_milestone_time(package, frozenset({"DELIVERED"}))
                  or trigger.time_for(package.package_id, DELIVERED_EVENT) or datetime.now(UTC))
            documents.mark_delivered(ctx.oms_order_id, record.document_id, at)
            record = replace(record, delivered_at=at.isoformat())
            self.store.save_package(record)
            self.store.note("delivered", "ok", f"package {package.package_id}: {ctx.oms} document "
                            f"{record.document_id} delivered at {at.isoformat()}")
            actions.append("delivered")
        if package.failed_delivery and record.failure is None:
            record = self._fail(ctx, package, record, trigger)
            actions.append(f"delivery failure ({record.failure})")
        return actions

    def _create(self, ctx: OrderContext, package: AmazonPackage, trigger: Trigger) -> PackageRecord:
        shipment = self.shipment(ctx, package, trigger)
        document_id = ctx.side.documents.create_shipment(shipment)
        tracker = package.tracker
        # The shipment carried number, carrier, URL and estimate: only a milestone is left to record.
        signature = (tracker_signature(tracker, with_milestone=False)
                     if tracker is not None and tracker.latest_milestone is None else None)
        record = PackageRecord(oms=ctx.oms, oms_order_id=ctx.oms_order_id, amazon_order_id=ctx.order.order_id,
                               package_id=package.package_id, document_id=document_id, tracking=signature)
        self.store.save_package(record)
        lines = ", ".join(f"{line.oms_line_id}×{line.quantity}" for line in shipment.lines)
        self.store.note("shipment", "ok", f"package {package.package_id} → {ctx.oms} document {document_id} "
                        f"({lines}; {shipment.carrier_code or 'no carrier'} {shipment.tracking_number or ''})")
        log.info("package.shipped", oms=ctx.oms, oms_order_id=ctx.oms_order_id, package_id=package.package_id,
                 document_id=document_id)
        return record

    def shipment(self, ctx: OrderContext, package: AmazonPackage, trigger: Trigger) -> Shipment:
        """The package in OMS terms: Amazon line ids mapped to OMS line ids, quantities summed per line."""
        if not package.lines:
            raise PermanentError(f"package {package.package_id} of Amazon order {ctx.order.order_id} names "
                                 "no order lines, so no OMS document can say what it carries")
        quantities: dict[str, Decimal] = defaultdict(Decimal)
        for line in package.lines:
            quantities[ctx.oms_line(line.amazon_line_id)] += line.quantity
        tracker = package.tracker
        shipped_at = _shipped_at(package) or trigger.time_for(package.package_id, IN_TRANSIT_EVENT)
        return Shipment(
            oms=ctx.oms, oms_order_id=ctx.oms_order_id, package_id=package.package_id,
            lines=tuple(ShipmentLine(oms_line_id=line, quantity=qty) for line, qty in quantities.items()),
            carrier_code=tracker.carrier_code if tracker else None,
            tracking_number=tracker.tracking_number if tracker else None,
            tracking_url=tracker.tracking_url if tracker else None,
            estimated_delivery=(tracker.estimated_delivery_latest or tracker.estimated_delivery_earliest)
            if tracker else None,
            shipped_at=shipped_at)

    def _write_alias(self, ctx: OrderContext, package: AmazonPackage, record: PackageRecord) -> PackageRecord:
        """The OMS document id on the Amazon package, so the package can be found from the OMS side.
        A conflict is noted, not raised: the alias is a convenience, the document is what counts."""
        alias = Alias(ctx.side.document_alias_type, record.document_id)
        ours = [a for a in package.aliases if a.alias_type == alias.alias_type]
        problem = None
        if alias not in package.aliases:
            if ours:
                problem = f"package already has alias {ours[0].alias_type}={ours[0].alias_id}"
            elif len(package.aliases) >= MAX_PACKAGE_ALIASES:
                problem = f"package already has {MAX_PACKAGE_ALIASES} aliases"
            else:
                try:
                    self.amazon.add_package_alias(ctx.order.order_id, package.package_id, alias)
                except (AlreadyExists, Rejected) as exc:
                    problem = str(exc)
        if problem is not None:
            self.store.note("package alias", "skipped", f"package {package.package_id}: alias "
                            f"{alias.alias_type}={alias.alias_id} not written: {problem}")
        # Marked done in either case: a conflict does not go away by asking again at every event.
        record = replace(record, alias_written=True)
        self.store.save_package(record)
        return record

    def _fail(self, ctx: OrderContext, package: AmazonPackage, record: PackageRecord,
              trigger: Trigger) -> PackageRecord:
        reason = failure_reason(package)
        at = (_milestone_time(package, frozenset({"LOST", "UNDELIVERABLE"}))
              or trigger.time_for(package.package_id, CANCELLED_EVENT) or trigger.event_time)
        ctx.side.documents.record_delivery_failure(ctx.oms_order_id, record.document_id, reason, at)
        self.store.note("delivery failure", "recorded", f"package {package.package_id}: {reason}; "
                        f"{ctx.oms} document {record.document_id}")
        if self.notify_failures:
            tracker = package.tracker
            # Notified before the record is saved: a crash in between repeats the notification,
            # which beats losing it.
            self.notifier.notify(Notification(
                kind="delivery_failure",
                subject=f"Delivery failure: {ctx.oms} order {ctx.oms_order_id}, Amazon package {package.package_id}",
                text=f"{reason}. The shopper's goods will not arrive: arrange a reshipment or a refund.",
                details={"oms": ctx.oms, "oms_order_id": ctx.oms_order_id, "amazon_order_id": ctx.order.order_id,
                         "package_id": package.package_id, "document_id": record.document_id,
                         "carrier": tracker.carrier_code if tracker else None,
                         "tracking_number": tracker.tracking_number if tracker else None,
                         "occurred_at": at.isoformat() if at else None}))
        record = replace(record, failure=reason)
        self.store.save_package(record)
        log.info("package.delivery_failed", oms=ctx.oms, oms_order_id=ctx.oms_order_id,
                    package_id=package.package_id, reason=reason)
        return record


# -- the event handler: every package event reconciles the whole order -------------------------------

PACKAGE_EVENTS = (IN_TRANSIT_EVENT, DELIVERED_EVENT, CANCELLED_EVENT, MILESTONE_EVENT)


@dataclass
class PackageEvents:
    """Handles every ``PACKAGE_*`` event the same way: read the order, then let both flows bring the
    OMS in line with all of its packages. Handling the whole order (not just the named package) also
    repairs what an event that never arrived would have done; packages already in line cost no OMS
    call, because their ``PackageRecord`` says so."""

    amazon: AmazonPackageOrders
    store: PackageStore
    systems: Mapping[str, OmsShipments]
    updates: FulfillmentUpdates
    cancellations: AmazonCancellations

    def handle(self, event: AmazonEvent) -> str:
        order_id = event.order_id
        if order_id is None:
            raise Rejected(f"{event.event_type} event {event.event_id} names no order in its resources",
                           code="MissingOrder")
        return self.sync_order(order_id, Trigger(event.event_type, event.resource("delivery"), event.event_time))

    def sync_order(self, amazon_order_id: str, trigger: Trigger = Trigger()) -> str:
        with context.correlated(amazon_order_id=amazon_order_id):
            ctx = load_order(self.amazon, self.store, self.systems, amazon_order_id)
            if isinstance(ctx, str):
                return ctx
            done: list[str] = []
            failed: Exception | None = None
            # Both run even when one fails, so a cancellation the OMS refuses does not hold back
            # the shipments of the same order (and the other way round); the failure is raised after.
            for step in (lambda: self.cancellations.apply(ctx), lambda: self.updates.apply(ctx, trigger)):
                try:
                    done += step()
                except Exception as exc:  # re-raised below, after the other step ran
                    failed = failed or exc
            if failed is not None:
                raise failed
            if trigger.package_id and trigger.package_id not in {p.package_id for p in ctx.packages}:
                raise TransientError(f"Amazon order {amazon_order_id} does not show package {trigger.package_id} "
                                     "yet")
            summary = "; ".join(done) or "no shipped or cancelled package"
            return f"{ctx.oms} order {ctx.oms_order_id}: {summary}"
