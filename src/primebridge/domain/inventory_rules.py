"""The inventory rules (no I/O): which OMS item a seller SKU stands for, whether Amazon's quantity
can be trusted, and what to do when Amazon and the OMS disagree.

Amazon (SP-API ``getInventorySummaries``) is the truth for what sits in its warehouses; the OMS
holds a mirror of it at the Amazon location (an SAP plant/storage location, a NetSuite location).
The flows read both sides and ask :func:`compare` for a :class:`Decision`; an adjustment is only
ever proposed for a mapped SKU with a valid Amazon quantity and an OMS item known at the location.
Everything else becomes a drift-report row with a reason, never a guess and never a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from primebridge.domain.inventory import DriftAction, InventorySummary, StockAdjustment

ALL_OMS = "*"


class MappingSource(StrEnum):
    TABLE = "table"          # the merchant's mapping table (CSV or config)
    PRODUCTS = "products"    # Buy with Prime's product catalogue (``products`` query)


@dataclass(frozen=True, slots=True)
class ProductRef:
    """One Buy with Prime product as far as inventory needs it: the seller SKU Amazon's warehouses
    know (``amazonSku``), the merchant's own SKU and external id, and its inventory item id (what an
    ``INVENTORY_CHANGED`` event names)."""

    seller_sku: str
    sku: str | None = None
    external_id: str | None = None
    inventory_item_id: str | None = None

    def field(self, name: str) -> str | None:
        return {"sku": self.sku, "externalId": self.external_id}.get(name)


@dataclass(frozen=True, slots=True)
class Mapped:
    seller_sku: str
    oms_item: str
    source: MappingSource


@dataclass(frozen=True, slots=True)
class Unmapped:
    seller_sku: str
    reason: str


Resolution = Mapped | Unmapped


@dataclass(frozen=True)
class SkuMapping:
    """Seller SKU → OMS item, per OMS. The table wins over the product catalogue, because a merchant
    writes the table precisely where Buy with Prime's own SKU is not the OMS's item number.

    ``table`` maps an OMS name (or ``"*"`` for every OMS) to ``{seller SKU: OMS item}``.
    """

    table: Mapping[str, Mapping[str, str]]
    product_field: str = "sku"

    def __post_init__(self) -> None:
        for oms, entries in self.table.items():
            if oms == ALL_OMS:
                continue
            shared = {sku: item for sku, item in self.table.get(ALL_OMS, {}).items() if sku not in entries}
            duplicates = _duplicate_items({**shared, **entries})
            if duplicates:
                raise ValueError(f"inventory mapping for {oms}: OMS item(s) {', '.join(duplicates[:5])} are mapped "
                                 "from more than one seller SKU; each OMS item can mirror one seller SKU only")
        duplicates = _duplicate_items(self.table.get(ALL_OMS, {}))
        if duplicates:
            raise ValueError(f"inventory mapping: OMS item(s) {', '.join(duplicates[:5])} are mapped from more "
                             "than one seller SKU; each OMS item can mirror one seller SKU only")

    def from_table(self, oms: str, seller_sku: str) -> str | None:
        own = self.table.get(oms)
        if own is not None and seller_sku in own:
            return own[seller_sku]
        shared = self.table.get(ALL_OMS)
        return shared.get(seller_sku) if shared is not None else None

    def resolve(self, oms: str, seller_sku: str, product: ProductRef | None) -> Resolution:
        item = self.from_table(oms, seller_sku)
        if item is not None:
            if not item.strip():
                return Unmapped(seller_sku, f"the mapping table leaves seller SKU {seller_sku} empty for {oms}")
            return Mapped(seller_sku, item.strip(), MappingSource.TABLE)
        if product is not None:
            value = product.field(self.product_field)
            if value and value.strip():
                return Mapped(seller_sku, value.strip(), MappingSource.PRODUCTS)
            return Unmapped(seller_sku, f"Buy with Prime product for seller SKU {seller_sku} has no "
                                        f"{self.product_field} and the mapping table has no entry for {oms}")
        return Unmapped(seller_sku, f"seller SKU {seller_sku} is neither in the mapping table for {oms} "
                                    "nor a Buy with Prime product")


def _duplicate_items(entries: Mapping[str, str]) -> list[str]:
    seen: dict[str, str] = {}
    duplicates = []
    for sku, item in entries.items():
        key = item.strip()
        if not key:
            continue
        if key in seen and seen[key] != sku:
            duplicates.append(key)
        seen[key] = sku
    return sorted(set(duplicates))


def valid_quantity(value: object) -> Decimal | None:
    """Amazon's fulfillable quantity as a ``Decimal``, or ``None`` when it is negative, fractional or
    not a number at all (the schema makes every summary field optional, and parsers pass what they
    got through rather than fail the whole page)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not number.is_finite() or number < 0 or number != number.to_integral_value():
        return None
    return number.quantize(Decimal(1))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one seller SKU in one OMS. ``adjustment`` is set only for INCREASE/DECREASE."""

    seller_sku: str
    action: DriftAction
    oms_item: str | None = None
    amazon_quantity: Decimal | None = None
    oms_quantity: Decimal | None = None
    reason: str = ""
    adjustment: StockAdjustment | None = None

    @property
    def is_difference(self) -> bool:
        return self.action in (DriftAction.INCREASE, DriftAction.DECREASE)


def compare(summary: InventorySummary, resolution: Resolution, oms_quantity: Decimal | None, *,
            reference: str, oms_known: bool = True) -> Decision:
    """Amazon's fulfillable quantity against the OMS's stock at the Amazon location.

    ``oms_known`` is False when the OMS does not know the item at the location (``quantities`` gave
    ``None``): no adjustment then, because creating stock for an item the OMS does not stock there is
    a master-data decision for a person, not for a sync.
    """
    sku = summary.seller_sku
    amazon = valid_quantity(summary.fulfillable_quantity)
    if isinstance(resolution, Unmapped):
        return Decision(sku, DriftAction.UNMAPPED, amazon_quantity=amazon, reason=resolution.reason)
    item = resolution.oms_item
    if amazon is None:
        return Decision(sku, DriftAction.INVALID, item, reason=f"Amazon's fulfillable quantity "
                        f"{summary.fulfillable_quantity!r} is not a whole number of zero or more")
    if not oms_known or oms_quantity is None:
        return Decision(sku, DriftAction.UNKNOWN, item, amazon, reason=f"the OMS has no item {item} at the "
                        "Amazon location")
    if amazon == oms_quantity:
        return Decision(sku, DriftAction.NONE, item, amazon, oms_quantity)
    action = DriftAction.INCREASE if amazon > oms_quantity else DriftAction.DECREASE
    return Decision(sku, action, item, amazon, oms_quantity,
                    adjustment=StockAdjustment(seller_sku=sku, oms_item=item, amazon_quantity=amazon,
                                               oms_quantity=oms_quantity, reference=reference))


def shared_items(decisions: Iterable[Decision]) -> dict[str, list[str]]:
    """OMS items that more than one seller SKU of one batch maps to (via the product catalogue; the
    table rejects this at load). Adjusting such an item twice would let the last SKU win, so the
    flows report these as INVALID instead."""
    by_item: dict[str, list[str]] = {}
    for decision in decisions:
        if decision.oms_item is not None and decision.action is not DriftAction.UNMAPPED:
            by_item.setdefault(decision.oms_item, []).append(decision.seller_sku)
    return {item: skus for item, skus in by_item.items() if len(skus) > 1}


def reject_shared(decisions: list[Decision]) -> list[Decision]:
    shared = shared_items(decisions)
    if not shared:
        return decisions
    out = []
    for decision in decisions:
        skus = shared.get(decision.oms_item or "")
        if skus:
            out.append(Decision(decision.seller_sku, DriftAction.INVALID, decision.oms_item,
                                decision.amazon_quantity, decision.oms_quantity,
                                reason=f"OMS item {decision.oms_item} is mapped from several seller SKUs "
                                       f"({', '.join(sorted(skus))}); add a mapping table entry"))
        else:
            out.append(decision)
    return out


def run_reference(run_id: int, oms: str, seller_sku: str) -> str:
    """Unique per (run, OMS, SKU) and the same on every retry and resume of that run, so the OMS
    connector can recognise an adjustment it posted already. Short (at most 25 characters, SAP's
    header-text length) because OMS fields that can carry it are short; the SKU is hashed in."""
    return f"pb{run_id}.{_digest(oms, seller_sku)[:12]}"[:25]


def realtime_reference(oms: str, seller_sku: str, trigger: str) -> str:
    """Unique per triggering event: a retried job reuses it, a later event gets a new one."""
    return f"pbrt.{_digest(oms, seller_sku, trigger)[:20]}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
