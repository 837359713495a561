"""Inventory as Amazon reports it and as the OMS holds it, and the drift between the two."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class InventorySummary:
    """One seller SKU from SP-API ``getInventorySummaries`` (details=true, one marketplace)."""

    seller_sku: str
    fulfillable_quantity: int
    fn_sku: str | None = None
    asin: str | None = None
    last_updated: datetime | None = None


class DriftAction(StrEnum):
    NONE = "none"              # equal
    INCREASE = "increase"
    DECREASE = "decrease"
    UNMAPPED = "unmapped"      # no OMS item for this seller SKU
    UNKNOWN = "unknown"        # the OMS has no such item (or not at the Amazon location)
    INVALID = "invalid"        # Amazon's quantity is negative or not a number
    FAILED = "failed"          # the adjustment was tried and failed permanently


@dataclass(frozen=True, slots=True)
class StockAdjustment:
    """Set the OMS item's quantity at the Amazon location from ``oms_quantity`` to ``amazon_quantity``.

    ``reference`` is unique per (run, SKU); an OMS connector stores it on the document it posts so a
    rerun can tell that the adjustment was already made.
    """

    seller_sku: str
    oms_item: str
    amazon_quantity: Decimal
    oms_quantity: Decimal
    reference: str

    @property
    def delta(self) -> Decimal:
        return self.amazon_quantity - self.oms_quantity
