"""What both inventory flows share: how a seller SKU finds its OMS item (mapping table first, then
Buy with Prime's product catalogue), and the in-process retry of one OMS or Amazon call.

The product catalogue is a port of its own (``ports.ProductDirectory``) so the flows never import the
Buy with Prime connector; bootstrap adapts the connector's ``products`` query to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import httpx
import structlog

from primebridge.domain.errors import TransientError
from primebridge.domain.inventory_rules import ProductRef, Resolution, SkuMapping
from primebridge.ports import ProductDirectory
from primebridge.runtime.backoff import retry_delay

log = structlog.get_logger(__name__)
T = TypeVar("T")


class SkuResolver:
    """Resolves a batch of seller SKUs for several OMSs with at most one catalogue lookup."""

    def __init__(self, mapping: SkuMapping, products: ProductDirectory | None, *,
                 retry: Retry | None = None) -> None:
        self.mapping = mapping
        self.products = products
        self.retry = retry or Retry()

    def resolve(self, oms_names: Iterable[str], seller_skus: list[str]) -> dict[str, dict[str, Resolution]]:
        names = list(oms_names)
        missing = [sku for sku in seller_skus if any(self.mapping.from_table(oms, sku) is None for oms in names)]
        found: dict[str, ProductRef] = {}
        if missing and self.products is not None:
            found = self.retry.call(lambda: self.products.products_for(missing), what="products lookup")  # type: ignore[union-attr]
        return {oms: {sku: self.mapping.resolve(oms, sku, found.get(sku)) for sku in seller_skus} for oms in names}

    def seller_sku_for_item(self, inventory_item_id: str) -> str | None:
        if self.products is None:
            return None
        return self.retry.call(lambda: self.products.seller_sku_for_item(inventory_item_id),  # type: ignore[union-attr]
                               what="inventory item lookup")


class Retry:
    """Retries a call on transient failures (network, 429/5xx as ``TransientError``) with the runtime's
    jittered backoff, honouring ``Retry-After``. In-process on purpose: a reconciliation page is
    worth a few seconds' wait, not a durable re-schedule of a whole scan. Anything else propagates."""

    def __init__(self, attempts: int = 5, *, base: float = 0.5, cap: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep, stop: threading.Event | None = None) -> None:
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.sleep = sleep
        self.stop = stop

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except (TransientError, httpx.TransportError) as exc:
                if attempt >= self.attempts or (self.stop is not None and self.stop.is_set()):
                    raise
                delay = retry_delay(attempt, base=self.base, cap=self.cap,
                                    retry_after=getattr(exc, "retry_after", None))
                log.info("inventory.retry", what=what, attempt=attempt, delay=round(delay, 2),
                         error=f"{type(exc).__name__}: {exc}")
                self.sleep(delay)


class CatalogueDirectory:
    """A ``ProductDirectory`` over a product listing that can only be read whole (Buy with Prime's
    ``products`` query pages forward, 20 at a time, with no SKU filter in the connector).

    The index (seller SKU → product) is built on the first lookup that needs it and rebuilt on a
    miss at most every ``refresh_seconds``, so a product added in Buy with Prime is found without a
    restart but an unmapped SKU does not trigger a catalogue read per page. It is the one in-memory
    copy of the catalogue; a merchant whose table maps every SKU never loads it.

    An ``INVENTORY_CHANGED`` event names an inventory item id. ``item_lookup`` asks Buy with Prime
    which product that item is mapped to (the ``inventoryItem`` query, reference §2.5/§3.2): it
    returns the product's seller SKU, ``None`` for an item mapped to no product with an Amazon SKU,
    and raises ``LookupError`` when Buy with Prime does not know the id. Only then (or without a
    lookup) is the id matched against the catalogue's SKU, Amazon SKU and external id, the fallback
    for the case that an event names a product identifier instead (UNCONFIRMED which one it names).
    """

    def __init__(self, listing: Callable[[], Iterable[object]], *, refresh_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 item_lookup: Callable[[str], str | None] | None = None) -> None:
        self._listing = listing
        self._item_lookup = item_lookup
        self._refresh = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._by_seller_sku: dict[str, ProductRef] | None = None
        self._loaded_at = 0.0

    def _index(self, *, missing: bool) -> dict[str, ProductRef]:
        with self._lock:
            stale = self._by_seller_sku is None or (missing and self._clock() - self._loaded_at >= self._refresh)
            if stale:
                index: dict[str, ProductRef] = {}
                for product in self._listing():
                    seller_sku = getattr(product, "amazon_sku", None) or getattr(product, "sku", None)
                    if seller_sku:
                        index[seller_sku] = ProductRef(seller_sku, sku=getattr(product, "sku", None),
                                                       external_id=getattr(product, "external_id", None),
                                                       inventory_item_id=getattr(product, "inventory_item_id", None))
                self._by_seller_sku = index
                self._loaded_at = self._clock()
                log.info("inventory.products_loaded", products=len(index))
            return self._by_seller_sku  # type: ignore[return-value]

    def products_for(self, seller_skus: list[str]) -> dict[str, ProductRef]:
        index = self._index(missing=False)
        if any(sku not in index for sku in seller_skus):
            index = self._index(missing=True)
        return {sku: index[sku] for sku in seller_skus if sku in index}

    def seller_sku_for_item(self, inventory_item_id: str) -> str | None:
        if self._item_lookup is not None:
            try:
                return self._item_lookup(inventory_item_id)
            except LookupError:
                log.info("inventory.item_not_found_matching_catalogue", inventory_item=inventory_item_id)
        for missing in (False, True):
            index = self._index(missing=missing)
            for ref in index.values():
                if inventory_item_id in (ref.inventory_item_id, ref.sku, ref.seller_sku, ref.external_id):
                    return ref.seller_sku
        return None
