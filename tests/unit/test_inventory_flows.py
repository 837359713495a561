"""The inventory flows against in-memory ports and a real SQLite store."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.domain.events import event_from_json
from primebridge.domain.inventory import InventorySummary, StockAdjustment
from primebridge.domain.inventory_rules import ProductRef, SkuMapping
from primebridge.flows.amazon_to_oms.inventory_mapping import Retry, SkuResolver
from primebridge.flows.amazon_to_oms.inventory_realtime import InventoryRealtime
from primebridge.flows.amazon_to_oms.inventory_reconciliation import (
    FullReconciliation,
    NothingToResume,
    Progress,
    ReconciliationBusy,
    _dead_here,
    _Page,
    report_paths,
)
from primebridge.runtime.db import Database
from primebridge.runtime.inventory_store import DONE, INTERRUPTED, InventoryStore, Reading
from tests.unit.fakes_inventory import FakeDirectory, FakeLedger, FakeSource

FAST = Retry(attempts=3, base=0.001, cap=0.001)


def catalogue() -> list[InventorySummary]:
    return [
        InventorySummary("EQUAL", 5),
        InventorySummary("HIGHER", 9),      # Amazon has more than the OMS
        InventorySummary("LOWER", 1),       # Amazon has less
        InventorySummary("NOMAP", 4),       # neither in the table nor a product
        InventorySummary("UNKNOWN", 3),     # mapped, but the OMS lacks the item at the location
        InventorySummary("NEGATIVE", -2),   # invalid quantity from Amazon
        InventorySummary("VIAPRODUCT", 6),  # mapped through Buy with Prime's products
    ]


def mapping() -> SkuMapping:
    return SkuMapping({"*": {"EQUAL": "I-EQ", "HIGHER": "I-HI", "LOWER": "I-LO", "UNKNOWN": "I-UNK",
                             "NEGATIVE": "I-NEG"}})


def stock() -> dict[str, int]:
    return {"I-EQ": 5, "I-HI": 2, "I-LO": 7, "I-NEG": 1, "P-VIA": 6}


@pytest.fixture
def store(sqlite_db: Database) -> InventoryStore:
    return InventoryStore(sqlite_db)


def make(store: InventoryStore, tmp_path: Path, *, source: FakeSource | None = None,
         ledgers: dict[str, FakeLedger] | None = None, parallel: int = 2) -> tuple[FullReconciliation, FakeSource,
                                                                                 dict[str, FakeLedger]]:
    source = source or FakeSource(catalogue(), page_size=3)
    ledgers = ledgers or {"sap": FakeLedger("sap", stock()), "netsuite": FakeLedger("netsuite", stock())}
    resolver = SkuResolver(mapping(), FakeDirectory([ProductRef("VIAPRODUCT", sku="P-VIA", inventory_item_id="ii-6")]),
                           retry=FAST)
    flow = FullReconciliation(source, ledgers, resolver, store, parallel=parallel, report_dir=tmp_path / "reports",
                              retry=FAST)
    return flow, source, ledgers


def test_full_reconciliation_adjusts_only_differences_and_reports_the_rest(store: InventoryStore,
                                                                          tmp_path: Path) -> None:
    flow, _, ledgers = make(store, tmp_path)
    seen: list[Progress] = []
    run = flow.run(progress=seen.append)
    assert run.status == DONE
    for ledger in ledgers.values():
        assert ledger.stock["I-HI"] == 9 and ledger.stock["I-LO"] == 1 and ledger.stock["I-EQ"] == 5
        assert sorted(ledger.adjusted_items()) == ["I-HI", "I-LO"]
        assert "I-UNK" not in ledger.stock and ledger.stock["I-NEG"] == 1
    c = run.counters
    assert (c.scanned, c.equal, c.differences, c.posted, c.unmapped, c.unknown, c.invalid, c.failed) == \
        (7, 4, 4, 4, 2, 2, 2, 0)  # scanned counts SKUs, the rest counts (OMS, SKU) pairs
    assert seen and seen[-1].scanned == 7 and seen[-1].posted == 4
    csv_path, json_path = report_paths(tmp_path / "reports", run.id)
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    by_key = {(r["oms"], r["seller_sku"]): r for r in rows}
    assert len(rows) == 10  # 5 non-equal SKUs × 2 OMSs
    higher = by_key[("sap", "HIGHER")]
    assert (higher["oms_item"], higher["amazon_quantity"], higher["oms_quantity"], higher["action"],
            higher["status"]) == ("I-HI", "9", "2", "increase", "posted")
    assert higher["document"] == ledgers["sap"].documents[0].id
    assert by_key[("netsuite", "LOWER")]["action"] == "decrease"
    assert by_key[("sap", "NOMAP")]["action"] == "unmapped" and "NOMAP" in by_key[("sap", "NOMAP")]["reason"]
    assert by_key[("sap", "UNKNOWN")]["action"] == "unknown"
    assert by_key[("sap", "NEGATIVE")]["action"] == "invalid"
    report = json.loads(json_path.read_text())
    assert report["run"] == run.id and len(report["rows"]) == 10 and report["counters"]["posted"] == 4
    again = flow.run()
    assert again.counters.posted == 0 and again.counters.differences == 0
    assert all(len(ledger.documents) == 1 for ledger in ledgers.values())  # one document per page and OMS


def test_one_oms_only(store: InventoryStore, tmp_path: Path) -> None:
    flow, _, ledgers = make(store, tmp_path)
    run = flow.run(["netsuite"])
    assert run.oms == ["netsuite"]
    assert ledgers["sap"].documents == [] and ledgers["netsuite"].documents


def test_a_killed_run_resumed_makes_no_double_adjustment(store: InventoryStore, tmp_path: Path) -> None:
    cat = [InventorySummary(f"S{i:03}", 10 + i) for i in range(30)]
    table = SkuMapping({"*": {f"S{i:03}": f"I{i:03}" for i in range(30)}})
    ledgers = {"sap": FakeLedger("sap", {f"I{i:03}": 0 for i in range(30)})}
    source = FakeSource(cat, page_size=4, stop_after_pages=4)
    flow = FullReconciliation(source, ledgers, SkuResolver(table, None), store, parallel=2,
                              report_dir=tmp_path, retry=FAST)
    with pytest.raises(KeyboardInterrupt):
        flow.run()
    killed = store.unfinished_run()
    assert killed is not None and killed.status == INTERRUPTED
    assert 0 < len(ledgers["sap"].adjusted_items()) < 30
    assert killed.cursor_position <= 16
    source.stop_after_pages = None
    resumed = flow.run(resume=True)
    assert resumed.id == killed.id and resumed.status == DONE
    items = ledgers["sap"].adjusted_items()
    assert sorted(items) == sorted(set(items)) and len(items) == 30
    assert all(ledgers["sap"].stock[f"I{i:03}"] == 10 + i for i in range(30))
    assert resumed.counters.scanned == 30 and resumed.counters.posted == 30
    with pytest.raises(NothingToResume):
        flow.run(resume=True)


def test_a_resumed_run_counts_each_sku_once_when_pages_are_scanned_twice(store: InventoryStore,
                                                                         tmp_path: Path) -> None:
    """SKUs that appear before the cursor while the run is down push already-scanned ones past it (the
    resume skips by position), so the resume scans those again. The counts come from one row per SKU
    and OMS; an in-memory counter carried over the kill counted them twice (28 scanned, 27 equal)."""
    cat = [InventorySummary(f"S{i:03}", 5) for i in range(24)]
    table = SkuMapping({"*": {f"{p}{i:03}": f"I-{p}{i:03}" for p in "SA" for i in range(24)}})
    held = {f"I-S{i:03}": 5 for i in range(24)} | {"I-S010": 0} | {f"I-A{i:03}": 5 for i in range(4)}
    ledgers = {"sap": FakeLedger("sap", held)}
    source = FakeSource(cat, page_size=2, stop_after_pages=8)
    flow = FullReconciliation(source, ledgers, SkuResolver(table, None), store, parallel=1,
                              report_dir=tmp_path, retry=FAST)
    with pytest.raises(KeyboardInterrupt):
        flow.run()
    killed = store.unfinished_run()
    assert killed is not None and killed.cursor_position >= 4  # with one worker, at most 2 pages in flight
    source.stop_after_pages = None
    source.catalogue = [InventorySummary(f"A{i:03}", 5) for i in range(4)] + cat  # 4 new SKUs in front
    done = flow.run(resume=True)
    c = done.counters
    # the 4 new SKUs sit in the skipped positions (the next run sees them); each of the 24 counts once
    assert (c.scanned, c.equal, c.differences, c.posted) == (24, 23, 1, 1)
    assert ledgers["sap"].adjusted_items() == ["I-S010"]
    assert [(r.seller_sku, r.action) for r in store.drift_rows(done.id)] == [("S010", "increase")]
    assert store.tally(done.id).equal == 0  # the equal rows served the count and are gone


def test_a_killed_run_rerun_from_scratch_makes_no_double_adjustment(store: InventoryStore, tmp_path: Path) -> None:
    flow, source, ledgers = make(store, tmp_path, source=FakeSource(catalogue(), page_size=2, stop_after_pages=2))
    with pytest.raises(KeyboardInterrupt):
        flow.run()
    source.stop_after_pages = None
    assert flow.run().status == DONE
    for ledger in ledgers.values():
        assert sorted(ledger.adjusted_items()) == ["I-HI", "I-LO"]


class LostResponseLedger(FakeLedger):
    """Posts the document, then the process dies before it learns the id (the worst moment)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.die = True

    def post_adjustments(self, adjustments: list, *, unposted: bool = False) -> str:  # type: ignore[override]
        document = super().post_adjustments(adjustments, unposted=unposted)
        if self.die:
            self.die = False
            raise KeyboardInterrupt("killed after the post")
        return document


