"""Buy with Prime ``products``: cursor paging through the sandbox's catalogue, 20 per page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import parse, validate
from tests.sandbox.amazon_fixtures import graphql_client

from primebridge.connectors.amazon.errors import BadResponse, NotFound, ValidationError
from primebridge.connectors.amazon.products import (
    BwpProducts,
    InventoryItemInfo,
    ProductIds,
    inventory_item_document,
    products_document,
)
from primebridge.sandbox.amazon import create_app
from primebridge.sandbox.amazon.app import schema
from primebridge.sandbox.server import ThreadedServer

CATALOG = [{"sku": f"SKU-{i:03d}", "title": f"Product {i}", "price": 1} for i in range(45)] + [
    {"sku": "AAA-1", "title": "Mapped", "price": 2, "externalId": "EXT-1", "amazonSku": "AMZ-1",
     "inventoryItemId": "II-77", "fulfillableQuantity": 12}]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with ThreadedServer(create_app(catalog=CATALOG), name="amazon") as server:
        yield server.url


def test_products_document_validates_against_the_sandbox_schema() -> None:
    assert validate(schema(), parse(products_document())) == []
    assert validate(schema(), parse(inventory_item_document())) == []


def test_inventory_item_gives_the_mapped_product_and_its_quantity(url: str) -> None:
    products = BwpProducts(graphql_client(url))
    item = products.inventory_item("II-77")
    assert item == InventoryItemInfo("II-77", 12, ProductIds(sku="AAA-1", external_id="EXT-1", amazon_sku="AMZ-1"))
    assert item.seller_sku == "AMZ-1"
    # A product without its own inventory item id has the sandbox's default one, never its SKU.
    assert products.inventory_item("INV-SKU-003").seller_sku == "SKU-003"
    with pytest.raises(NotFound, match="SKU-003"):
        products.inventory_item("SKU-003")


def test_the_products_query_pages_a_large_catalogue_in_order() -> None:
    big = [{"sku": f"P{i:05d}", "title": "t", "price": 1} for i in range(2000)]
    with ThreadedServer(create_app(catalog=big), name="amazon") as server:
        skus = [p.sku for p in BwpProducts(graphql_client(server.url))]
    assert skus == [item["sku"] for item in big]


def test_every_product_is_listed_once_across_pages_of_20(url: str) -> None:
    products = list(BwpProducts(graphql_client(url)))
    assert len(products) == len(CATALOG)
    assert len({p.sku for p in products}) == len(CATALOG)
    assert ProductIds(sku="AAA-1", external_id="EXT-1", amazon_sku="AMZ-1") in products
    assert ProductIds(sku="SKU-007", external_id="SKU-007", amazon_sku="SKU-007") in products


def test_page_size_is_passed_and_bounded(url: str) -> None:
    assert len(list(BwpProducts(graphql_client(url), page_size=7))) == len(CATALOG)
    with pytest.raises(ValueError):
        BwpProducts(graphql_client(url), page_size=21)


def test_the_sandbox_refuses_more_than_20_and_foreign_cursors(url: str) -> None:
    client = graphql_client(url)
    with pytest.raises(ValidationError, match="between 0 and 20"):
        client.execute(products_document(), {"first": 21, "after": None})
    with pytest.raises(ValidationError, match="not a cursor"):
        client.execute(products_document(), {"first": 5, "after": "elsewhere"})


def test_a_connection_that_never_advances_is_refused() -> None:
    class Stuck:
        def execute(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
            return {"products": {"pageInfo": {"hasNextPage": True, "endCursor": "catalogid#1"},
                                 "edges": [{"cursor": "catalogid#1", "node": {"sku": {"value": "A"}}}]}}

    with pytest.raises(BadResponse, match="already seen"):
        list(BwpProducts(Stuck()))  # type: ignore[arg-type]
