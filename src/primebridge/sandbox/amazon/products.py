"""``products(first, after)`` in the Buy with Prime sandbox: the catalogue the demo seeds, paged.

Forward cursor paging as documented (reference §2.5): ``first`` 0..20, cursors ``catalogid#<sku>``
in SKU order, so a product added or removed between two pages does not shift the others. Each
product's identifiers default to its SKU, as ``CatalogItem.identifiers`` says.
"""

from __future__ import annotations

import bisect
from typing import Any

from primebridge.sandbox.amazon.state import SandboxState
from primebridge.sandbox.amazon.validation import SandboxFault

MAX_FIRST = 20
CURSOR_PREFIX = "catalogid#"
MARKETPLACE_ID = "ATVPDKIKX0DER"


def products_page(state: SandboxState, first: int | None, after: str | None) -> dict[str, Any]:
    first = MAX_FIRST if first is None else first
    if not 0 <= first <= MAX_FIRST:
        raise SandboxFault("ValidationError", "InvalidInput", f"first must be between 0 and {MAX_FIRST}, not {first}")
    if after is not None and not after.startswith(CURSOR_PREFIX):
        raise SandboxFault("ValidationError", "InvalidCursor", f"after {after!r} is not a cursor of this API")
    items = sorted(state.catalog(), key=lambda item: item["sku"])
    skus = [item["sku"] for item in items]
    start = 0 if after is None else bisect.bisect_right(skus, after[len(CURSOR_PREFIX):])
    chosen = items[start:start + first]
    edges = [{"cursor": CURSOR_PREFIX + item["sku"], "node": _node(item)} for item in chosen]
    return {
        "pageInfo": {"hasNextPage": start + len(chosen) < len(items), "hasPreviousPage": start > 0,
                     "startCursor": edges[0]["cursor"] if edges else None,
                     "endCursor": edges[-1]["cursor"] if edges else None},
        "edges": edges,
    }


def _node(item: dict[str, Any]) -> dict[str, Any]:
    sku = item["sku"]
    return {
        "id": item.get("productId") or sku,
        "sku": {"value": sku},
        "externalId": {"value": item.get("externalId") or sku},
        "amazonSku": {"value": item.get("amazonSku") or sku, "marketplaceId": MARKETPLACE_ID},
        "title": item.get("title"),
        "offerPrime": True,
    }
