"""Amazon packages as the OMS-facing flows need them: shipments, tracking, delivery, cancellations.

A Buy with Prime package (``PackageInformationDetails``) is the unit of every outbound event: its id
is the "delivery id" in ``PACKAGE_*`` event resources, it names which order lines and quantities it
carries, and it ends DELIVERED or CANCELLED (with a reason). One OMS document (SAP outbound delivery,
NetSuite item fulfillment) stands for one package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from primebridge.domain.model import Alias


class PackageState(StrEnum):
    PENDING = "PENDING"
    IN_TRANSIT = "IN_TRANSIT"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


class CancellationReason(StrEnum):
    CUSTOMER_REQUESTED = "CUSTOMER_REQUESTED"
    UNFULFILLABLE = "UNFULFILLABLE"
    UNDELIVERABLE = "UNDELIVERABLE"


# Tracker milestone codes that mean the package will not reach the shopper.
FAILURE_MILESTONES = frozenset({"LOST", "UNDELIVERABLE"})


@dataclass(frozen=True, slots=True)
class Milestone:
    code: str
    occurred_at: datetime | None = None
    message: str | None = None
    locality: str | None = None
    region: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Tracker:
    tracking_number: str
    carrier_code: str
    tracking_url: str | None = None
    estimated_delivery_earliest: datetime | None = None
    estimated_delivery_latest: datetime | None = None
    latest_milestone: Milestone | None = None
    milestones: tuple[Milestone, ...] = ()


@dataclass(frozen=True, slots=True)
class PackageLine:
    """``amount`` units of the Amazon order line ``amazon_line_id`` are in this package."""

    amazon_line_id: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class AmazonPackage:
    package_id: str
    state: PackageState
    lines: tuple[PackageLine, ...]
    reason: CancellationReason | None = None
    tracker: Tracker | None = None
    aliases: tuple[Alias, ...] = ()

    @property
    def failed_delivery(self) -> bool:
        """Shipped but will not arrive: cancelled as UNDELIVERABLE, or the tracker says LOST/UNDELIVERABLE."""
        if self.state is PackageState.CANCELLED and self.reason is CancellationReason.UNDELIVERABLE:
            return True
        milestone = self.tracker.latest_milestone if self.tracker else None
        return milestone is not None and milestone.code in FAILURE_MILESTONES


# -- what the flows ask the OMS to do -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShipmentLine:
    oms_line_id: str
    quantity: Decimal
    item: str | None = None


@dataclass(frozen=True, slots=True)
class Shipment:
    """One package that left Amazon's warehouse, in OMS terms (lines already mapped to OMS line ids)."""

    oms: str
    oms_order_id: str
    package_id: str
    lines: tuple[ShipmentLine, ...]
    carrier_code: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    estimated_delivery: datetime | None = None
    shipped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LineCancellation:
    """The *total* Amazon has cancelled so far on one OMS line, and what remains ordered.

    Totals, not increments, so that applying the same cancellation twice (a duplicate event, a retry
    after a crash) leaves the OMS as applying it once.
    """

    oms_line_id: str
    cancelled_quantity: Decimal
    remaining_quantity: Decimal
    reason: CancellationReason
