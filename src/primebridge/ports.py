"""The ports the flows are written against (Protocols), so a flow never imports a connector.

A third OMS plugs in by implementing ``SalesOrderSystem``; the Amazon side and the store are
swappable the same way (tests use the sandboxes through the real connectors, not fakes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from primebridge.domain.inventory import InventorySummary, StockAdjustment
from primebridge.domain.inventory_rules import ProductRef
from primebridge.domain.model import Alias, AmazonOrder, ExecutionState, FulfillmentRequest, SalesOrder
from primebridge.domain.packages import LineCancellation, Shipment, Tracker


class AmazonOrders(Protocol):
    """Buy with Prime order operations. Errors are ``primebridge.domain.errors`` types."""

    def create_order(self, request: FulfillmentRequest) -> AmazonOrder:
        """Raise ``AlreadyExists`` when an order with the request's alias exists already."""
        ...

    def get_order(self, order_id: str) -> AmazonOrder | None: ...

    def get_order_by_alias(self, alias: Alias) -> AmazonOrder | None: ...

    def update_order(
        self,
        order_id: str,
        *,
        execution_state: ExecutionState | None = None,
        aliases: tuple[Alias, ...] = (),
    ) -> AmazonOrder: ...


class SalesOrderSystem(Protocol):
    """An OMS as the fulfill flow sees it (SAP S/4HANA, NetSuite, or a third one)."""

    name: str

    def read_order(self, order_id: str) -> SalesOrder | None:
        """The order as it is now, or ``None`` when the OMS does not know it."""
        ...

    def changed_order_ids(self, since: datetime) -> Iterator[tuple[str, datetime]]:
        """Ids of orders created or changed at or after ``since``, with their change time, oldest first."""
        ...

    def write_amazon_ids(self, order: SalesOrder, amazon_order_id: str,
                         line_ids: Mapping[str, str]) -> None:
        """Store the Amazon order id and ``{oms line id: amazon line id}`` on the order; idempotent."""
        ...


class LinkState(StrEnum):
    """Where one OMS order stands with Amazon. ``INTENT`` is written before ``createOrder`` is called,
    so after a crash the next attempt knows to look the order up by alias before creating it."""

    INTENT = "intent"
    CREATED = "created"
    WRITTEN_BACK = "written_back"
    REJECTED = "rejected"
    NOT_FOR_AMAZON = "not_for_amazon"


@dataclass(frozen=True, slots=True)
class OrderLink:
    oms: str
    oms_order_id: str
    state: LinkState
    alias: Alias | None = None
    amazon_order_id: str | None = None
    line_ids: dict[str, str] = field(default_factory=dict)
    fingerprint: str | None = None
    reason: str | None = None


class FulfillmentStore(Protocol):
    """What the fulfill flow keeps durably: cross-references, watermarks, follow-up jobs, notes."""

    def get_order_link(self, oms: str, oms_order_id: str) -> OrderLink | None: ...

    def save_order_link(self, link: OrderLink) -> None:
        """Upsert, committed before returning: the flow relies on it to survive a crash."""
        ...

    def note(self, operation: str, status: str, detail: str) -> None:
        """An audit entry for a decision (rejected, adopted, ignored), filed under the current order."""
        ...

    def get_watermark(self, name: str) -> str | None: ...

    def enqueue_order_syncs(self, oms: str, order_ids: list[str], *, watermark: tuple[str, str] | None,
                            message_id: int | None = None) -> int:
        """Enqueue "sync order" jobs and advance a watermark in one transaction; returns jobs added."""
        ...


# -- Amazon events → OMS (shipments, tracking, delivery, cancellations) ---------------------------


class ShipmentDocuments(Protocol):
    """The OMS documents that stand for Amazon packages (SAP outbound delivery, NetSuite item
    fulfillment), and the cancellation of order quantities Amazon will not ship.

    Every method is idempotent, so a duplicate event or a retry after a crash changes nothing more:
    ``create_shipment`` stores the Amazon package id on the document it creates and returns the
    existing document when one carries that package id already.
    """

    name: str

    def find_shipment(self, oms_order_id: str, package_id: str) -> str | None:
        """The id of the document created for this Amazon package, or ``None``."""
        ...

    def create_shipment(self, shipment: Shipment) -> str:
        """Create (or find) the document for ``shipment.package_id``; returns its id."""
        ...

    def record_tracking(self, oms_order_id: str, document_id: str, tracker: Tracker) -> None:
        """Latest milestone (code, time, location), tracking number, carrier and URL on the document."""
        ...

    def mark_delivered(self, oms_order_id: str, document_id: str, delivered_at: datetime) -> None: ...

    def record_delivery_failure(self, oms_order_id: str, document_id: str, reason: str,
                                occurred_at: datetime | None) -> None: ...

    def apply_cancellations(self, oms_order_id: str, lines: tuple[LineCancellation, ...]) -> None:
        """Cancel on each line the total quantity Amazon cancelled (reject/close a line cancelled in
        full, reduce the quantity of one cancelled in part). Totals, so applying twice is harmless."""
        ...


