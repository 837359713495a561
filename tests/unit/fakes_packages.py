"""In-memory fakes of the ports the package flows use: Amazon orders with packages, an OMS's shipment
documents, the package store and the notifier.

Strict where the real systems are strict (at most 5 aliases per package, one document per package id
found again by ``create_shipment``), and every OMS call is recorded so a test can assert that a
repeated event made no call at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from primebridge.domain.errors import AlreadyExists, PermanentError, Rejected, TransientError
from primebridge.domain.model import Alias, AmazonLine, AmazonOrder, ExecutionState
from primebridge.domain.packages import (
    AmazonPackage,
    CancellationReason,
    LineCancellation,
    Milestone,
    PackageLine,
    PackageState,
    Shipment,
    Tracker,
)
from primebridge.flows.amazon_to_oms.packages import OmsShipments
from primebridge.ports import LinkState, Notification, OrderLink, PackageRecord

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def tracker(number: str = "1Z999", code: str | None = None, when: datetime | None = None,
            *, url: str | None = "https://track.example/1Z999", history: tuple[Milestone, ...] = ()) -> Tracker:
    milestone = Milestone(code, when, locality="Seattle", region="WA", country="US") if code else None
    return Tracker(tracking_number=number, carrier_code="ups", tracking_url=url,
                   estimated_delivery_earliest=at(48), estimated_delivery_latest=at(72),
                   latest_milestone=milestone, milestones=history + ((milestone,) if milestone else ()))


def package(package_id: str, state: PackageState, lines: dict[str, str | int], *,
            reason: CancellationReason | None = None, track: Tracker | None = None,
            aliases: tuple[Alias, ...] = ()) -> AmazonPackage:
    return AmazonPackage(package_id=package_id, state=state,
                         lines=tuple(PackageLine(line, Decimal(str(qty))) for line, qty in lines.items()),
                         reason=reason, tracker=track, aliases=aliases)


# -- Amazon ----------------------------------------------------------------------------------------


class FakeAmazonPackages:
    """Amazon orders whose packages a test moves through their states with ``set_packages``."""

    def __init__(self) -> None:
        self.orders: dict[str, AmazonOrder] = {}
        self.calls: list[str] = []
        self.hidden: set[str] = set()

    def add_order(self, order_id: str, lines: dict[str, int], *, aliases: tuple[Alias, ...] = (),
                  line_aliases: dict[str, Alias] | None = None) -> AmazonOrder:
        order = AmazonOrder(
            order_id=order_id, execution_state=ExecutionState.STARTED, aliases=aliases,
            lines=tuple(AmazonLine(line_id=line, quantity=Decimal(qty), sku=f"SKU-{line}",
                                   aliases=((line_aliases or {})[line],) if line in (line_aliases or {}) else ())
                        for line, qty in lines.items()))
        self.orders[order_id] = order
        return order

    def set_packages(self, order_id: str, *packages: AmazonPackage) -> None:
        """Replace the order's packages, keeping aliases primebridge wrote on packages that stay."""
        current = {p.package_id: p for p in self.orders[order_id].packages}
        kept = tuple(replace(p, aliases=current[p.package_id].aliases) if p.package_id in current and not p.aliases
                     else p for p in packages)
        self.orders[order_id] = replace(self.orders[order_id], packages=kept)

    def package(self, order_id: str, package_id: str) -> AmazonPackage:
        return next(p for p in self.orders[order_id].packages if p.package_id == package_id)

    # the port
    def get_order(self, order_id: str) -> AmazonOrder | None:
        self.calls.append("get_order")
        return None if order_id in self.hidden else self.orders.get(order_id)

    def get_order_by_alias(self, alias: Alias) -> AmazonOrder | None:
        self.calls.append("get_order_by_alias")
        return next((o for o in self.orders.values() if alias in o.aliases), None)

    def create_order(self, request: object) -> AmazonOrder:
        raise AssertionError("the package flows never create orders")

    def update_order(self, order_id: str, *, execution_state: ExecutionState | None = None,
                     aliases: tuple[Alias, ...] = ()) -> AmazonOrder:
        raise AssertionError("the package flows never update orders")

    def add_package_alias(self, order_id: str, package_id: str, alias: Alias) -> AmazonOrder:
        self.calls.append("add_package_alias")
        order = self.orders[order_id]
        for other in order.packages:
            if other.package_id != package_id and alias in other.aliases:
                raise AlreadyExists(f"alias {alias.alias_id} is on package {other.package_id}")
        found = self.package(order_id, package_id)
        if alias in found.aliases:
            return order
        if len(found.aliases) >= 5:
            raise Rejected("a package has at most 5 aliases", code="ValidationError")
        updated = replace(found, aliases=(*found.aliases, alias))
        self.orders[order_id] = replace(order, packages=tuple(
            updated if p.package_id == package_id else p for p in order.packages))
        return self.orders[order_id]


# -- OMS -------------------------------------------------------------------------------------------


@dataclass
class Document:
    document_id: str
    oms_order_id: str
    shipment: Shipment
    trackers: list[Tracker] = field(default_factory=list)
    delivered_at: datetime | None = None
    failure: str | None = None
    failed_at: datetime | None = None


