"""Buy with Prime ``products``: every product's seller SKU, external id and Amazon SKU.

The inventory sync needs the link between the SKU Amazon reports stock for and the merchant's
identifiers (reference §2.5). ``products`` pages forward only, Relay style, at most 20 a page;
cursors are opaque (``catalogid#...``) and passed back as received. The generator holds one page
at a time, so a large catalogue streams in constant memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from primebridge.connectors.amazon.client import BwpGraphQLClient, load_document
from primebridge.connectors.amazon.errors import BadResponse

MAX_PAGE_SIZE = 20  # products(first: 0..20)


class ProductIds(NamedTuple):
    """One product's identifiers; any of them may be missing in the catalogue."""

    sku: str | None
    external_id: str | None
    amazon_sku: str | None


def products_document() -> str:
    return load_document("products.graphql")


class BwpProducts:
    """Iterates the whole catalogue of one BwP instance."""

    def __init__(self, client: BwpGraphQLClient, *, page_size: int = MAX_PAGE_SIZE) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")
        self._client = client
        self._page_size = page_size

    def __iter__(self) -> Iterator[ProductIds]:
        return self.iter_products()

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
                    yield ProductIds(sku=_value(node.get("sku")), external_id=_value(node.get("externalId")),
                                     amazon_sku=_value(node.get("amazonSku")))
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


def _value(wrapper: Any) -> str | None:
    value = wrapper.get("value") if isinstance(wrapper, dict) else None
    return value if isinstance(value, str) and value else None
