"""``products(first, after)`` in the Buy with Prime sandbox: the catalogue the demo seeds, paged.

Forward cursor paging as documented (reference §2.5): ``first`` 0..20, cursors ``catalogid#<sku>``
in SKU order, so a product added or removed between two pages does not shift the others. Each
product's identifiers default to its SKU, as ``CatalogItem.identifiers`` says. A page copies only
its own products (the state keeps the SKU order), so reading a large catalogue is linear.

``inventoryItem(inventoryItemId)`` (reference §2.5, §3.2): the item an ``INVENTORY_CHANGED`` event
names, with its quantity and mapped product. Each product has one (``inventoryItemId``, by default
``INV-<sku>``: deliberately not the SKU, so a client that guesses instead of asking is caught).
"""

from __future__ import annotations

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
    chosen, more, before = state.catalog_page(None if after is None else after[len(CURSOR_PREFIX):], first)
    edges = [{"cursor": CURSOR_PREFIX + item["sku"], "node": _node(item)} for item in chosen]
    return {
        "pageInfo": {"hasNextPage": more, "hasPreviousPage": before,
                     "startCursor": edges[0]["cursor"] if edges else None,
                     "endCursor": edges[-1]["cursor"] if edges else None},
        "edges": edges,
    }


def inventory_item(state: SandboxState, inventory_item_id: str) -> dict[str, Any]:
    """``inventoryItem(inventoryItemId)``: the item's id, fulfillable quantity and mapped product;
    an unknown id is a ``ResourceNotFoundError`` like an unknown order."""
    item = state.inventory_item(inventory_item_id)
    if item is None:
        raise SandboxFault("ResourceNotFoundError", "InventoryItemNotFound",
                           f"inventory item {inventory_item_id} does not exist")
    return {"inventoryItemId": inventory_item_id,
            "fulfillableQuantity": {"amount": item.get("fulfillableQuantity") or 0, "unit": "UNIT"},
            "product": _node(item)}


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
