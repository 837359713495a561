"""The SAP inventory ledger against the sandbox's API_MATERIAL_STOCK_SRV / API_MATERIAL_DOCUMENT_SRV:
stock read at the Amazon plant / storage location (segments summed, missing materials ``None``),
goods movements up and down, reruns that post nothing twice, and SAP's errors mapped clearly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from tests.sandbox import sap_fixtures
from tests.sandbox.sap_fixtures import Track, sap_config

from primebridge.connectors.sap import build_sap_inventory
from primebridge.connectors.sap.inventory import SapInventoryLedger, reference_text
from primebridge.domain.errors import ConfigError, Rejected
from primebridge.domain.inventory import StockAdjustment
from primebridge.sandbox.server import ThreadedServer

sap_server = sap_fixtures.sap_server
admin = sap_fixtures.admin
track = sap_fixtures.track

PLANT, SLOC = "AMZ1", "AMZN"


def ledger(url: str, track: Track, **inventory: Any) -> SapInventoryLedger:
    settings = {"plant": PLANT, "storage_location": SLOC, **inventory}
    built: SapInventoryLedger = track(build_sap_inventory(sap_config(url, page_size=3, inventory=settings)))
    return built


def stock(admin: httpx.Client, *entries: tuple[Any, ...]) -> None:
    items = [{"material": m, "plant": p, "storage_location": s, "quantity": q, **(extra[0] if extra else {})}
             for m, p, s, q, *extra in entries]
    response = admin.post("/_sandbox/stock", json={"items": items})
    assert response.status_code == 201, response.text


def adjust(sku: str, item: str, amazon: str, oms: str, ref: str) -> StockAdjustment:
    return StockAdjustment(seller_sku=sku, oms_item=item, amazon_quantity=Decimal(amazon),
                           oms_quantity=Decimal(oms), reference=ref)


def documents(admin: httpx.Client) -> list[dict[str, Any]]:
    return list(admin.get("/_sandbox/material-documents").json()["documents"])


def test_quantities_sum_segments_and_report_missing_materials(sap_server: ThreadedServer, admin: httpx.Client,
                                                              track: Track) -> None:
    stock(admin,
          ("MAT-1", PLANT, SLOC, 5), ("MAT-1", PLANT, SLOC, 2, {"batch": "B1"}),
          ("MAT-1", PLANT, SLOC, 7, {"stock_type": "07"}),        # blocked: not unrestricted
          ("MAT-1", PLANT, "OTHR", 100), ("MAT-1", "1010", SLOC, 100),
          ("MAT-2", PLANT, SLOC, 0), ("MAT-3", PLANT, SLOC, "1.5"), ("MAT-4", "1010", SLOC, 9))
    for number in range(5, 12):  # more materials than one $filter holds (values_per_query=2 below)
        stock(admin, (f"MAT-{number}", PLANT, SLOC, number))
    sap = ledger(sap_server.url, track, values_per_query=2)
    wanted = ["MAT-1", "mat-2", "MAT-3", "MAT-4", "NOPE", "X" * 41] + [f"MAT-{n}" for n in range(5, 12)]
    got = sap.quantities(wanted)
    assert got["MAT-1"] == Decimal(7)           # 5 unrestricted + 2 in batch B1
    assert got["mat-2"] == Decimal(0)           # known there with zero stock; key kept as asked
    assert got["MAT-3"] == Decimal("1.5")
    assert got["MAT-4"] is None                 # only at another plant
    assert got["NOPE"] is None and got["X" * 41] is None
    assert all(got[f"MAT-{n}"] == n for n in range(5, 12))
    assert sap.quantities([]) == {}
    as_zero = ledger(sap_server.url, track, missing_as_zero=True)
    assert as_zero.quantities(["MAT-4"]) == {"MAT-4": Decimal(0)}


def test_post_increase_and_decrease_changes_the_stock(sap_server: ThreadedServer, admin: httpx.Client,
                                                      track: Track) -> None:
    stock(admin, ("MAT-A", PLANT, SLOC, 10), ("MAT-B", PLANT, SLOC, 10), ("MAT-C", PLANT, SLOC, 4))
    sap = ledger(sap_server.url, track)
    doc_ids = sap.post_adjustments([
        adjust("SKU-A", "MAT-A", "13", "10", "run1/SKU-A"),
        adjust("SKU-B", "MAT-B", "6", "10", "run1/SKU-B"),
        adjust("SKU-C", "MAT-C", "4", "4", "run1/SKU-C"),      # no difference: nothing posted
    ])
    assert sap.quantities(["MAT-A", "MAT-B", "MAT-C"]) == {"MAT-A": 13, "MAT-B": 6, "MAT-C": 4}
    posted = documents(admin)
    assert len(posted) == 2
    increase, decrease = reversed(posted)
    # each reference names the one document its item went into; the unchanged item is not posted
    assert doc_ids == {"run1/SKU-A": f"{increase['MaterialDocument']}/{increase['MaterialDocumentYear']}",
                       "run1/SKU-B": f"{decrease['MaterialDocument']}/{decrease['MaterialDocumentYear']}"}
    assert increase["MaterialDocumentHeaderText"] == "Amazon inventory sync"
    assert increase["GoodsMovementCode"] == "05" and len(increase["ReferenceDocument"]) == 16
    assert [(i["Material"], i["GoodsMovementType"], i["QuantityInEntryUnit"], i["MaterialDocumentItemText"])
            for i in increase["items"]] == [("MAT-A", "501", "3", "run1/SKU-A")]
    assert [(i["Material"], i["GoodsMovementType"], i["QuantityInEntryUnit"]) for i in decrease["items"]] == [
        ("MAT-B", "502", "4")]


def test_rerun_posts_nothing_twice_and_regrouping_is_safe(sap_server: ThreadedServer, admin: httpx.Client,
                                                          track: Track) -> None:
    stock(admin, *[(f"M{n}", PLANT, SLOC, 10) for n in range(5)])
    sap = ledger(sap_server.url, track, items_per_document=2)
    batch = [adjust(f"S{n}", f"M{n}", "12", "10", f"run-7:S{n}") for n in range(5)]
    first = sap.post_adjustments(batch[:3])
    assert len(set(first.values())) == 2                     # 3 items, at most 2 per document
    assert first["run-7:S0"] == first["run-7:S1"] != first["run-7:S2"]
    assert sap.post_adjustments(batch[:3]) == first          # the same call again: nothing new, same documents
    second = sap.post_adjustments(batch)                     # regrouped: only S3 and S4 are new
    assert len(documents(admin)) == 3
    assert {ref: second[ref] for ref in first} == first      # the earlier ones name the documents found
    assert second["run-7:S3"] == second["run-7:S4"] not in first.values()
    assert sap.quantities([f"M{n}" for n in range(5)]) == {f"M{n}": 12 for n in range(5)}


def test_long_references_are_stored_as_a_stable_digest(sap_server: ThreadedServer, admin: httpx.Client,
                                                       track: Track) -> None:
    stock(admin, ("MAT-L", PLANT, SLOC, 1))
    sap = ledger(sap_server.url, track)
    reference = "full-reconciliation-2025-01-31T10:00:00Z/" + "SKU-" * 20
    sap.post_adjustments([adjust("SKU-L", "MAT-L", "2", "1", reference)])
    sap.post_adjustments([adjust("SKU-L", "MAT-L", "2", "1", reference)])
    [document] = documents(admin)
    text = document["items"][0]["MaterialDocumentItemText"]
    assert text == reference_text(reference) and len(text) == 50 and text != reference[:50]


def test_sap_errors_are_mapped_with_sap_text(sap_server: ThreadedServer, admin: httpx.Client,
                                             track: Track) -> None:
    stock(admin, ("MAT-D", PLANT, SLOC, 2), ("MAT-E", "1010", SLOC, 2))
    sap = ledger(sap_server.url, track)
    # The OMS figure the flow compared with was stale (5): taking 3 leaves a deficit of 1.
    with pytest.raises(Rejected, match=r"M7/021.*Deficit of SL Unrestricted-use 1 PC : MAT-D AMZ1 AMZN"):
        sap.post_adjustments([adjust("SKU-D", "MAT-D", "2", "5", "r-d")])
    with pytest.raises(Rejected, match=r"Material UNKNOWN does not exist"):
        sap.post_adjustments([adjust("SKU-U", "unknown", "1", "0", "r-u")])
    with pytest.raises(Rejected, match=r"not maintained in storage location AMZ1 AMZN"):
        sap.post_adjustments([adjust("SKU-E", "MAT-E", "0", "1", "r-e")])
    with pytest.raises(Rejected, match=r"Unit KG is not defined for material MAT-D"):
        ledger(sap_server.url, track, entry_unit="KG").post_adjustments([adjust("SKU-D", "MAT-D", "3", "2", "r")])
    with pytest.raises(Rejected, match=r"Movement type 201 is not allowed with goods movement code 05"):
        ledger(sap_server.url, track, decrease_movement_type="201").post_adjustments(
            [adjust("SKU-D", "MAT-D", "1", "2", "r-201")])
    assert documents(admin) == []  # a failed document changes nothing
    assert sap.quantities(["MAT-D"]) == {"MAT-D": 2}
    with pytest.raises(ConfigError, match=r"plant and sap\.inventory\.storage_location"):
        build_sap_inventory(sap_config(sap_server.url))


def test_server_paging_and_csrf_expiry_are_handled(sap_server: ThreadedServer, admin: httpx.Client,
                                                   track: Track) -> None:
    admin.put("/_sandbox/settings", json={"server_page_size": 2}).raise_for_status()
    stock(admin, *[(f"P{n}", PLANT, SLOC, n) for n in range(7)],
          *[("P1", PLANT, SLOC, 1, {"batch": f"B{n}"}) for n in range(4)])
    sap = ledger(sap_server.url, track)
    assert sap.quantities([f"P{n}" for n in range(7)]) == {f"P{n}": n + (4 if n == 1 else 0) for n in range(7)}
    sap.post_adjustments([adjust("S", "P2", "3", "2", "csrf-1")])
    admin.post("/_sandbox/csrf/expire").raise_for_status()
    sap.post_adjustments([adjust("S", "P3", "4", "3", "csrf-2")])  # refetches the token once
    assert sap.quantities(["P2", "P3"]) == {"P2": 3, "P3": 4}


def test_unposted_skips_the_lookup_of_earlier_items(sap_server: ThreadedServer, admin: httpx.Client,
                                                    track: Track) -> None:
    """``unposted`` is the caller's promise that no reference was sent: the ledger then does not look
    for earlier items (one query fewer), so the same references posted again *would* post twice;
    that is why the flow promises it only for drift rows it has just created."""
    stock(admin, ("MAT-U", PLANT, SLOC, 10))
    sap = ledger(sap_server.url, track)
    batch = [adjust("SKU-U", "MAT-U", "12", "10", "run-9:SKU-U")]
    first = sap.post_adjustments(batch, unposted=True)
    assert sap.post_adjustments(batch) == first                      # looked up: found, nothing new
    assert sap.post_adjustments(batch, unposted=True) != first       # not looked up: a second document
    assert len(documents(admin)) == 2