def test_pending_rows_are_settled_on_resume_without_posting_twice(store: InventoryStore, tmp_path: Path) -> None:
    ledger = LostResponseLedger("sap", stock())
    flow, _, _ = make(store, tmp_path, ledgers={"sap": ledger}, parallel=1)
    with pytest.raises(KeyboardInterrupt):
        flow.run()
    run = store.unfinished_run()
    assert run is not None
    pending = store.pending(run.id)
    assert [row.seller_sku for row in pending] == ["HIGHER", "LOWER"]
    assert len(ledger.documents) == 1
    done = flow.run(resume=True)
    assert done.status == DONE and store.pending(run.id) == []
    assert len(ledger.documents) == 1 and sorted(ledger.adjusted_items()) == ["I-HI", "I-LO"]
    rows = {r.seller_sku: r for r in store.drift_rows(run.id)}
    assert rows["HIGHER"].status == "posted" and rows["HIGHER"].document == ledger.documents[0].id


class FlagLedger(FakeLedger):
    """Records the ``unposted`` promise of every call (FakeLedger fails the test when it is broken)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.flags: list[bool] = []

    def post_adjustments(self, adjustments: list, *, unposted: bool = False) -> str:  # type: ignore[override]
        self.flags.append(unposted)
        return super().post_adjustments(adjustments, unposted=unposted)


def test_new_rows_skip_the_lookup_but_retries_and_reprocessed_rows_do_not(store: InventoryStore,
                                                                          tmp_path: Path) -> None:
    ledger = FlagLedger("sap", stock(), transient_failures=1)
    flow, _, _ = make(store, tmp_path, ledgers={"sap": ledger}, parallel=1)
    run = flow.run()
    assert run.status == DONE and ledger.flags == [True, False]  # the first attempt failed, the retry looks up
    # The same page of the same run again (a scan that restarted over a changed catalogue): the rows
    # exist, so the post looks up, and the OMS finds the references posted already.
    page = _Page(0, [InventorySummary("HIGHER", 9), InventorySummary("LOWER", 1)], 2, "LOWER", time.time())
    ledger.stock["I-HI"], ledger.stock["I-LO"] = Decimal(2), Decimal(7)
    flow.process_page(store.get_run(run.id), page)  # type: ignore[arg-type]
    assert ledger.flags[-1] is False and len(ledger.documents) == 1


def test_transient_failures_are_retried(store: InventoryStore, tmp_path: Path) -> None:
    source = FakeSource(catalogue(), page_size=2, fail_at_page=2)
    ledgers = {"sap": FakeLedger("sap", stock(), transient_failures=1)}
    flow, _, _ = make(store, tmp_path, source=source, ledgers=ledgers)
    run = flow.run()
    assert run.status == DONE and source.scans == 2
    assert run.counters.scanned == 7 and run.counters.failed == 0
    assert sorted(ledgers["sap"].adjusted_items()) == ["I-HI", "I-LO"]


def test_a_rejected_line_fails_alone(store: InventoryStore, tmp_path: Path) -> None:
    ledgers = {"sap": FakeLedger("sap", stock(), rejected_items={"I-HI"})}
    flow, _, _ = make(store, tmp_path, source=FakeSource(catalogue(), page_size=7), ledgers=ledgers)
    run = flow.run()
    assert run.status == DONE and run.counters.failed == 1 and run.counters.posted == 1
    rows = {r.seller_sku: r for r in store.drift_rows(run.id)}
    assert rows["HIGHER"].action == "failed" and "blocked" in (rows["HIGHER"].reason or "")
    assert rows["LOWER"].status == "posted"
    assert ledgers["sap"].stock["I-HI"] == 2


def test_a_newer_realtime_reading_is_not_overwritten(store: InventoryStore, tmp_path: Path) -> None:
    flow, _, ledgers = make(store, tmp_path, ledgers={"sap": FakeLedger("sap", stock())})
    store.save_readings([Reading("sap", "HIGHER", "I-HI", Decimal(2), time.time() + 3600, None, "event:x")])
    run = flow.run()
    assert run.counters.skipped == 1
    assert ledgers["sap"].adjusted_items() == ["I-LO"]


def test_only_one_reconciliation_at_a_time(store: InventoryStore, tmp_path: Path) -> None:
    assert store.acquire("someone-else", 60)
    flow, _, _ = make(store, tmp_path)
    with pytest.raises(ReconciliationBusy):
        flow.run()
    store.release("someone-else")
    assert flow.run().status == DONE


class SlowLedger(FakeLedger):
    def quantities(self, oms_items: list[str]) -> dict:  # type: ignore[override]
        time.sleep(0.01)
        return super().quantities(oms_items)


class CountingSource(FakeSource):
    """Records how far the scan ran ahead of the pages the OMS side finished."""

    def __init__(self, *args: object, ledger: FakeLedger, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ledger = ledger
        self.max_ahead = 0

    def scan(self):  # type: ignore[no-untyped-def]
        for page in super().scan():
            self.max_ahead = max(self.max_ahead, self.pages_served - len(self.ledger.reads))
            yield page


def test_pages_in_flight_and_parallel_writes_stay_bounded(store: InventoryStore, tmp_path: Path) -> None:
    n = 200
    ledger = SlowLedger("sap", {f"I{i}": 0 for i in range(n)})
    source = CountingSource([InventorySummary(f"S{i}", 1) for i in range(n)], page_size=5, ledger=ledger)
    flow = FullReconciliation(source, {"sap": ledger}, SkuResolver(SkuMapping({"*": {f"S{i}": f"I{i}"
                                                                                   for i in range(n)}}), None),
                              store, parallel=3, report_dir=tmp_path, retry=FAST)
    run = flow.run()
    assert run.counters.posted == n
    assert ledger.max_active <= 3
    assert source.max_ahead <= 2 * 3 + 1


# -- real time ------------------------------------------------------------------------------------------

def event(item: str = "ii-6", at: datetime | None = None, event_id: str = "ev-1", data: dict | None = None):
    at = at or datetime.now(UTC)
    return event_from_json({"eventId": event_id, "eventDescriptor": "INVENTORY_CHANGED",
                            "resources": [f"businessProduct/bp-1/inventory-item/{item}"],
                            "eventTime": at.isoformat(), "data": data or {}})


def realtime(store: InventoryStore, source: FakeSource, ledgers: dict[str, FakeLedger]) -> InventoryRealtime:
    directory = FakeDirectory([ProductRef("VIAPRODUCT", sku="P-VIA", inventory_item_id="ii-6"),
                               ProductRef("NOMAP", sku=None, inventory_item_id="ii-4")])
    return InventoryRealtime(source, ledgers, SkuResolver(mapping(), directory), store)


def test_inventory_changed_sets_the_oms_quantity(store: InventoryStore) -> None:
    source = FakeSource(catalogue())
    ledgers = {"sap": FakeLedger("sap", stock()), "netsuite": FakeLedger("netsuite", stock())}
    flow = realtime(store, source, ledgers)
    source.set("VIAPRODUCT", 11)
    changed = event()
    outcome = flow.handle_event(changed)
    assert source.targeted == [["VIAPRODUCT"]]
    assert "6 → 11" in outcome
    assert ledgers["sap"].stock["P-VIA"] == 11 and ledgers["netsuite"].stock["P-VIA"] == 11
    # the same event again (a redelivery after a lost acknowledgement) changes nothing
    again = flow.handle_event(changed)
    assert "stale" in again and len(ledgers["sap"].documents) == 1 and len(source.targeted) == 1


def test_a_stale_event_changes_nothing(store: InventoryStore) -> None:
    source = FakeSource(catalogue())
    ledgers = {"sap": FakeLedger("sap", stock())}
    flow = realtime(store, source, ledgers)
    source.set("VIAPRODUCT", 8)
    flow.handle_event(event(event_id="new"))
    source.set("VIAPRODUCT", 3)
    outcome = flow.handle_event(event(at=datetime.now(UTC) - timedelta(minutes=5), event_id="old"))
    assert "stale" in outcome
    assert ledgers["sap"].stock["P-VIA"] == 8 and len(ledgers["sap"].documents) == 1


def test_an_older_amazon_reading_does_not_regress(store: InventoryStore) -> None:
    now = datetime.now(UTC)
    source = FakeSource([InventorySummary("VIAPRODUCT", 9, last_updated=now)])
    ledgers = {"sap": FakeLedger("sap", stock())}
    flow = realtime(store, source, ledgers)
    flow.handle_event(event(event_id="a"))
    source.set("VIAPRODUCT", 2, last_updated=now - timedelta(minutes=1))  # a lagging replica answers
    outcome = flow.handle_event(event(event_id="b"))
    assert "older than applied" in outcome and ledgers["sap"].stock["P-VIA"] == 9


def test_realtime_problems_are_rejected_with_a_reason(store: InventoryStore) -> None:
    source = FakeSource(catalogue())
    flow = realtime(store, source, {"sap": FakeLedger("sap", stock())})
    with pytest.raises(Rejected, match="ii-99"):
        flow.handle_event(event(item="ii-99"))
    with pytest.raises(Rejected, match="NOMAP"):
        flow.handle_event(event(item="ii-4"))
    with pytest.raises(Rejected, match=r"invalid|whole number"):
        flow.sync_sku("NEGATIVE")
    with pytest.raises(Rejected, match="no inventory summary"):
        flow.sync_sku("NOT-AT-AMAZON")
    no_item = event_from_json({"eventId": "e", "eventDescriptor": "INVENTORY_CHANGED",
                               "resources": ["businessProduct/bp-1/order/O-1"]})
    with pytest.raises(Rejected, match="names no inventory item"):
        flow.handle_event(no_item)


def test_a_sku_in_the_event_saves_the_lookup_and_transient_errors_propagate(store: InventoryStore) -> None:
    source = FakeSource(catalogue())
    ledgers = {"sap": FakeLedger("sap", stock(), transient_failures=1)}
    flow = realtime(store, source, ledgers)
    data = {"inventoryItem": {"product": {"amazonSku": {"value": "HIGHER"}}}}
    with pytest.raises(TransientError):
        flow.handle_event(event(item="unknown", data=data))
    assert "2 → 9" in flow.handle_event(event(item="unknown", data=data))
    assert ledgers["sap"].stock["I-HI"] == 9


def test_realtime_and_a_running_scan_do_not_undo_each_other(store: InventoryStore, tmp_path: Path) -> None:
    """A scan page read before a real-time update must not put the older quantity back."""
    source = FakeSource(catalogue(), page_size=7)
    ledgers = {"sap": FakeLedger("sap", stock())}
    rt = realtime(store, source, ledgers)
    flow, _, _ = make(store, tmp_path, source=source, ledgers=ledgers)
    original_scan = source.scan
    started = threading.Event()

    def scan_then_update():  # type: ignore[no-untyped-def]
        for page in original_scan():
            started.set()
            source.set("HIGHER", 20)
            rt.sync_sku("HIGHER")  # the real-time update lands after the page was read
            yield page

    source.scan = scan_then_update  # type: ignore[method-assign]
    flow.run()
    assert ledgers["sap"].stock["I-HI"] == 20


# -- regressions found by QA -----------------------------------------------------------------------

class _UnreadableLedger(FakeLedger):
    def quantities(self, oms_items: list[str]) -> dict[str, Decimal | None]:
        raise PermanentError("NetSuite answered 401")


def test_an_unreadable_oms_fails_only_the_skus_that_needed_its_stock(store: InventoryStore, tmp_path: Path) -> None:
    """Unmapped and invalid SKUs keep their own reason: marking them 'failed: reading stock failed' sent
    an operator to the OMS for what is a mapping or Amazon problem."""
    ledgers = {"netsuite": _UnreadableLedger("netsuite", stock())}
    flow, _, _ = make(store, tmp_path, source=FakeSource(catalogue(), page_size=7), ledgers=ledgers)
    run = flow.run()
    rows = {r.seller_sku: r for r in store.drift_rows(run.id)}
    assert rows["NOMAP"].action == "unmapped" and rows["NEGATIVE"].action == "invalid"
    for sku in ("EQUAL", "HIGHER", "LOWER", "UNKNOWN", "VIAPRODUCT"):
        assert rows[sku].action == "failed" and "401" in (rows[sku].reason or ""), sku
    assert run.counters.failed == 5 and run.counters.unmapped == 1 and run.counters.invalid == 1
    assert ledgers["netsuite"].documents == []


class _TwoDocumentLedger(FakeLedger):
    """SAP's way: increases and decreases of one call in separate documents."""

    def post_adjustments(self, adjustments: list[StockAdjustment], *, unposted: bool = False) -> dict[str, str]:
        documents: dict[str, str] = {}
        for increase in (True, False):
            batch = [a for a in adjustments if (a.delta > 0) == increase]
            if batch:
                documents.update(super().post_adjustments(batch, unposted=unposted))
        return documents