# -- inventory --------------------------------------------------------------------------------------


class InventorySource(Protocol):
    """Amazon's inventory (SP-API ``getInventorySummaries``)."""

    def scan(self) -> Iterator[list[InventorySummary]]:
        """Every summary of the marketplace, one page at a time, in a stable order; a scan whose
        ``nextToken`` expired restarts and skips what it already yielded."""
        ...

    def summaries(self, seller_skus: list[str]) -> list[InventorySummary]:
        """Current summaries of up to 50 seller SKUs (a targeted call)."""
        ...


class InventoryLedger(Protocol):
    """The OMS's stock at the Amazon location, and the documents that adjust it."""

    name: str

    def quantities(self, oms_items: list[str]) -> dict[str, Decimal | None]:
        """Stock per OMS item at the Amazon location; ``None`` when the OMS does not know the item there."""
        ...

    def post_adjustments(self, adjustments: list[StockAdjustment], *, unposted: bool = False) -> dict[str, str]:
        """Post these adjustments (one document or several, as the OMS needs); returns ``{reference:
        id of the document that holds it}`` for every adjustment with a non-zero delta. Each
        adjustment's ``reference`` is stored on its document, and one already posted under that
        reference is not posted again: its entry names the document it was found in. Per reference,
        not one id per call, because one call may become several documents (SAP posts increases and
        decreases separately) and the drift report names the one that holds each SKU.

        ``unposted=True`` is the caller's guarantee that no reference was ever sent to the OMS (their
        rows were just created, and this is the first attempt): the ledger may then skip its lookup
        of earlier documents, one OMS call fewer per document."""
        ...


# -- Amazon package events: the package alias and what the store keeps per package ----------------


class AmazonPackageOrders(AmazonOrders, Protocol):
    """``AmazonOrders`` plus the one package mutation the flows need."""

    def add_package_alias(self, order_id: str, package_id: str, alias: Alias) -> object:
        """Add ``alias`` to the package; adding an alias the package already has changes nothing."""
        ...


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """What primebridge has done in the OMS for one Amazon package, so a repeated event skips the
    OMS calls whose effect is already there. The OMS calls are idempotent anyway: the record only
    saves calls, it is never the reason a call is (not) repeated after a crash."""

    oms: str
    oms_order_id: str
    amazon_order_id: str
    package_id: str
    document_id: str
    tracking: str | None = None          # signature of the tracker last recorded on the document
    delivered_at: str | None = None      # ISO time recorded as delivered
    failure: str | None = None           # delivery failure recorded (and notified)
    alias_written: bool = False

    @property
    def state(self) -> str:
        if self.failure:
            return "failed"
        if self.delivered_at:
            return "delivered"
        return "shipped"


class PackageStore(Protocol):
    def oms_order_for(self, amazon_order_id: str) -> tuple[str, str] | None:
        """``(oms, oms order id)`` of the order link that holds this Amazon order id."""
        ...

    def get_order_link(self, oms: str, oms_order_id: str) -> OrderLink | None: ...

    def get_package(self, oms: str, oms_order_id: str, package_id: str) -> PackageRecord | None: ...

    def save_package(self, record: PackageRecord) -> None:
        """Upsert, committed before returning."""
        ...

    def get_cancellations(self, oms: str, oms_order_id: str) -> dict[str, Decimal] | None:
        """Cancelled totals per OMS line last applied to the OMS, or ``None`` when none were."""
        ...

    def save_cancellations(self, oms: str, oms_order_id: str, amazon_order_id: str,
                           totals: Mapping[str, Decimal]) -> None: ...

    def note(self, operation: str, status: str, detail: str) -> None: ...


# -- inventory: the Buy with Prime catalogue ---------------------------------------------------------


class ProductDirectory(Protocol):
    """Buy with Prime products, as far as inventory needs them."""

    def products_for(self, seller_skus: list[str]) -> dict[str, ProductRef]:
        """The products whose Amazon (seller) SKU is one of these; SKUs without a product are absent."""
        ...

    def seller_sku_for_item(self, inventory_item_id: str) -> str | None:
        """The seller SKU of the product whose inventory item this is, or ``None`` when unknown."""
        ...


# -- notifications: failures that need a person ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notification:
    kind: str                      # "dead_letter", "delivery_failure", ...
    subject: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "text": self.text, "details": self.details}


class Notifier(Protocol):
    def notify(self, notification: Notification) -> None: ...
