"""Full reconciliation: every Amazon inventory summary against the OMS's stock at the Amazon location.

How it stays fast, small and safe:

- **Streaming.** ``InventorySource.scan`` yields one page at a time. The scanning thread only fetches
  (the source paces itself to the SP-API rate limit); each page goes to a pool of ``parallel``
  workers that map its SKUs, read the OMS quantities of just those items and post one adjustment
  document per page and OMS. At most ``2 × parallel`` pages are in flight, so memory does not grow
  with the catalogue, and the scan is never held up by the OMS unless the OMS is slower than Amazon.
- **Only differences.** Equal items post nothing; every other item becomes a drift-report row. Equal
  ones are still noted in the store (a seen-row, not in the report, dropped when the run finishes), so
  the run's counts are per SKU and OMS even when a resume scans some pages twice.
- **Exactly once.** A row is written ``pending`` (with its reference) before its document is posted,
  and ``posted`` with the document after. References are unique per (run, OMS, SKU), and the OMS
  connector does not post a reference twice, so a retried post, a resumed run or a re-posted pending
  row cannot adjust twice. A rerun (a new run) re-reads the OMS stock, which already holds what an
  earlier run posted, so it finds nothing to do for those items.
- **Resumable.** The run's cursor (``cursor_position``, the number of summaries before it, and the
  SKU at it) advances only over pages whose rows are durable. ``--resume`` settles the pending rows,
  then rescans and skips what is before the cursor.
- **Newer readings win.** A real-time update applied after a page was fetched is not overwritten by
  that page's older reading.
- **One at a time.** A lease in the store keeps two reconciliations from reading the same OMS
  quantity and posting the same difference twice.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import structlog

from primebridge.domain.errors import PermanentError, PrimebridgeError, Rejected, TransientError
from primebridge.domain.inventory import DriftAction, InventorySummary, StockAdjustment
from primebridge.domain.inventory_rules import Decision, Mapped, compare, reject_shared, run_reference
from primebridge.flows.amazon_to_oms.inventory_mapping import Retry, SkuResolver
from primebridge.ports import InventoryLedger, InventorySource
from primebridge.runtime.inventory_store import (
    DONE,
    FAILED,
    INTERRUPTED,
    PENDING,
    POSTED,
    ROW_FAILED,
    RUNNING,
    Counters,
    DriftRow,
    InventoryStore,
    Reading,
    RunInfo,
)

log = structlog.get_logger(__name__)

REPORT_FIELDS = ("run", "oms", "seller_sku", "oms_item", "amazon_quantity", "oms_quantity", "action", "status",
                 "document", "reason")
_PENDING_FOR = {str(DriftAction.INCREASE): PENDING, str(DriftAction.DECREASE): PENDING}


class ReconciliationBusy(PrimebridgeError):
    """Another full reconciliation holds the lease."""


class NothingToResume(PrimebridgeError):
    """``--resume`` was asked for, but the newest run finished."""


@dataclass(frozen=True)
class Progress:
    run_id: int
    scanned: int
    differences: int
    posted: int
    documents: int
    problems: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.scanned / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class _Page:
    index: int
    summaries: list[InventorySummary]
    end_position: int
    last_sku: str | None
    fetched_at: float


@dataclass
class _Live:
    """Counters for the progress bar: they include pages not yet durable."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: Counters = field(default_factory=Counters)

    def add(self, delta: Counters) -> None:
        with self.lock:
            self.counters.add(delta)


