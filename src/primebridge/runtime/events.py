"""Buy with Prime event intake and dispatch: store, deduplicate, enqueue, record the outcome.

Dispatch contract (the flows that react to Amazon events depend on it):

- ``accept_event`` (one) / ``accept_events`` (a batch, used by ``EventWriter``, the web intake's
  group commit) store the raw body (``messages``, source ``amazon-event``, ``source_id``
  ``event:<eventId>``), the parsed event (``amazon_events``) and one job in ONE transaction,
  before the endpoint answers 2xx. A redelivery (same ``eventId``, else ``idempotencyKey``) finds
  the stored message and changes nothing.
- The job has kind ``amazon.event`` (``EVENT_JOB``), payload ``{"event_row_id": <amazon_events.id>}``
  and ordering key ``AmazonEvent.ordering_key``: ``amazon:order:<orderId>`` when a resource names
  an order (the events of one Amazon order run one at a time, in arrival order), else
  ``amazon:<first resource key>:<value>``, else ``amazon:event:<eventId>``.
- The job handler (``EventDispatcher``) re-parses the stored body and calls
  ``Service.event_handlers[event_type](event) -> outcome text``. Handlers are registered in
  ``entrypoints/bootstrap.py`` by the flows (PACKAGE_* → fulfillment updates, INVENTORY_CHANGED →
  inventory). Events are thin, so a handler reads the current state from the API and is idempotent.
- A handler raising ``Rejected`` parks the event (``rejected``); ``TransientError`` retries it with
  backoff; when retries run out or the error is permanent the job is dead-lettered, the event is
  marked ``dead`` and the notifier raises an alert (``runtime/notify.py``).
- An event type with no registered handler (unknown, or not handled by this release) is stored and
  marked ``ignored`` without a job; ``events replay`` runs it later, e.g. after an upgrade.

The event row's ``status`` is ``queued`` → ``done`` | ``ignored`` | ``rejected`` | ``dead``, with the
handler's outcome or the error in ``outcome``. Only the event's current job may write it, so an
old job finishing after a replay cannot overwrite the newer result.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from sqlalchemy.orm import Session

from primebridge.domain.errors import PermanentError, Rejected
from primebridge.domain.events import AmazonEvent, parse_event
from primebridge.runtime import context, jobs, wakeup
from primebridge.runtime.db import Database
from primebridge.runtime.jobs import ClaimedJob
from primebridge.runtime.tables import AmazonEventRow, Job, Message
from primebridge.runtime.wakeup import NOTIFY_CHANNEL

log = structlog.get_logger(__name__)

EVENT_JOB = "amazon.event"
SOURCE = "amazon-event"
ACCEPTED, DUPLICATE = "accepted", "duplicate"
QUEUED, DONE, IGNORED, REJECTED, DEAD = "queued", "done", "ignored", "rejected", "dead"

EventHandler = Callable[[AmazonEvent], str | None]


@dataclass(frozen=True, slots=True)
class EventReceipt:
    event_row_id: int
    status: str          # accepted | duplicate
    event_status: str    # queued | ignored | ... (the stored event's state)
    job_id: int | None


def source_id(event: AmazonEvent) -> str:
    return f"event:{event.dedupe_key}"


# -- storing a group of deliveries ------------------------------------------------------------------
#
# The intake's hot path talks to the driver (DBAPI) directly, with statements written once at import:
# per event it costs a tuple or a few array entries, where the ORM (or Core's per-row parameter
# processing and RETURNING) cost more than the database in the benchmark.

_MESSAGE_COLUMNS = "id, source, source_id, kind, payload, status, received_at"
_EVENT_COLUMNS = ("id, message_id, event_id, event_type, envelope, order_id, ordering_key, event_time, "
                  "received_at, status, outcome, job_id, updated_at")
_JOB_COLUMNS = ("id, kind, ordering_key, payload, status, attempts, max_attempts, next_attempt_at, message_id, "
                "created_at, updated_at")


def _placeholders(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


_SQLITE_INSERT_MESSAGES = f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({_placeholders(_MESSAGE_COLUMNS)})"
_SQLITE_INSERT_EVENTS = f"INSERT INTO amazon_events ({_EVENT_COLUMNS}) VALUES ({_placeholders(_EVENT_COLUMNS)})"
_SQLITE_INSERT_JOBS = f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({_placeholders(_JOB_COLUMNS)})"
_SQLITE_LAST_IDS = ("SELECT (SELECT coalesce(max(id), 0) FROM messages),"
                    " (SELECT coalesce(max(id), 0) FROM amazon_events), (SELECT coalesce(max(id), 0) FROM jobs)")
_SQLITE_FIND = ("SELECT m.source_id, e.id, e.status, e.job_id FROM messages m"
                " JOIN amazon_events e ON e.message_id = m.id WHERE m.source = ? AND m.source_id IN ({marks})")
_SQLITE_CHUNK = 500   # bound parameters per lookup, well under SQLite's limit

# PostgreSQL: the whole group in one statement, run in autocommit (a statement is atomic: all of
# it or nothing), so one round trip instead of four (BEGIN, insert, NOTIFY, COMMIT). The batch
# travels as arrays (unnest), so the statement text never changes and psycopg prepares it once;
# the NOTIFY that wakes workers elsewhere is part of it and is sent on commit. ``ON CONFLICT DO
# NOTHING`` settles deliveries of the same event racing on another connection or host (it waits
# for the other transaction, then skips), so no unique-key error ever aborts the group. Event and
# job ids are drawn from their sequences before the inserts, which lets each row name the other
# (the event's ``job_id``, the job's payload) without a follow-up UPDATE. The arrays travel in
# binary (``%b``): in text format psycopg escapes every element with a regular expression (the
# JSON bodies are full of quotes), which cost the writer more than the rest of the statement.
_PG_STORE = """
WITH input AS (
    SELECT * FROM unnest(%(sid)b::text[], %(kind)b::text[], %(payload)b::text[], %(event_id)b::text[],
                         %(envelope)b::text[], %(order_id)b::text[], %(ordering_key)b::text[],
                         %(event_time)b::float8[], %(wanted)b::bool[], %(outcome)b::text[])
        WITH ORDINALITY AS t(sid, kind, payload, event_id, envelope, order_id, ordering_key, event_time, wanted,
                             outcome, ord)
), m AS (
    INSERT INTO messages (source, source_id, kind, payload, status, received_at)
    SELECT %(source)s, sid, kind, payload, %(accepted)s, %(now)s FROM input ORDER BY ord
    ON CONFLICT (source, source_id) DO NOTHING
    RETURNING id, source_id
), ids AS MATERIALIZED (
    SELECT s.*, nextval(%(event_seq)s::regclass) AS row_id,
           CASE WHEN s.wanted THEN nextval(%(job_seq)s::regclass) END AS job_id
    FROM (SELECT m.id AS message_id, input.* FROM m JOIN input ON input.sid = m.source_id ORDER BY input.ord) s
), e AS (
    INSERT INTO amazon_events (id, message_id, event_id, event_type, envelope, order_id, ordering_key, event_time,
                               received_at, status, outcome, job_id, updated_at)
    SELECT row_id, message_id, event_id, kind, envelope, order_id, ordering_key, event_time, %(now)s,
           CASE WHEN wanted THEN %(queued)s ELSE %(ignored)s END, outcome, job_id, %(now)s FROM ids
), j AS (
    INSERT INTO jobs (id, kind, ordering_key, payload, status, attempts, max_attempts, next_attempt_at, message_id,
                      created_at, updated_at)
    SELECT job_id, %(job_kind)s, ordering_key, '{"event_row_id":' || row_id || '}', %(job_queued)s, 0,
           %(max_attempts)s, %(now)s, message_id, %(now)s, %(now)s FROM ids WHERE wanted
), notified AS MATERIALIZED (
    SELECT pg_notify(%(channel)s, '') FROM (SELECT 1 FROM ids WHERE wanted LIMIT 1) AS enqueued
)
SELECT sid, row_id, job_id FROM ids LEFT JOIN notified ON true
"""
_PG_FIND = ("SELECT m.source_id, e.id, e.status, e.job_id FROM messages m JOIN amazon_events e ON e.message_id = m.id"
            " WHERE m.source = %s AND m.source_id = ANY(%s::text[])")
_PG_SEQUENCES = "SELECT pg_get_serial_sequence('amazon_events', 'id'), pg_get_serial_sequence('jobs', 'id')"


@dataclass(frozen=True, slots=True)
class _Fresh:
    sid: str
    event: AmazonEvent
    raw: str
    wanted: bool


def accept_event(db: Database, event: AmazonEvent, raw: str, *, handled: Callable[[str], bool],
                 max_attempts: int) -> EventReceipt:
    """Store the event and enqueue its job atomically; a duplicate is found, never stored twice."""
    return accept_events(db, [(event, raw)], handled=handled, max_attempts=max_attempts)[0]


def accept_events(db: Database, items: Sequence[tuple[AmazonEvent, str]], *, handled: Callable[[str], bool],
                  max_attempts: int) -> list[EventReceipt]:
    """``accept_event`` for a batch (the web intake's group commit): one transaction, all or nothing.

    Events already stored, and repeats within the batch, come back as duplicates; the first of
    repeated deliveries in one batch is the accepted one. Jobs are numbered in the batch's order, so
    the events of one order still run in arrival order.
    """
    now = time.time()
    sids = [source_id(event) for event, _ in items]
    unique: dict[str, _Fresh] = {}
    for sid, (event, raw) in zip(sids, items, strict=True):
        if sid not in unique:
            unique[sid] = _Fresh(sid, event, raw, handled(event.event_type))
    if db.is_postgres:
        receipts, enqueued = _store_postgres(db, list(unique.values()), now, max_attempts)
    else:
        with _SQLITE_WRITER, db.statements(durable=True) as connection:
            receipts, enqueued = _store_sqlite(connection.connection.driver_connection, list(unique.values()),
                                               now, max_attempts)
    if enqueued:
        wakeup.LOCAL.notify()   # after the commit: a worker of this process starts at once
    seen: set[str] = set()
    result = []
    for sid in sids:
        receipt = receipts[sid]
        if sid in seen and receipt.status == ACCEPTED:
            receipt = EventReceipt(receipt.event_row_id, DUPLICATE, receipt.event_status, receipt.job_id)
        seen.add(sid)
        result.append(receipt)
    return result


def _store_sqlite(driver: Any, batch: list[_Fresh], now: float,
                  max_attempts: int) -> tuple[dict[str, EventReceipt], bool]:
    """Look up, then insert what is new. Race-free: the transaction began with ``BEGIN IMMEDIATE``,
    so no other connection (or process) can write between the lookup and the inserts. Ids are the
    next ones after the current maximum, which is what SQLite itself would pick (the tables are not
    AUTOINCREMENT), given explicitly so the event and its job can name each other."""
    cursor = driver.cursor()
    try:
        receipts: dict[str, EventReceipt] = {}
        for start in range(0, len(batch), _SQLITE_CHUNK):
            chunk = [item.sid for item in batch[start:start + _SQLITE_CHUNK]]
            cursor.execute(_SQLITE_FIND.format(marks=", ".join("?" for _ in chunk)), [SOURCE, *chunk])
            for sid, row_id, status, job_id in cursor.fetchall():
                receipts[sid] = EventReceipt(row_id, DUPLICATE, status, job_id)
        fresh = [item for item in batch if item.sid not in receipts]
        if not fresh:
            return receipts, False
        last_message, last_event, last_job = cursor.execute(_SQLITE_LAST_IDS).fetchone()
        messages, rows, queued = [], [], []
        for item in fresh:
            event = item.event
            last_message += 1
            last_event += 1
            job_id = None
            if item.wanted:
                last_job += 1
                job_id = last_job
                queued.append((job_id, EVENT_JOB, event.ordering_key, f'{{"event_row_id":{last_event}}}', jobs.QUEUED,
                               0, max_attempts, now, last_message, now, now))
            messages.append((last_message, SOURCE, item.sid, event.event_type, item.raw, ACCEPTED, now))
            rows.append((last_event, last_message, event.event_id, event.event_type, event.envelope, event.order_id,
                         event.ordering_key, _timestamp(event), now, QUEUED if item.wanted else IGNORED,
                         None if item.wanted else _no_handler(event.event_type), job_id, now))
            receipts[item.sid] = EventReceipt(last_event, ACCEPTED, QUEUED if item.wanted else IGNORED, job_id)
        cursor.executemany(_SQLITE_INSERT_MESSAGES, messages)
        cursor.executemany(_SQLITE_INSERT_EVENTS, rows)
        if queued:
            cursor.executemany(_SQLITE_INSERT_JOBS, queued)
        return receipts, bool(queued)
    finally:
        cursor.close()


_pg_sequences: dict[str, tuple[str, str]] = {}


def _store_postgres(db: Database, batch: list[_Fresh], now: float,
                    max_attempts: int) -> tuple[dict[str, EventReceipt], bool]:
    raw = db.engine.raw_connection()
    driver = raw.driver_connection
    try:
        driver.autocommit = True
        try:
            return _store_postgres_on(db, driver, batch, now, max_attempts)
        finally:
            if not driver.closed:
                driver.autocommit = False
    except Exception:
        if driver.closed or getattr(driver, "broken", False):
            raw.invalidate()   # the pool must not hand this connection out again
        raise
    finally:
        raw.close()


def _store_postgres_on(db: Database, driver: Any, batch: list[_Fresh], now: float,
                       max_attempts: int) -> tuple[dict[str, EventReceipt], bool]:
    sequences = _pg_sequences.get(db.url)
    if sequences is None:
        sequences = _pg_sequences[db.url] = tuple(driver.execute(_PG_SEQUENCES).fetchone())
    events_ = [item.event for item in batch]
    stored = driver.execute(_PG_STORE, {
        "sid": [item.sid for item in batch], "kind": [e.event_type for e in events_],
        "payload": [item.raw for item in batch], "event_id": [e.event_id for e in events_],
        "envelope": [e.envelope for e in events_], "order_id": [e.order_id for e in events_],
        "ordering_key": [e.ordering_key for e in events_], "event_time": [_timestamp(e) for e in events_],
        "wanted": [item.wanted for item in batch],
        "outcome": [None if item.wanted else _no_handler(item.event.event_type) for item in batch],
        "source": SOURCE, "accepted": ACCEPTED, "now": now, "event_seq": sequences[0], "job_seq": sequences[1],
        "queued": QUEUED, "ignored": IGNORED, "job_kind": EVENT_JOB, "job_queued": jobs.QUEUED,
        "max_attempts": max_attempts, "channel": NOTIFY_CHANNEL}).fetchall()
    receipts = {sid: EventReceipt(row_id, ACCEPTED, QUEUED if job_id is not None else IGNORED, job_id)
                for sid, row_id, job_id in stored}
    enqueued = any(job_id is not None for _, _, job_id in stored)
    missing = [item.sid for item in batch if item.sid not in receipts]
    if missing:
        # Stored before (committed: ON CONFLICT waited for any transaction still writing it).
        for sid, row_id, status, job_id in driver.execute(_PG_FIND, (SOURCE, missing)).fetchall():
            receipts[sid] = EventReceipt(row_id, DUPLICATE, status, job_id)
        if any(sid not in receipts for sid in missing):
            raise LookupError("an event reported as stored before was not found; deliver it again")
    return receipts, enqueued


def _timestamp(event: AmazonEvent) -> float | None:
    return event.event_time.timestamp() if event.event_time else None


_StoreCallback = Callable[[EventReceipt | BaseException], None]


class EventWriter:
    """Stores deliveries from many concurrent requests in shared transactions (group commit).

    A request hands its parsed event to this writer thread and awaits its receipt, which is set
    only after the transaction holding it committed, so "stored before acknowledged" holds for
    every event. Whatever queued up while one transaction ran goes into the next, so the batch
    grows with the load by itself: under light load a batch is one event (no added latency, no
    waiting for company); under heavy load the per-event cost falls to a share of a few
    statements. Receipts go back to the event loop in one call per batch (one wake-up of the loop,
    not one per request). One thread, also on PostgreSQL: group commits running side by side could
    commit a later job id of an order before an earlier one, and a worker could then run the later
    event first (the queue's per-order ordering trusts that ids commit in order).

    A batch that fails for a reason other than the store being unavailable (a constraint one event
    violates, say) is written again one event at a time, so one bad event cannot fail its
    batch-mates; when the store is unavailable every event of the batch gets the error (nothing of
    the transaction was kept) and the endpoint answers 503, which makes the sender deliver again.
    """

    def __init__(self, db: Database, *, handled: Callable[[str], bool], max_attempts: int,
                 max_batch: int = 500) -> None:
        self.db = db
        self.handled = handled
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[list[tuple[AmazonEvent, str, _Waiter]] | None] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[AmazonEvent, str, _Waiter]]] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0          # counters for tests and diagnostics
        self.largest_batch = 0

    async def store(self, event: AmazonEvent, raw: str) -> EventReceipt:
        """Store one delivery in the next group commit; returns once that transaction committed.

        The loop hands what its requests stored in one pass to the writer in one go (one queue put
        and at most one thread wake-up per pass, not per request).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[EventReceipt] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append((event, raw, _Waiter(loop, waiter, None)))
        return await waiter

    def submit(self, event: AmazonEvent, raw: str) -> Future[EventReceipt]:
        """``store`` for a caller without an event loop (threads, tests)."""
        future: Future[EventReceipt] = Future()
        self._put([(event, raw, _Waiter(None, None, future))])
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._put(self._pending.pop(loop))

    def _put(self, items: list[tuple[AmazonEvent, str, _Waiter]]) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
                    self._thread.start()
        self._queue.put(items)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            self._settle(batch, self._write(batch))
            if stop:
                return

    def _write(self, batch: list[tuple[AmazonEvent, str, _Waiter]]) -> list[EventReceipt | BaseException]:
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        try:
            return list(accept_events(self.db, [(event, raw) for event, raw, _ in batch], handled=self.handled,
                                      max_attempts=self.max_attempts))
        except Exception as exc:
            if len(batch) == 1 or store_unavailable(self.db, exc):
                log.warning("amazon_event.group_commit_failed", events=len(batch),
                            error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                return [exc] * len(batch)
        results: list[EventReceipt | BaseException] = []
        for event, raw, _ in batch:
            try:
                results.append(accept_event(self.db, event, raw, handled=self.handled,
                                            max_attempts=self.max_attempts))
            except Exception as single:
                results.append(single)
        return results

    @staticmethod
    def _settle(batch: list[tuple[AmazonEvent, str, _Waiter]], results: list[EventReceipt | BaseException]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[EventReceipt], object]]] = {}
        for (_, _, waiter), result in zip(batch, results, strict=True):
            if waiter.loop is not None and waiter.waiter is not None:
                by_loop.setdefault(waiter.loop, []).append((waiter.waiter, result))
            elif waiter.future is not None:
                if isinstance(result, BaseException):
                    waiter.future.set_exception(result)
                else:
                    waiter.future.set_result(result)
        for loop, settled in by_loop.items():
            with suppress(RuntimeError):   # the loop closed meanwhile: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, settled)


@dataclass(frozen=True, slots=True)
class _Waiter:
    loop: asyncio.AbstractEventLoop | None
    waiter: asyncio.Future[EventReceipt] | None
    future: Future[EventReceipt] | None


def _resolve(settled: list[tuple[asyncio.Future[EventReceipt], object]]) -> None:
    for waiter, result in settled:
        if waiter.done():   # the request was cancelled (client went away); the event is stored anyway
            continue
        if isinstance(result, BaseException):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)  # type: ignore[arg-type]


