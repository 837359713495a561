"""The SP-API sandbox's FBA inventory: a generated catalogue of any size plus explicit changes.

SKU ``i`` of the generated part is ``<prefix><i zero-padded>`` and its quantity a hash of
``(seed, i)``: nothing is stored per generated SKU, so a 1M-SKU catalogue costs no memory and the
same settings always give the same catalogue. What the admin API changes (quantities set, SKUs
added or deleted) is kept in small side tables and merged in when a page is read.

Pages are in SKU order (as users report Amazon's are, reference §A1.7) and a page position is the
last SKU returned, so SKUs added or removed between two pages neither shift nor repeat the rest.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

GENERATED_TIME = "2026-01-01T00:00:00Z"


@dataclass
class Entry:
    """An SKU set through the admin API; ``quantity`` is any JSON value on purpose, so tests can
    make Amazon report a negative or non-numeric fulfillable quantity."""

    quantity: Any
    updated: str
    product_name: str | None = None
    asin: str | None = None
    fn_sku: str | None = None


@dataclass
class Catalogue:
    size: int = 1000
    seed: int = 0
    prefix: str = "SKU-"
    max_quantity: int = 500
    entries: dict[str, Entry] = field(default_factory=dict)
    extras: list[str] = field(default_factory=list)  # sorted SKUs outside the generated range
    deleted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("size must be >= 0")
        self.width = max(6, len(str(max(self.size - 1, 0))))

    # -- generated part ------------------------------------------------------------------------------

    def generated(self, index: int) -> str:
        return f"{self.prefix}{index:0{self.width}d}"

    def index_of(self, sku: str) -> int | None:
        rest = sku[len(self.prefix):] if sku.startswith(self.prefix) else ""
        if len(rest) != self.width or not rest.isdigit():
            return None
        index = int(rest)
        return index if index < self.size else None

    def generated_quantity(self, index: int) -> int:
        mixed = ((index + 1) * 2654435761 + self.seed * 40503) & 0xFFFFFFFF
        mixed ^= mixed >> 13
        return (mixed * 2246822519 & 0xFFFFFFFF) % (self.max_quantity + 1)

    # -- lookups -------------------------------------------------------------------------------------

    def exists(self, sku: str) -> bool:
        if sku in self.deleted:
            return False
        return sku in self.entries or self.index_of(sku) is not None

    def record(self, sku: str) -> dict[str, Any] | None:
        """The summary fields of one SKU (``None`` when the catalogue has no such SKU)."""
        if not self.exists(sku):
            return None
        entry = self.entries.get(sku)
        index = self.index_of(sku)
        key = index if index is not None else sum(sku.encode())
        return {
            "sellerSku": sku,
            "asin": (entry and entry.asin) or f"B0{key:08X}",
            "fnSku": (entry and entry.fn_sku) or f"X0{key:08X}",
            "productName": (entry and entry.product_name) or f"Sandbox product {sku}",
            "quantity": entry.quantity if entry else self.generated_quantity(index or 0),
            "lastUpdatedTime": entry.updated if entry else GENERATED_TIME,
        }

    def after(self, cursor: str | None) -> Iterator[str]:
        """Every existing SKU greater than ``cursor`` in order: the generated range and the extras merged."""
        start = 0 if cursor is None else bisect.bisect_right(range(self.size), cursor, key=self.generated)
        extra = 0 if cursor is None else bisect.bisect_right(self.extras, cursor)
        index = start
        while index < self.size or extra < len(self.extras):
            gen = self.generated(index) if index < self.size else None
            ext = self.extras[extra] if extra < len(self.extras) else None
            if ext is None or (gen is not None and gen < ext):
                sku, index = gen, index + 1
            else:
                sku, extra = ext, extra + 1
            assert sku is not None
            if sku not in self.deleted:
                yield sku

    def count(self) -> int:
        return self.size - sum(1 for s in self.deleted if self.index_of(s) is not None) + \
            sum(1 for s in self.extras if s not in self.deleted)

    # -- changes -------------------------------------------------------------------------------------

    def put(self, sku: str, entry: Entry) -> None:
        self.deleted.discard(sku)
        self.entries[sku] = entry
        if self.index_of(sku) is None:
            position = bisect.bisect_left(self.extras, sku)
            if position == len(self.extras) or self.extras[position] != sku:
                self.extras.insert(position, sku)

    def delete(self, sku: str) -> bool:
        if not self.exists(sku):
            return False
        self.deleted.add(sku)
        self.entries.pop(sku, None)
        return True
