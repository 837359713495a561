"""In-memory fakes of the inventory ports (``InventorySource``, ``InventoryLedger``) and the product
directory, strict where the flows' guarantees rest on the real systems: the ledger refuses a
reference it has posted already (as the port promises) and counts every document, so a test can
prove that nothing was adjusted twice.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from primebridge.domain.errors import Rejected, TransientError
from primebridge.domain.inventory import InventorySummary, StockAdjustment
from primebridge.domain.inventory_rules import ProductRef


@dataclass
class FakeSource:
    """Amazon's catalogue in a stable order; ``fail_at_page`` raises a transient error once there."""

    catalogue: list[InventorySummary]
    page_size: int = 3
    fail_at_page: int | None = None
    stop_after_pages: int | None = None   # simulates a process killed mid-scan (raises KeyboardInterrupt)
    scans: int = 0
    pages_served: int = 0
    targeted: list[list[str]] = field(default_factory=list)

    def scan(self) -> Iterator[list[InventorySummary]]:
        self.scans += 1
        for index, start in enumerate(range(0, len(self.catalogue), self.page_size)):
            if self.fail_at_page is not None and index == self.fail_at_page:
                self.fail_at_page = None
                raise TransientError("nextToken expired", retry_after=0)
            if self.stop_after_pages is not None and self.pages_served >= self.stop_after_pages:
                raise KeyboardInterrupt("killed")
            self.pages_served += 1
            yield list(self.catalogue[start:start + self.page_size])

    def summaries(self, seller_skus: list[str]) -> list[InventorySummary]:
        assert len(seller_skus) <= 50
        self.targeted.append(list(seller_skus))
        wanted = set(seller_skus)
        return [s for s in self.catalogue if s.seller_sku in wanted]

    def set(self, sku: str, quantity: int, **kwargs: object) -> None:
        self.catalogue = [InventorySummary(sku, quantity, **kwargs) if s.seller_sku == sku else s  # type: ignore[arg-type]
                          for s in self.catalogue]


@dataclass
class Document:
    id: str
    lines: list[StockAdjustment]


class FakeLedger:
    """An OMS's stock at the Amazon location. Items absent from ``stock`` are unknown there."""

    def __init__(self, name: str, stock: dict[str, int | Decimal], *, transient_failures: int = 0,
                 rejected_items: set[str] | None = None) -> None:
        self.name = name
        self.stock = {item: Decimal(qty) for item, qty in stock.items()}
        self.documents: list[Document] = []
        self.by_reference: dict[str, str] = {}
        self.transient_failures = transient_failures
        self.rejected_items = rejected_items or set()
        self.reads: list[list[str]] = []
        self._ids = itertools.count(4900000001)
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def quantities(self, oms_items: list[str]) -> dict[str, Decimal | None]:
        with self._lock:
            self.reads.append(list(oms_items))
            return {item: self.stock.get(item) for item in oms_items}

    def post_adjustments(self, adjustments: list[StockAdjustment], *, unposted: bool = False) -> dict[str, str]:
        if unposted:
            # The caller's promise that no reference was sent before: a broken promise would be a
            # double adjustment in an OMS that does not look up (the ledgers skip it then).
            seen = [a.reference for a in adjustments if a.reference in self.by_reference]
            assert not seen, f"post_adjustments(unposted=True) with references already posted: {seen}"
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            with self._lock:
                if self.transient_failures:
                    self.transient_failures -= 1
                    raise TransientError("503 from the OMS", retry_after=0)
                bad = [a.oms_item for a in adjustments if a.oms_item in self.rejected_items]
                if bad:
                    raise Rejected(f"item {bad[0]} is blocked for movements")
                new = [a for a in adjustments if a.reference not in self.by_reference]
                if new:
                    doc = Document(str(next(self._ids)), new)
                    self.documents.append(doc)
                    for a in new:
                        self.stock[a.oms_item] = self.stock.get(a.oms_item, Decimal(0)) + a.delta
                        self.by_reference[a.reference] = doc.id
                return {a.reference: self.by_reference[a.reference] for a in adjustments if a.delta != 0}
        finally:
            with self._lock:
                self.active -= 1

    def adjusted_items(self) -> list[str]:
        return [line.oms_item for doc in self.documents for line in doc.lines]


class FakeDirectory:
    def __init__(self, products: list[ProductRef]) -> None:
        self.products = {p.seller_sku: p for p in products}
        self.lookups: list[list[str]] = []

    def products_for(self, seller_skus: list[str]) -> dict[str, ProductRef]:
        self.lookups.append(list(seller_skus))
        return {sku: self.products[sku] for sku in seller_skus if sku in self.products}

    def seller_sku_for_item(self, inventory_item_id: str) -> str | None:
        return next((p.seller_sku for p in self.products.values() if p.inventory_item_id == inventory_item_id), None)