def store_unavailable(db: Database, exc: BaseException) -> bool:
    """The store could not take the write now (down, locked, deadlock, pool exhausted): the sender
    should deliver again later. The intake writes through the driver, so its own errors count too."""
    if isinstance(exc, OperationalError | TimeoutError | SqlTimeoutError):
        return True
    driver_error = getattr(db.engine.dialect.loaded_dbapi, "OperationalError", None)
    return driver_error is not None and isinstance(exc, driver_error)


# SQLite takes one writer at a time; writers of this process queue on a lock instead of in
# SQLite's busy handler, which sleeps in steps of up to 100 ms and made the p99 latency seconds
# under concurrent deliveries. PostgreSQL writes concurrently.
_SQLITE_WRITER = threading.Lock()


def _enqueue(session: Session, row_id: int, ordering_key: str, max_attempts: int, message_id: int) -> int:
    job_id = jobs.enqueue(session, EVENT_JOB, {"event_row_id": row_id}, ordering_key=ordering_key,
                          max_attempts=max_attempts, message_id=message_id)
    assert job_id is not None
    session.execute(update(AmazonEventRow).where(AmazonEventRow.id == row_id).values(job_id=job_id))
    return job_id


def _no_handler(event_type: str) -> str:
    return f"ignored: no handler for {event_type} in this primebridge"


