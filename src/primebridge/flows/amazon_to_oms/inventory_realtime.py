"""Real time: an ``INVENTORY_CHANGED`` event sets the OMS quantity at the Amazon location to what
Amazon can fulfil now.

Events are thin and may arrive late, twice or out of order, so the event is only a trigger: the
flow resolves the seller SKU (Buy with Prime's ``inventoryItem`` query for the event's inventory
item gives the mapped product, whose Amazon SKU it is), reads that SKU's *current* summary
with one targeted SP-API call, and posts the difference. An event older than the last reading
applied for that SKU changes nothing: that reading already includes it. Jobs of one inventory item
run one at a time (the intake orders them by resource), so two readings of a SKU never race here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from primebridge.domain.errors import Rejected
from primebridge.domain.events import AmazonEvent
from primebridge.domain.inventory import DriftAction, InventorySummary
from primebridge.domain.inventory_rules import Decision, Mapped, compare, realtime_reference
from primebridge.flows.amazon_to_oms.inventory_mapping import Retry, SkuResolver
from primebridge.ports import InventoryLedger, InventorySource
from primebridge.runtime.inventory_store import InventoryStore, Reading

log = structlog.get_logger(__name__)

INVENTORY_CHANGED = "INVENTORY_CHANGED"
# Documented as ``…/inventory-item/{id}``; older pages show ``…/item-quantities/{id}`` (reference §3.2).
ITEM_KEYS = ("inventory-item", "inventoryItem", "item-quantities")


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _sku_in_data(data: Any) -> str | None:
    """Some event versions carry a product snapshot; its Amazon SKU saves the catalogue lookup."""
    if not isinstance(data, dict):
        return None
    for holder in (data.get("inventoryItem"), data):
        if not isinstance(holder, dict):
            continue
        product = holder.get("product")
        if isinstance(product, dict):
            amazon_sku = product.get("amazonSku")
            value = amazon_sku.get("value") if isinstance(amazon_sku, dict) else amazon_sku
            if isinstance(value, str) and value.strip():
                return value.strip()
        for key in ("sellerSku", "amazonSku"):
            value = holder.get(key)
            if isinstance(value, dict):
                value = value.get("value")
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


class InventoryRealtime:
    def __init__(self, source: InventorySource, ledgers: dict[str, InventoryLedger], resolver: SkuResolver,
                 store: InventoryStore, *, retry: Retry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.ledgers = ledgers
        self.resolver = resolver
        self.store = store
        self.retry = retry or Retry(attempts=1)  # the job runtime retries durably
        self.clock = clock

    def handle_event(self, event: AmazonEvent) -> str:
        """The job handler for ``INVENTORY_CHANGED``; returns the outcome recorded on the job."""
        item_id = next((value for key in ITEM_KEYS if (value := event.resource(key)) is not None), None)
        # The documented path: ask Buy with Prime which product the named inventory item is mapped to
        # (inventoryItem query; the directory falls back to matching the catalogue when BwP does not
        # know the id). A product snapshot in the event's data is the fallback without an item id.
        sku = self.resolver.seller_sku_for_item(item_id) if item_id is not None else None
        if sku is None:
            sku = _sku_in_data(event.data)
        if sku is None:
            if item_id is None:
                raise Rejected(f"{event.event_type} event {event.event_id} names no inventory item "
                               f"(expected a resource with {ITEM_KEYS[0]}/<id>)", code="MissingInventoryItem")
            raise Rejected(f"inventory item {item_id} is not a Buy with Prime product with an Amazon SKU; "
                           "nothing to update", code="UnknownInventoryItem")
        return self.sync_sku(sku, event_time=event.event_time, trigger=event.event_id)

    def sync_sku(self, seller_sku: str, *, event_time: datetime | None = None, trigger: str | None = None,
                 oms: list[str] | None = None) -> str:
        """Bring one SKU's OMS quantity at the Amazon location to Amazon's fulfillable quantity."""
        names = list(oms) if oms else list(self.ledgers)
        last = {name: self.store.readings(name, [seller_sku]).get(seller_sku) for name in names}
        event_at = _ts(event_time)
        fresh = [n for n in names if event_at is None or last[n] is None or event_at > last[n].read_at]  # type: ignore[union-attr]
        if not fresh:
            return (f"{seller_sku}: stale event ({event_time:%Y-%m-%d %H:%M:%S}) older than the reading applied "
                    "at " + ", ".join(f"{n} {_when(last[n])}" for n in names))  # type: ignore[arg-type]
        read_at = self.clock()
        summaries = self.retry.call(lambda: self.source.summaries([seller_sku]), what="inventory summary")
        summary = next((s for s in summaries if s.seller_sku == seller_sku), None)
        if summary is None:
            raise Rejected(f"Amazon has no inventory summary for seller SKU {seller_sku} in the marketplace",
                           code="UnknownSku")
        resolutions = self.resolver.resolve(fresh, [seller_sku])
        outcomes = [f"{n}: stale event" for n in names if n not in fresh]
        problems = []
        for name in fresh:
            decision, document = self._apply(name, summary, resolutions[name][seller_sku], read_at,
                                             last[name], trigger)
            outcomes.append(_describe(name, decision, document))
            if decision.action in (DriftAction.UNMAPPED, DriftAction.UNKNOWN, DriftAction.INVALID):
                problems.append(f"{name}: {decision.reason}")
        text = f"{seller_sku} (Amazon {summary.fulfillable_quantity}): " + "; ".join(outcomes)
        log.info("inventory.realtime", sku=seller_sku, outcome=text)
        if problems and len(problems) == len(names):
            raise Rejected(text, code="InventoryNotApplied")
        return text

    def _apply(self, oms: str, summary: InventorySummary, resolution: Any, read_at: float,
               last: Reading | None, trigger: str | None) -> tuple[Decision, str | None]:
        updated_at = _ts(summary.last_updated)
        if (last is not None and updated_at is not None and last.amazon_updated_at is not None
                and updated_at < last.amazon_updated_at):
            # Amazon answered with an older state than one applied already (its reads are eventually
            # consistent): keep the newer one.
            return Decision(summary.seller_sku, DriftAction.NONE, last.oms_item, reason="older than applied"), None
        ledger = self.ledgers[oms]
        quantity: Decimal | None = None
        if isinstance(resolution, Mapped):
            item = resolution.oms_item
            quantity = self.retry.call(lambda: ledger.quantities([item]), what=f"{oms} stock read").get(item)
        reference = realtime_reference(oms, summary.seller_sku, trigger or f"{read_at:.6f}")
        decision = compare(summary, resolution, quantity, oms_known=quantity is not None, reference=reference)
        document = None
        if decision.adjustment is not None:
            adjustment = decision.adjustment
            posted = self.retry.call(lambda: ledger.post_adjustments([adjustment]), what=f"{oms} adjustment")
            document = posted.get(adjustment.reference)
        if decision.amazon_quantity is not None and decision.oms_item is not None and decision.action in (
                DriftAction.NONE, DriftAction.INCREASE, DriftAction.DECREASE):
            self.store.save_readings([Reading(oms, summary.seller_sku, decision.oms_item, decision.amazon_quantity,
                                              read_at, updated_at, f"event:{trigger}" if trigger else "manual",
                                              document)])
        return decision, document


def _when(reading: Reading | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(reading.read_at)) if reading else "never"


def _describe(oms: str, decision: Decision, document: str | None) -> str:
    if decision.is_difference:
        return (f"{oms} {decision.oms_item} {decision.oms_quantity} → {decision.amazon_quantity} "
                f"({decision.action}, document {document})")
    if decision.action is DriftAction.NONE:
        note = f" ({decision.reason})" if decision.reason else ""
        return f"{oms} {decision.oms_item} unchanged at {decision.oms_quantity}{note}"
    return f"{oms} {decision.action}: {decision.reason}"