class FakeShipments:
    """One OMS's shipment documents. ``create_shipment`` finds a document by package id, as the port
    promises; ``crash_after_next_create`` creates it and then raises (a response lost in transit)."""

    def __init__(self, name: str = "fakeoms") -> None:
        self.name = name
        self.documents: dict[str, Document] = {}
        self.cancellations: dict[tuple[str, str], LineCancellation] = {}
        self.calls: list[str] = []
        self.reject_cancellations = False
        self._ids = itertools.count(80000001)
        self._crash_next_create = False
        self._fail_next = 0

    def crash_after_next_create(self) -> None:
        self._crash_next_create = True

    def fail_next(self, n: int) -> None:
        self._fail_next = n

    def by_package(self, package_id: str) -> list[Document]:
        return [d for d in self.documents.values() if d.shipment.package_id == package_id]

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        if self._fail_next > 0:
            self._fail_next -= 1
            raise TransientError(f"simulated 503 on {operation}", retry_after=1.0)

    def _document(self, oms_order_id: str, document_id: str) -> Document:
        document = self.documents.get(document_id)
        if document is None or document.oms_order_id != oms_order_id:
            raise PermanentError(f"no document {document_id} for order {oms_order_id}")
        return document

    # the port
    def find_shipment(self, oms_order_id: str, package_id: str) -> str | None:
        self._enter("find_shipment")
        found = [d for d in self.by_package(package_id) if d.oms_order_id == oms_order_id]
        return found[0].document_id if found else None

    def create_shipment(self, shipment: Shipment) -> str:
        self._enter("create_shipment")
        existing = [d for d in self.by_package(shipment.package_id) if d.oms_order_id == shipment.oms_order_id]
        if existing:
            return existing[0].document_id
        document_id = str(next(self._ids))
        self.documents[document_id] = Document(document_id, shipment.oms_order_id, shipment)
        if self._crash_next_create:
            self._crash_next_create = False
            raise TransientError("read timeout after the document was created")
        return document_id

    def record_tracking(self, oms_order_id: str, document_id: str, tracker: Tracker) -> None:
        self._enter("record_tracking")
        self._document(oms_order_id, document_id).trackers.append(tracker)

    def mark_delivered(self, oms_order_id: str, document_id: str, delivered_at: datetime) -> None:
        self._enter("mark_delivered")
        self._document(oms_order_id, document_id).delivered_at = delivered_at

    def record_delivery_failure(self, oms_order_id: str, document_id: str, reason: str,
                                occurred_at: datetime | None) -> None:
        self._enter("record_delivery_failure")
        document = self._document(oms_order_id, document_id)
        document.failure, document.failed_at = reason, occurred_at

    def apply_cancellations(self, oms_order_id: str, lines: tuple[LineCancellation, ...]) -> None:
        self._enter("apply_cancellations")
        if self.reject_cancellations:
            raise Rejected("the OMS refuses to change a line that was delivered", code="Refused")
        for line in lines:
            self.cancellations[(oms_order_id, line.oms_line_id)] = line


# -- store and notifier ----------------------------------------------------------------------------


@dataclass
class FakePackageStore:
    links: dict[tuple[str, str], OrderLink] = field(default_factory=dict)
    packages: dict[tuple[str, str, str], PackageRecord] = field(default_factory=dict)
    cancellations: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)
    notes: list[tuple[str, str, str]] = field(default_factory=list)
    saves: int = 0

    def link(self, oms: str, oms_order_id: str, amazon_order_id: str, line_ids: dict[str, str]) -> None:
        self.links[(oms, oms_order_id)] = OrderLink(oms=oms, oms_order_id=oms_order_id,
                                                    state=LinkState.WRITTEN_BACK,
                                                    amazon_order_id=amazon_order_id, line_ids=line_ids)

    def oms_order_for(self, amazon_order_id: str) -> tuple[str, str] | None:
        return next(((oms, order) for (oms, order), link in self.links.items()
                     if link.amazon_order_id == amazon_order_id), None)

    def get_order_link(self, oms: str, oms_order_id: str) -> OrderLink | None:
        return self.links.get((oms, oms_order_id))

    def get_package(self, oms: str, oms_order_id: str, package_id: str) -> PackageRecord | None:
        return self.packages.get((oms, oms_order_id, package_id))

    def save_package(self, record: PackageRecord) -> None:
        self.saves += 1
        self.packages[(record.oms, record.oms_order_id, record.package_id)] = record

    def get_cancellations(self, oms: str, oms_order_id: str) -> dict[str, Decimal] | None:
        return self.cancellations.get((oms, oms_order_id))

    def save_cancellations(self, oms: str, oms_order_id: str, amazon_order_id: str,
                           totals: Mapping[str, Decimal]) -> None:
        self.cancellations[(oms, oms_order_id)] = dict(totals)

    def note(self, operation: str, status: str, detail: str) -> None:
        self.notes.append((operation, status, detail))

    def notes_for(self, operation: str) -> list[tuple[str, str, str]]:
        return [n for n in self.notes if n[0] == operation]


@dataclass
class FakeNotifier:
    sent: list[Notification] = field(default_factory=list)

    def notify(self, notification: Notification) -> None:
        self.sent.append(notification)


def side(documents: FakeShipments) -> OmsShipments:
    return OmsShipments(documents=documents, order_alias_type="FAKE_ORDER", line_alias_type="FAKE_LINE",
                        document_alias_type="FAKE_SHIPMENT")