class EventDispatcher:
    """The ``amazon.event`` job handler, and the dead-letter hook that marks events ``dead``."""

    def __init__(self, db: Database, handlers: Mapping[str, EventHandler]) -> None:
        self.db = db
        self.handlers = handlers  # the live registry: flows may register after construction

    def __call__(self, job: ClaimedJob) -> str:
        row_id = int(job.payload["event_row_id"])
        with self.db.transaction() as session:
            found = session.execute(
                select(AmazonEventRow.event_type, Message.payload)
                .join(Message, Message.id == AmazonEventRow.message_id)
                .where(AmazonEventRow.id == row_id)).one_or_none()
        if found is None:
            raise PermanentError(f"Amazon event row {row_id} does not exist")
        event = parse_event(found.payload)
        handler = self.handlers.get(event.event_type)
        if handler is None:
            outcome = _no_handler(event.event_type)
            self._record(row_id, job.id, IGNORED, outcome)
            return outcome
        with context.correlated(amazon_order_id=event.order_id):
            try:
                outcome = handler(event) or "done"
            except Rejected as exc:
                self._record(row_id, job.id, REJECTED, exc.reason)
                raise
        self._record(row_id, job.id, DONE, outcome)
        return outcome

    def dead_lettered(self, job: ClaimedJob, error: str) -> None:
        if job.kind == EVENT_JOB and "event_row_id" in job.payload:
            self._record(int(job.payload["event_row_id"]), job.id, DEAD, error)

    def _record(self, row_id: int, job_id: int, status: str, outcome: str) -> None:
        with self.db.statements() as connection:
            connection.execute(update(AmazonEventRow).where(
                AmazonEventRow.id == row_id, AmazonEventRow.job_id == job_id,
            ).values(status=status, outcome=outcome[:4000], updated_at=time.time()))