def test_each_row_names_the_document_that_holds_its_adjustment(store: InventoryStore, tmp_path: Path) -> None:
    """One page, one call, two documents: the drift report names, per SKU, the one its item is in
    (it used to list both on every row), and the documents are counted once each."""
    ledger = _TwoDocumentLedger("sap", stock())
    flow, _, _ = make(store, tmp_path, source=FakeSource(catalogue(), page_size=7), ledgers={"sap": ledger})
    run = flow.run()
    assert run.counters.posted == 2 and run.counters.documents == 2
    increase, decrease = ledger.documents
    assert [line.oms_item for line in increase.lines] == ["I-HI"] and [line.oms_item for line in decrease.lines] == \
        ["I-LO"]
    rows = {r.seller_sku: r for r in store.drift_rows(run.id)}
    assert rows["HIGHER"].document == increase.id and rows["LOWER"].document == decrease.id
    readings = store.readings("sap", ["HIGHER", "LOWER"])
    assert readings["HIGHER"].document == increase.id and readings["LOWER"].document == decrease.id


class _SilentLedger(FakeLedger):
    """Posts, but leaves a reference out of its answer (a broken adapter)."""

    def post_adjustments(self, adjustments: list[StockAdjustment], *, unposted: bool = False) -> dict[str, str]:
        posted = super().post_adjustments(adjustments, unposted=unposted)
        return {ref: doc for ref, doc in posted.items() if ref != adjustments[0].reference}


