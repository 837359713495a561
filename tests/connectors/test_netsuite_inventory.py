"""The NetSuite inventory ledger against the sandbox: quantities per item at the Amazon location by
SuiteQL (missing items ``None``), inventory adjustments up and down, reruns that post nothing twice,
the account's concurrency limit respected, and NetSuite's errors mapped clearly."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from tests.sandbox.netsuite_fixtures import admin, netsuite_config, serve

from primebridge.connectors.netsuite import build_netsuite_inventory
from primebridge.connectors.netsuite.inventory import NetSuiteInventoryLedger, external_id
from primebridge.domain.errors import ConfigError, Rejected
from primebridge.domain.inventory import StockAdjustment
from primebridge.ports import InventoryLedger
from primebridge.sandbox.server import ThreadedServer

AMAZON, OTHER = "7", "1"

server = serve("netsuite-inventory")


@pytest.fixture()
def url(server: ThreadedServer) -> str:
    admin(server.url, "POST", "reset")
    admin(server.url, "PUT", "governance", {"concurrency_limit": 5, "gate_closed": False})
    return server.url


def ledger(url: str, concurrency: int = 4, **inventory: Any) -> NetSuiteInventoryLedger:
    cfg = netsuite_config(url, concurrency=concurrency,
                          inventory={"location_id": AMAZON, "account_id": "58", **inventory})
    return build_netsuite_inventory(cfg)


def stock(url: str, location: str, **items: Any) -> None:
    admin(url, "POST", "inventory", {"location": location,
                                     "items": [{"item": k, "quantity": v} for k, v in items.items()]})


def adjust(item: str, amazon: str, oms: str, ref: str) -> StockAdjustment:
    return StockAdjustment(seller_sku=f"AMZ-{item}", oms_item=item, amazon_quantity=Decimal(amazon),
                           oms_quantity=Decimal(oms), reference=ref)


def adjustments(url: str) -> list[dict[str, Any]]:
    return list(admin(url, "GET", "inventory-adjustments")["items"])


def test_quantities_by_item_name_and_missing_items(url: str) -> None:
    stock(url, AMAZON, **{"SKU-1": 5, "SKU-2": 0, "SKU-3": "2.5"})
    stock(url, OTHER, **{"SKU-1": 100, "SKU-4": 9})
    netsuite: InventoryLedger = ledger(url, items_per_query=2)
    got = netsuite.quantities(["SKU-1", "SKU-2", "SKU-3", "SKU-4", "NOPE", "sku-1"])
    assert got == {"SKU-1": Decimal(5), "SKU-2": Decimal(0), "SKU-3": Decimal("2.5"),
                   "SKU-4": None,        # an item, but never stocked at the Amazon location
                   "NOPE": None, "sku-1": None}
    assert netsuite.quantities([]) == {}


def test_quantities_by_internal_id(url: str) -> None:
    stock(url, AMAZON, **{"SKU-1": 3})
    item_id = admin(url, "GET", "inventory?item=SKU-1&location=7")["id"]
    got = ledger(url, item_key="id").quantities([str(item_id), "999999", "not-a-number"])
    assert got == {str(item_id): Decimal(3), "999999": None, "not-a-number": None}


def test_post_increases_and_decreases_in_one_adjustment(url: str) -> None:
    stock(url, AMAZON, **{"SKU-A": 10, "SKU-B": 10, "SKU-C": 1})
    netsuite = ledger(url)
    doc = netsuite.post_adjustments([adjust("SKU-A", "13", "10", "run1:SKU-A"),
                                     adjust("SKU-B", "4", "10", "run1:SKU-B"),
                                     adjust("SKU-C", "1", "1", "run1:SKU-C")])
    assert netsuite.quantities(["SKU-A", "SKU-B", "SKU-C"]) == {"SKU-A": 13, "SKU-B": 4, "SKU-C": 1}
    [record] = adjustments(url)
    assert doc == {"run1:SKU-A": record["id"], "run1:SKU-B": record["id"]}  # the unchanged SKU-C: no line
    assert record["memo"] == "Amazon inventory sync"
    assert record["account"]["id"] == "58" and record["adjLocation"]["id"] == AMAZON
    assert record["externalId"] == external_id("PB-INV-", ["run1:SKU-A", "run1:SKU-B"])
    assert [(line["item"]["refName"], line["adjustQtyBy"], line["memo"]) for line in record["inventory"]["items"]] \
        == [("SKU-A", 3, "run1:SKU-A"), ("SKU-B", -6, "run1:SKU-B")]


def test_rerun_posts_nothing_twice(url: str) -> None:
    stock(url, AMAZON, **{f"I{n}": 10 for n in range(5)})
    netsuite = ledger(url, lines_per_document=2)
    batch = [adjust(f"I{n}", "11", "10", f"run-2/I{n}") for n in range(5)]
    first = netsuite.post_adjustments(batch)
    records = [record["id"] for record in adjustments(url)]
    assert len(records) == 3                                # 5 lines, at most 2 per adjustment
    assert sorted(first) == [f"run-2/I{n}" for n in range(5)] and set(first.values()) == set(records)
    assert first["run-2/I0"] == first["run-2/I1"] != first["run-2/I2"] == first["run-2/I3"] != first["run-2/I4"]
    assert netsuite.post_adjustments(batch) == first        # the same call again: found by externalId
    assert len(adjustments(url)) == 3
    assert netsuite.quantities([f"I{n}" for n in range(5)]) == {f"I{n}": 11 for n in range(5)}
    assert netsuite.post_adjustments([adjust("I0", "11", "11", "run-3/I0")]) == {}


def test_errors_are_mapped_clearly(url: str) -> None:
    stock(url, AMAZON, **{"SKU-D": 2})
    netsuite = ledger(url)
    with pytest.raises(Rejected, match=r"no active item GHOST"):
        netsuite.post_adjustments([adjust("GHOST", "1", "0", "r-ghost")])
    with pytest.raises(Rejected, match=r"below zero.*\[USER_ERROR\]"):  # the OMS figure was stale
        netsuite.post_adjustments([adjust("SKU-D", "0", "5", "r-d")])
    with pytest.raises(Rejected, match=r"Invalid Field Value 99 for the following field: adjLocation"):
        ledger(url, location_id="99").post_adjustments([adjust("SKU-D", "3", "2", "r-loc")])
    assert adjustments(url) == []
    with pytest.raises(ConfigError, match="location_id"):
        ledger(url, location_id="")


def test_parallel_posts_stay_within_the_concurrency_limit(url: str) -> None:
    stock(url, AMAZON, **{f"P{n}": 10 for n in range(16)})
    admin(url, "PUT", "governance", {"concurrency_limit": 2})
    netsuite = ledger(url, concurrency=2)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            netsuite.post_adjustments([adjust(f"P{n}", "12", "10", f"par/P{n}")])
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    stats = admin(url, "GET", "stats")
    assert stats["throttled"] == 0 and stats["max_in_flight"] <= 2
    assert len(adjustments(url)) == 16


def test_indexed_suiteql_answers_like_a_full_scan() -> None:
    """The sandbox answers ``IN``/``=`` on indexed columns from an index and big ``IN`` lists from a set;
    neither may change an answer, including NULLs, ``NOT IN``, mixed types and an ``OR`` at the top."""
    from primebridge.sandbox.netsuite.suiteql import Table, equal_values, execute

    rows = [{"item": n, "location": n % 3, "name": f"N{n}", "qty": None if n == 4 else n} for n in range(1, 30)]
    narrow_calls: list[list[Any] | None] = []

    def narrow(where: Any, params: Any) -> list[dict[str, Any]] | None:
        wanted = equal_values(where, "item", params)
        narrow_calls.append(wanted)
        return None if wanted is None else [r for r in rows if r["item"] in {int(str(w)) for w in wanted}]

    columns = frozenset({"item", "location", "name", "qty"})
    indexed = {"t": Table("t", columns, lambda: rows, narrow=narrow)}
    scanned = {"t": Table("t", columns, lambda: rows)}
    queries = [
        ("SELECT item, qty FROM t WHERE location = 1 AND item IN (1, 4, 7, 10, 99)", []),
        ("SELECT item FROM t WHERE item IN (?, ?, ?) AND qty IS NOT NULL", [4, 5, 6]),
        ("SELECT item FROM t WHERE item = 5 OR item = 6", []),
        ("SELECT item FROM t WHERE item NOT IN (1, 2, 3) AND location = 0", []),
        ("SELECT item FROM t WHERE name IN ('N1', 'N2', 'x') AND qty IN (1, '2')", []),
        ("SELECT item FROM t WHERE qty IN (4, 5) ORDER BY item", []),
    ]
    for query, params in queries:
        assert execute(query, indexed, params) == execute(query, scanned, params), query
    assert narrow_calls[:3] == [[1, 4, 7, 10, 99], [4, 5, 6], None]


def test_sap_sandbox_filter_index_only_narrows() -> None:
    from primebridge.sandbox.sap.inventory_service import equal_values

    assert equal_values("(Material eq 'A' or Material eq 'B''s') and Plant eq 'P'", "Material") == {"A", "B's"}
    assert equal_values("Plant eq 'P' and Material eq 'A'", "Material") == {"A"}
    assert equal_values("Material eq 'A' or Plant eq 'P'", "Material") is None
    assert equal_values("(Material eq 'A') or (Material eq 'B')", "Material") is None
    assert equal_values("not Material eq 'A'", "Material") is None
    assert equal_values("(Material eq 'A' or (Material eq 'B' and Plant eq 'X'))", "Material") is None
    assert equal_values(None, "Material") is None