# -- operators: list and replay -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventView:
    id: int
    event_id: str
    event_type: str
    envelope: str
    order_id: str | None
    event_time: float | None
    received_at: float
    status: str
    outcome: str | None
    job_id: int | None
    attempts: int | None
    last_error: str | None
    resources: list[str]


def list_events(db: Database, *, since: float | None = None, status: str | None = None,
                event_type: str | None = None, order_id: str | None = None, limit: int = 100) -> list[EventView]:
    """Newest first, with the job's attempts and last error next to the outcome."""
    query = (select(AmazonEventRow, Message.payload, Job.attempts, Job.last_error)
             .join(Message, Message.id == AmazonEventRow.message_id)
             .outerjoin(Job, Job.id == AmazonEventRow.job_id)
             .order_by(AmazonEventRow.id.desc()).limit(limit))
    if since is not None:
        query = query.where(AmazonEventRow.received_at >= since)
    if status:
        query = query.where(AmazonEventRow.status == status)
    if event_type:
        query = query.where(AmazonEventRow.event_type == event_type)
    if order_id:
        query = query.where(AmazonEventRow.order_id == order_id)
    with db.transaction() as session:
        rows = session.execute(query).all()
    return [EventView(id=r.id, event_id=r.event_id, event_type=r.event_type, envelope=r.envelope,
                      order_id=r.order_id, event_time=r.event_time, received_at=r.received_at,
                      status=r.status, outcome=r.outcome, job_id=r.job_id, attempts=attempts,
                      last_error=last_error, resources=_resources(payload))
            for r, payload, attempts, last_error in rows]