class FullReconciliation:
    def __init__(self, source: InventorySource, ledgers: dict[str, InventoryLedger], resolver: SkuResolver,
                 store: InventoryStore, *, parallel: int = 4, report_dir: Path = Path("var/inventory"),
                 retry: Retry | None = None, lease_seconds: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.ledgers = ledgers
        self.resolver = resolver
        self.store = store
        self.parallel = max(1, parallel)
        self.report_dir = report_dir
        self.retry = retry or Retry()
        self.lease_seconds = lease_seconds
        self.clock = clock

    # -- entry point -----------------------------------------------------------------------------

    def run(self, oms: list[str] | None = None, *, resume: bool = False, trigger: str = "cli",
            progress: Callable[[Progress], None] | None = None,
            stop: threading.Event | None = None) -> RunInfo:
        """One full reconciliation (or the rest of an interrupted one); returns the finished run."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if not self.store.acquire(holder, self.lease_seconds):
            held_by, run_id, _ = self.store.lock_holder()
            if not (_dead_here(held_by) and self.store.take_over(held_by or "", holder, self.lease_seconds)):
                raise ReconciliationBusy(f"a full inventory reconciliation is already running (run {run_id}, "
                                         f"{held_by}); wait for it or let its lease expire")
        try:
            run = self._open(oms, resume=resume, trigger=trigger)
            self.store.renew(holder, self.lease_seconds, run.id)
            return _Execution(self, run, holder, progress, stop or threading.Event()).execute()
        finally:
            self.store.release(holder)

    def _open(self, oms: list[str] | None, *, resume: bool, trigger: str) -> RunInfo:
        if resume:
            unfinished = self.store.unfinished_run()
            if unfinished is None:
                raise NothingToResume("no interrupted inventory run to resume (the newest run finished); "
                                      "start a new one with inventory sync --full")
            missing = [name for name in unfinished.oms if name not in self.ledgers]
            if missing:
                raise PermanentError(f"run {unfinished.id} covers {', '.join(missing)}, which has no inventory "
                                     "ledger in this configuration")
            if oms and sorted(oms) != sorted(unfinished.oms):
                raise PermanentError(f"run {unfinished.id} covers {', '.join(unfinished.oms)}, not "
                                     f"{', '.join(oms)}; resume it as it was or start a new run")
            return self.store.resume_run(unfinished.id)
        names = list(oms) if oms else list(self.ledgers)
        unknown = [name for name in names if name not in self.ledgers]
        if unknown:
            raise PermanentError(f"no inventory ledger for {', '.join(unknown)} (enabled: "
                                 f"{', '.join(self.ledgers) or 'none'})")
        if not names:
            raise PermanentError("inventory sync has no OMS to reconcile (enable sap or netsuite and "
                                 "inventory.enabled)")
        return self.store.start_run(names, trigger)

    # -- one page, one OMS (runs in the pool) --------------------------------------------------------

    def process_page(self, run: RunInfo, page: _Page) -> Counters:
        delta = Counters(scanned=len(page.summaries), pages=1)
        if not page.summaries:
            return delta
        skus = [summary.seller_sku for summary in page.summaries]
        try:
            resolutions = self.resolver.resolve(run.oms, skus)
        except (TransientError, PermanentError, Rejected, httpx.HTTPError) as exc:
            for oms in run.oms:
                self._fail_all(run, oms, page.summaries, f"SKU mapping lookup failed: {_text(exc)}", delta)
            return delta
        for oms in run.oms:
            self._process_oms(run, oms, page, resolutions[oms], delta)
        return delta

    def _process_oms(self, run: RunInfo, oms: str, page: _Page, resolutions: dict, delta: Counters) -> None:
        ledger = self.ledgers[oms]
        items = sorted({r.oms_item for r in resolutions.values() if isinstance(r, Mapped)})
        quantities: dict[str, Decimal | None] = {}
        read_failed: str | None = None
        if items:
            try:
                quantities = self.retry.call(lambda: ledger.quantities(items), what=f"{oms} stock read")
            except (TransientError, PermanentError, Rejected, httpx.HTTPError) as exc:
                # Only the SKUs that needed the stock fail; unmapped and invalid ones keep their own reason,
                # so the report does not send an operator to the OMS for a mapping problem.
                read_failed = f"reading {oms} stock failed: {_text(exc)}"
                log.warning("inventory.page_failed", run=run.id, oms=oms, items=len(items), reason=read_failed)
        newer = self.store.readings(oms, [s for s, r in resolutions.items() if isinstance(r, Mapped)])
        decisions: list[Decision] = []
        skipped: list[str] = []
        for summary in page.summaries:
            resolution = resolutions[summary.seller_sku]
            reading = newer.get(summary.seller_sku)
            if reading is not None and reading.read_at > page.fetched_at:
                skipped.append(summary.seller_sku)  # a real-time update newer than this page was applied meanwhile
                continue
            quantity = quantities.get(resolution.oms_item) if isinstance(resolution, Mapped) else None
            decision = compare(summary, resolution, quantity, oms_known=quantity is not None,
                               reference=run_reference(run.id, oms, summary.seller_sku))
            if read_failed is not None and decision.action is DriftAction.UNKNOWN:
                decision = Decision(summary.seller_sku, DriftAction.FAILED, decision.oms_item,
                                    decision.amazon_quantity, reason=read_failed)
            decisions.append(decision)
        decisions = reject_shared(decisions)
        _count(decisions, delta)
        delta.skipped += len(skipped)
        # Equal and skipped SKUs are recorded too (as seen-rows, left out of the report), so the
        # run's final counts come from one row per SKU and OMS however often a page was scanned.
        created = self.store.record(run.id, oms, decisions, _PENDING_FOR, skipped=skipped)
        adjustments = [d.adjustment for d in decisions if d.adjustment is not None]
        if adjustments:
            unposted = all(a.seller_sku in created for a in adjustments)
            self._post(run.id, oms, adjustments, page.fetched_at, delta, unposted=unposted)

    def _post(self, run_id: int, oms: str, adjustments: list[StockAdjustment], read_at: float,
              delta: Counters, *, unposted: bool = False) -> None:
        """One document for the page; when the OMS rejects it, each line alone, so one bad item does
        not keep the others from being adjusted.

        ``unposted``: every row was created just now, so no reference can be in the OMS yet and the
        first attempt skips the OMS's lookup of earlier documents. A retry (the first attempt may
        have reached the OMS before it failed) and the line-by-line fallback look up as usual."""
        ledger = self.ledgers[oms]
        first = [unposted]

        def attempt() -> dict[str, str]:
            fresh, first[0] = first[0], False
            return ledger.post_adjustments(adjustments, unposted=fresh)

        try:
            posted = self.retry.call(attempt, what=f"{oms} adjustment")
        except (Rejected, PermanentError) as exc:
            if len(adjustments) > 1:
                for adjustment in adjustments:
                    self._post(run_id, oms, [adjustment], read_at, delta)
                return
            self._failed(run_id, oms, adjustments, f"{oms} rejected the adjustment: {_text(exc)}", delta)
            return
        except (TransientError, httpx.HTTPError) as exc:
            self._failed(run_id, oms, adjustments, f"{oms} adjustment failed after {self.retry.attempts} "
                         f"attempts: {_text(exc)}", delta)
            return
        missing = [a for a in adjustments if a.reference not in posted]
        if missing:  # a ledger that breaks the port's promise: say so rather than report a row without document
            self._failed(run_id, oms, missing, f"{oms} returned no document for the adjustment", delta)
            adjustments = [a for a in adjustments if a.reference in posted]
        documents = {a.seller_sku: posted[a.reference] for a in adjustments}
        self.store.settle(run_id, oms, list(documents), status=POSTED, documents=documents,
                          readings=[Reading(oms, a.seller_sku, a.oms_item, a.amazon_quantity, read_at, None,
                                            f"run:{run_id}", documents[a.seller_sku]) for a in adjustments])
        delta.posted += len(adjustments)
        delta.documents += len(set(documents.values()))

    def _failed(self, run_id: int, oms: str, adjustments: list[StockAdjustment], reason: str,
                delta: Counters) -> None:
        self.store.settle(run_id, oms, [a.seller_sku for a in adjustments], status=ROW_FAILED,
                          action=str(DriftAction.FAILED), reason=reason)
        delta.failed += len(adjustments)
        log.warning("inventory.adjustment_failed", run=run_id, oms=oms, items=len(adjustments), reason=reason)

    def _fail_all(self, run: RunInfo, oms: str, summaries: list[InventorySummary], reason: str,
                  delta: Counters) -> None:
        decisions = [Decision(s.seller_sku, DriftAction.FAILED, reason=reason) for s in summaries]
        self.store.record(run.id, oms, decisions, {})
        delta.failed += len(decisions)
        log.warning("inventory.page_failed", run=run.id, oms=oms, items=len(decisions), reason=reason)

    def settle_pending(self, run: RunInfo, delta: Counters) -> None:
        """Re-post what a killed run was about to post. The references are the same, so a document
        that did reach the OMS is found there and not posted again."""
        by_oms: dict[str, list[DriftRow]] = {}
        for row in self.store.pending(run.id):
            by_oms.setdefault(row.oms, []).append(row)
        for oms, rows in by_oms.items():
            adjustments = [StockAdjustment(seller_sku=r.seller_sku, oms_item=r.oms_item or "",
                                           amazon_quantity=Decimal(r.amazon_quantity or "0"),
                                           oms_quantity=Decimal(r.oms_quantity or "0"),
                                           reference=r.reference or run_reference(run.id, oms, r.seller_sku))
                           for r in rows]
            for start in range(0, len(adjustments), 50):
                self._post(run.id, oms, adjustments[start:start + 50], run.started_at, delta)


def shown_status(store: InventoryStore, run: RunInfo, *, now: float | None = None) -> str:
    """The status to show an operator. A process killed mid-run (SIGKILL, a crash, a lost host)
    cannot write ``interrupted`` itself, so its run stays ``running`` in the store until a resume; it
    is shown ``interrupted`` once the lease that a live run keeps renewing is gone: released, expired,
    held for another run, or held by a process of this host that no longer exists. The stored state
    is left alone (``--resume`` reads it as it is)."""
    if run.status != RUNNING:
        return run.status
    holder, lease_run, expires_at = store.lock_holder()
    alive = (holder is not None and expires_at > (time.time() if now is None else now)
             and lease_run in (None, run.id) and not _dead_here(holder))
    return RUNNING if alive else INTERRUPTED


def _dead_here(holder: str | None) -> bool:
    """True when the lease holder was a process on this host that no longer exists (killed): its
    run can be resumed at once instead of after the lease expires."""
    if not holder or holder.count(":") < 2:
        return False
    host, pid, _ = holder.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A killed process stays a zombie until its parent reaps it, and signal 0 still reaches it; a
    container's init may take seconds to reap, long enough to refuse the resume a user just asked for.
    Linux only (``/proc``); elsewhere a zombie counts as alive and its lease simply expires."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses, so split at the last ')'.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _count(decisions: list[Decision], delta: Counters) -> None:
    for d in decisions:
        if d.action is DriftAction.NONE:
            delta.equal += 1
        elif d.is_difference:
            delta.differences += 1
        elif d.action is DriftAction.UNMAPPED:
            delta.unmapped += 1
        elif d.action is DriftAction.UNKNOWN:
            delta.unknown += 1
        elif d.action is DriftAction.INVALID:
            delta.invalid += 1
        else:
            delta.failed += 1


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class _Execution:
    """The scanning loop of one run: fetch, dispatch, commit the cursor over finished pages."""

    def __init__(self, flow: FullReconciliation, run: RunInfo, holder: str,
                 progress: Callable[[Progress], None] | None, stop: threading.Event) -> None:
        self.flow = flow
        self.run = run
        self.holder = holder
        self.progress = progress
        self.stop = stop
        self.committed = run.counters
        self.live = _Live(counters=Counters(**run.counters.as_dict()))
        self.started = time.monotonic()
        self.done: dict[int, tuple[_Page, Counters]] = {}
        self.next_commit = 0
        self.last_renew = time.monotonic()

    def execute(self) -> RunInfo:
        flow, run = self.flow, self.run
        log.info("inventory.run_start", run=run.id, oms=run.oms, resume_from=run.cursor_position)
        try:
            settled = Counters()
            flow.settle_pending(run, settled)
            self.committed.add(Counters(posted=settled.posted, documents=settled.documents, failed=settled.failed))
            self.live.add(Counters(posted=settled.posted, documents=settled.documents, failed=settled.failed))
            self._scan()
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt) or self.stop.is_set()
            flow.store.finish_run(run.id, INTERRUPTED if interrupted else FAILED, self.committed, _text(exc))
            log.warning("inventory.run_stopped", run=run.id, error=_text(exc))
            raise
        if self.stop.is_set():
            flow.store.finish_run(run.id, INTERRUPTED, self.committed, "stopped")
            return flow.store.get_run(run.id) or run
        # Every count but ``pages`` from the rows: a SKU scanned twice (pages redone after a resume,
        # a catalogue that shifted under the cursor) counts once.
        tally = flow.store.tally(run.id)
        for name in ("scanned", "equal", "skipped", "differences", "posted", "documents", "unmapped", "unknown",
                     "invalid", "failed"):
            setattr(self.committed, name, getattr(tally, name))
        flow.store.finish_run(run.id, DONE, self.committed)
        write_reports(flow.store, run.id, flow.report_dir)
        log.info("inventory.run_done", run=run.id, **self.committed.as_dict())
        return flow.store.get_run(run.id) or run

    # -- scanning --------------------------------------------------------------------------------

    def _scan(self) -> None:
        flow = self.flow
        skip_until, skip_sku = self.run.cursor_position, self.run.cursor_sku
        dispatched, last_sku, restarts, index = 0, None, 0, 0
        inflight: set[Future[Counters]] = set()
        futures: dict[Future[Counters], _Page] = {}
        with ThreadPoolExecutor(max_workers=flow.parallel, thread_name_prefix="inventory") as pool:
            try:
                while True:
                    try:
                        for page in self._pages(skip_until, skip_sku, dispatched, last_sku):
                            if self.stop.is_set():
                                return
                            page.index = index
                            index += 1
                            dispatched, last_sku = page.end_position, page.last_sku
                            while len(inflight) >= 2 * flow.parallel:
                                inflight = self._harvest(inflight, futures, FIRST_COMPLETED)
                            future = pool.submit(flow.process_page, self.run, page)
                            futures[future] = page
                            inflight.add(future)
                        break
                    except (TransientError, httpx.TransportError) as exc:
                        restarts += 1
                        if restarts >= flow.retry.attempts:
                            raise
                        log.info("inventory.scan_restart", run=self.run.id, at=dispatched, error=_text(exc))
                        time.sleep(min(flow.retry.cap, flow.retry.base * 2 ** restarts))
                        # Start over and skip what was already handed to the pool.
                        skip_until, skip_sku = dispatched, last_sku
                while inflight:
                    inflight = self._harvest(inflight, futures, FIRST_COMPLETED)
            finally:
                if self.stop.is_set():
                    for future in inflight:
                        future.cancel()

    def _pages(self, skip_until: int, skip_sku: str | None, dispatched: int,
               last_sku: str | None) -> Iterator[_Page]:
        """The source's pages with positions, minus the summaries before the resume point.

        The point is a position *and* the SKU found there: when the catalogue lost items before it,
        the SKU shows up early and skipping stops there instead of passing over unscanned items.
        """
        position = 0
        skipping = skip_until > 0
        scan = iter(self.flow.source.scan())
        while True:
            fetched_at = self.flow.clock()
            try:
                summaries = next(scan)
            except StopIteration:
                return
            kept = []
            for summary in summaries:
                if skipping:
                    if position < skip_until:
                        position += 1
                        if summary.seller_sku == skip_sku:
                            skipping = False
                        continue
                    skipping = False
                kept.append(summary)
                position += 1
            if not kept and skipping:
                continue
            yield _Page(0, kept, max(position, dispatched), kept[-1].seller_sku if kept else last_sku, fetched_at)

    def _harvest(self, inflight: set[Future[Counters]], futures: dict[Future[Counters], _Page],
                 when: str) -> set[Future[Counters]]:
        finished, rest = wait(inflight, timeout=1.0, return_when=when)
        for future in finished:
            page = futures.pop(future)
            delta = future.result()  # an exception here is a bug or a store failure: the run stops
            self.done[page.index] = (page, delta)
            self.live.add(delta)
        self._commit()
        self._report_progress()
        return set(rest)

    def _commit(self) -> None:
        advanced = None
        while self.next_commit in self.done:
            page, delta = self.done.pop(self.next_commit)
            self.committed.add(delta)
            self.next_commit += 1
            advanced = page
        store = self.flow.store
        if advanced is not None:
            store.advance(self.run.id, advanced.end_position, advanced.last_sku, self.committed)
        if time.monotonic() - self.last_renew > self.flow.lease_seconds / 4:
            if not store.renew(self.holder, self.flow.lease_seconds, self.run.id):
                raise PermanentError("lost the inventory reconciliation lease (the run stalled longer than "
                                     f"{self.flow.lease_seconds:.0f} s); resume it with --resume")
            self.last_renew = time.monotonic()

    def _report_progress(self) -> None:
        if self.progress is None:
            return
        with self.live.lock:
            c = Counters(**self.live.counters.as_dict())
        self.progress(Progress(run_id=self.run.id, scanned=c.scanned, differences=c.differences, posted=c.posted,
                               documents=c.documents, problems=c.unmapped + c.unknown + c.invalid + c.failed,
                               elapsed=time.monotonic() - self.started))


# -- reports --------------------------------------------------------------------------------------

def report_paths(report_dir: Path, run_id: int) -> tuple[Path, Path]:
    return report_dir / f"inventory-run-{run_id}.csv", report_dir / f"inventory-run-{run_id}.json"


def _row_dict(row: DriftRow) -> dict[str, str]:
    return {"run": str(row.run_id), "oms": row.oms, "seller_sku": row.seller_sku, "oms_item": row.oms_item or "",
            "amazon_quantity": row.amazon_quantity or "", "oms_quantity": row.oms_quantity or "",
            "action": row.action, "status": row.status, "document": row.document or "", "reason": row.reason or ""}


def write_reports(store: InventoryStore, run_id: int, report_dir: Path) -> tuple[Path, Path]:
    """The run's drift report as CSV and JSON, streamed from the store (written to a temporary name
    and renamed, so a reader never sees half a report)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = report_paths(report_dir, run_id)
    run = store.get_run(run_id)
    csv_tmp, json_tmp = csv_path.with_suffix(".csv.tmp"), json_path.with_suffix(".json.tmp")
    with csv_tmp.open("w", newline="", encoding="utf-8") as csv_fh, json_tmp.open("w", encoding="utf-8") as json_fh:
        writer = csv.DictWriter(csv_fh, fieldnames=REPORT_FIELDS)
        writer.writeheader()
        head = {"run": run_id, "oms": run.oms if run else [], "trigger": run.trigger if run else None,
                "started_at": run.started_at if run else None,
                "counters": run.counters.as_dict() if run else {}}
        json_fh.write(json.dumps(head)[:-1] + ', "rows": [')
        first = True
        for row in store.drift_rows(run_id):
            data = _row_dict(row)
            writer.writerow(data)
            json_fh.write(("\n  " if first else ",\n  ") + json.dumps(data))
            first = False
        json_fh.write("\n]}\n")
    csv_tmp.replace(csv_path)
    json_tmp.replace(json_path)
    return csv_path, json_path


def iter_report(store: InventoryStore, run_id: int) -> Iterator[dict[str, str]]:
    for row in store.drift_rows(run_id):
        yield _row_dict(row)

