"""Buy with Prime ``products``: every product's seller SKU, external id and Amazon SKU; and
``inventoryItem``: the product an inventory item (what ``INVENTORY_CHANGED`` names) is mapped to.

The inventory sync needs the link between the SKU Amazon reports stock for and the merchant's
identifiers (reference §2.5). ``products`` pages forward only, Relay style, at most 20 a page;
cursors are opaque (``catalogid#...``) and passed back as received. The generator holds one page
at a time, so a large catalogue streams in constant memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from primebridge.connectors.amazon.client import BwpGraphQLClient, load_document
from primebridge.connectors.amazon.errors import BadResponse, NotFound

MAX_PAGE_SIZE = 20  # products(first: 0..20)


class ProductIds(NamedTuple):
    """One product's identifiers; any of them may be missing in the catalogue."""

    sku: str | None
    external_id: str | None
    amazon_sku: str | None


class InventoryItemInfo(NamedTuple):
    """What ``inventoryItem`` says about one inventory item."""

    inventory_item_id: str
    fulfillable_quantity: int | None
    product: ProductIds | None

    @property
    def seller_sku(self) -> str | None:
        """The SKU Amazon's inventory summaries use: the product's Amazon SKU, else its SKU."""
        if self.product is None:
            return None
        return self.product.amazon_sku or self.product.sku


def products_document() -> str:
    return load_document("products.graphql")


def inventory_item_document() -> str:
    return load_document("inventoryItem.graphql")


class BwpProducts:
    """Iterates the whole catalogue of one BwP instance."""

    def __init__(self, client: BwpGraphQLClient, *, page_size: int = MAX_PAGE_SIZE) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")
        self._client = client
        self._page_size = page_size

    def __iter__(self) -> Iterator[ProductIds]:
        return self.iter_products()

    def inventory_item(self, inventory_item_id: str) -> InventoryItemInfo:
        """One inventory item; raises ``NotFound`` when BwP does not know the id."""
        data = self._client.execute(inventory_item_document(), {"inventoryItemId": inventory_item_id})
        item = data.get("inventoryItem")
        if item is None:
            raise NotFound(f"BwP inventoryItem {inventory_item_id}: no such inventory item")
        if not isinstance(item, dict):
            raise BadResponse("BwP inventoryItem: the response has no 'inventoryItem' object")
        quantity = item.get("fulfillableQuantity")
        amount = quantity.get("amount") if isinstance(quantity, dict) else None
        node = item.get("product")
        return InventoryItemInfo(
            inventory_item_id=str(item.get("inventoryItemId") or inventory_item_id),
            fulfillable_quantity=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
            product=_ids(node) if isinstance(node, dict) else None)

    def iter_products(self) -> Iterator[ProductIds]:
        after: str | None = None
        seen_cursors: set[str] = set()
        while True:
            data = self._client.execute(products_document(), {"first": self._page_size, "after": after})
            connection = data.get("products")
            if not isinstance(connection, dict):
                raise BadResponse("BwP products: the response has no 'products' connection")
            for edge in connection.get("edges") or []:
                node = edge.get("node") if isinstance(edge, dict) else None
                if isinstance(node, dict):
                    yield _ids(node)
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            cursor = info.get("endCursor")
            if not isinstance(cursor, str) or not cursor or cursor in seen_cursors:
                # A missing or repeated cursor would page forever (or skip silently): stop loudly.
                raise BadResponse(f"BwP products: hasNextPage is true but endCursor is {cursor!r}, "
                                  "missing or already seen")
            seen_cursors.add(cursor)
            after = cursor


def _ids(node: dict[str, Any]) -> ProductIds:
    return ProductIds(sku=_value(node.get("sku")), external_id=_value(node.get("externalId")),
                      amazon_sku=_value(node.get("amazonSku")))


def _value(wrapper: Any) -> str | None:
    value = wrapper.get("value") if isinstance(wrapper, dict) else None
    return value if isinstance(value, str) and value else None