def test_a_reference_the_ledger_does_not_answer_for_is_reported_failed(store: InventoryStore,
                                                                       tmp_path: Path) -> None:
    flow, _, _ = make(store, tmp_path, source=FakeSource(catalogue(), page_size=7),
                      ledgers={"sap": _SilentLedger("sap", stock())})
    run = flow.run()
    rows = {r.seller_sku: r for r in store.drift_rows(run.id) if r.action in ("increase", "decrease", "failed")}
    assert sorted((r.action, r.status) for r in rows.values()) == [("decrease", "posted"), ("failed", "failed")]
    failed = rows["HIGHER"]  # the page's first adjustment, the one left out
    assert failed.action == "failed" and failed.document is None and "returned no document" in (failed.reason or "")
    assert run.counters.posted == 1 and run.counters.failed == 1


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombie detection reads /proc (Linux)")
def test_a_killed_holder_that_is_still_a_zombie_counts_as_dead() -> None:
    """A SIGKILLed run stays a zombie until its parent reaps it (seconds under some container inits);
    signal 0 still reaches a zombie, so --resume used to be refused as 'already running'."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(500):  # bounded wait for the child to exit (unreaped: a zombie)
            if Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                break
            time.sleep(0.01)
        assert _dead_here(f"{socket.gethostname()}:{child.pid}:abcd1234")
        assert not _dead_here(f"{socket.gethostname()}:{os.getpid()}:abcd1234")
    finally:
        child.wait()