def _resources(payload: str) -> list[str]:
    try:
        return [r.path for r in parse_event(payload).resources]
    except Rejected:
        return []


def find_event_rows(db: Database, *, ids: Iterable[str] = (), since: float | None = None) -> list[int]:
    """Event rows by row id or by Amazon ``eventId`` (either may be given), or received since a time."""
    wanted = list(ids)
    numeric = [int(i) for i in wanted if i.isdigit()]
    query = select(AmazonEventRow.id).order_by(AmazonEventRow.id)
    with db.transaction() as session:
        found: set[int] = set()
        if wanted:
            found |= set(session.scalars(query.where(AmazonEventRow.event_id.in_(wanted))).all())
            if numeric:
                found |= set(session.scalars(query.where(AmazonEventRow.id.in_(numeric))).all())
        if since is not None:
            found |= set(session.scalars(query.where(AmazonEventRow.received_at >= since)).all())
    return sorted(found)


def replay(db: Database, row_ids: Iterable[int], *, max_attempts: int) -> dict[int, int | None]:
    """Process stored events again: one new job each (in id order, so per-order ordering holds).

    Returns event row id → new job id, or ``None`` when the event's job is still queued or running
    (it will process the event anyway). Handlers are idempotent, so replaying a done event is safe.
    """
    result: dict[int, int | None] = {}
    now = time.time()
    with db.transaction() as session:
        for row_id in sorted(set(row_ids)):
            row = session.get(AmazonEventRow, row_id)
            if row is None:
                raise LookupError(f"Amazon event {row_id} does not exist")
            if row.job_id is not None:
                job_status = session.scalar(select(Job.status).where(Job.id == row.job_id))
                if job_status in (jobs.QUEUED, jobs.RUNNING):
                    result[row_id] = None
                    continue
            result[row_id] = _enqueue(session, row.id, row.ordering_key, max_attempts, row.message_id)
            session.execute(update(AmazonEventRow).where(AmazonEventRow.id == row_id).values(
                status=QUEUED, outcome=None, updated_at=now))
    log.info("events.replayed", events=len(result), jobs=sum(1 for j in result.values() if j))
    return result


def event_json(view: EventView) -> dict[str, object]:
    return {"id": view.id, "event_id": view.event_id, "event_type": view.event_type,
            "envelope": view.envelope, "order_id": view.order_id, "event_time": view.event_time,
            "received_at": view.received_at, "status": view.status, "outcome": view.outcome,
            "job_id": view.job_id, "attempts": view.attempts, "last_error": view.last_error,
            "resources": view.resources}

