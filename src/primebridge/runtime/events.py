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

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import structlog
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from primebridge.domain.errors import PermanentError, Rejected
from primebridge.domain.events import AmazonEvent, parse_event
from primebridge.runtime import context, jobs
from primebridge.runtime.db import Database
from primebridge.runtime.jobs import ClaimedJob
from primebridge.runtime.tables import AmazonEventRow, Job, Message

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


_MESSAGES, _EVENTS = Message.__table__, AmazonEventRow.__table__
# Table-level statements built once: the intake's hot path skips the ORM's unit of work and reuses
# the compiled SQL (the ORM path cost more than the database in the benchmark).
_INSERT_MESSAGE = {
    name: dialect.insert(_MESSAGES).on_conflict_do_nothing(index_elements=["source", "source_id"])
    .returning(_MESSAGES.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_INSERT_EVENT = insert(_EVENTS).returning(_EVENTS.c.id)
_SET_JOB = update(_EVENTS).where(_EVENTS.c.id == bindparam("row_id")).values(job_id=bindparam("job_id"))
_INSERT_MESSAGES = insert(_MESSAGES).returning(_MESSAGES.c.id, sort_by_parameter_order=True)
_INSERT_EVENTS = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)
_FIND_STORED = (select(_MESSAGES.c.source_id, _EVENTS.c.id, _EVENTS.c.status, _EVENTS.c.job_id)
                .join(_EVENTS, _EVENTS.c.message_id == _MESSAGES.c.id)
                .where(_MESSAGES.c.source == bindparam("source"),
                       _MESSAGES.c.source_id.in_(bindparam("sids", expanding=True))))


def accept_event(db: Database, event: AmazonEvent, raw: str, *, handled: Callable[[str], bool],
                 max_attempts: int) -> EventReceipt:
    """Store the event and enqueue its job atomically; a duplicate is found, never stored twice.

    ``INSERT … ON CONFLICT DO NOTHING`` on ``(source, source_id)`` settles concurrent deliveries of
    one event without an exception (which would abort a PostgreSQL transaction).
    """
    now = time.time()
    sid = source_id(event)
    with _writer(db), db.transaction() as session:
        connection = session.connection()
        message_id = connection.execute(_INSERT_MESSAGE[db.dialect], {
            "source": SOURCE, "source_id": sid, "kind": event.event_type, "payload": raw, "status": ACCEPTED,
            "received_at": now}).scalar()
        if message_id is None:
            return _duplicate(session, sid)
        wanted = handled(event.event_type)
        row_id = connection.execute(_INSERT_EVENT, {
            "message_id": message_id, "event_id": event.event_id, "event_type": event.event_type,
            "envelope": event.envelope, "order_id": event.order_id, "ordering_key": event.ordering_key,
            "event_time": event.event_time.timestamp() if event.event_time else None, "received_at": now,
            "status": QUEUED if wanted else IGNORED,
            "outcome": None if wanted else _no_handler(event.event_type), "updated_at": now}).scalar_one()
        job_id = None
        if wanted:
            job_id = _enqueue(session, row_id, event.ordering_key, max_attempts, message_id)
        return EventReceipt(row_id, ACCEPTED, QUEUED if wanted else IGNORED, job_id)


def accept_events(db: Database, items: Sequence[tuple[AmazonEvent, str]], *, handled: Callable[[str], bool],
                  max_attempts: int) -> list[EventReceipt]:
    """``accept_event`` for a batch in one transaction, with one statement per table (group commit).

    Events already stored, and repeats within the batch, come back as duplicates. A concurrent
    writer storing one of the events first (another web host on PostgreSQL) fails the insert on the
    unique key and rolls the batch back; ``EventWriter`` then stores the batch one by one.
    """
    now = time.time()
    sids = [source_id(event) for event, _ in items]
    receipts: dict[str, EventReceipt] = {}
    with _writer(db), db.transaction() as session:
        connection = session.connection()
        for row in connection.execute(_FIND_STORED, {"source": SOURCE, "sids": sorted(set(sids))}):
            receipts[row.source_id] = EventReceipt(row.id, DUPLICATE, row.status, row.job_id)
        fresh: dict[str, tuple[AmazonEvent, str]] = {}
        for sid, item in zip(sids, items, strict=True):
            if sid not in receipts:
                fresh.setdefault(sid, item)
        if fresh:
            message_ids = connection.execute(_INSERT_MESSAGES, [
                {"source": SOURCE, "source_id": sid, "kind": event.event_type, "payload": raw,
                 "status": ACCEPTED, "received_at": now} for sid, (event, raw) in fresh.items()]).scalars().all()
            wanted = [handled(event.event_type) for event, _ in fresh.values()]
            row_ids = connection.execute(_INSERT_EVENTS, [
                _event_values(event, message_id, now, want)
                for (event, _), message_id, want in zip(fresh.values(), message_ids, wanted, strict=True)
            ]).scalars().all()
            queued = [(row_id, event.ordering_key, message_id)
                      for (event, _), row_id, message_id, want in zip(fresh.values(), row_ids, message_ids, wanted,
                                                                      strict=True) if want]
            job_ids = jobs.enqueue_many(session, EVENT_JOB, [({"event_row_id": row_id}, key, message_id)
                                                             for row_id, key, message_id in queued],
                                        max_attempts=max_attempts)
            if job_ids:
                connection.execute(_SET_JOB, [{"row_id": row_id, "job_id": job_id}
                                              for (row_id, _, _), job_id in zip(queued, job_ids, strict=True)])
            jobs_by_row = {row_id: job_id for (row_id, _, _), job_id in zip(queued, job_ids, strict=True)}
            for sid, row_id, want in zip(fresh, row_ids, wanted, strict=True):
                receipts[sid] = EventReceipt(row_id, ACCEPTED, QUEUED if want else IGNORED, jobs_by_row.get(row_id))
    # The first of repeated deliveries in one batch is the accepted one; the others are duplicates.
    seen: set[str] = set()
    result = []
    for sid in sids:
        receipt = receipts[sid]
        if sid in seen and receipt.status == ACCEPTED:
            receipt = EventReceipt(receipt.event_row_id, DUPLICATE, receipt.event_status, receipt.job_id)
        seen.add(sid)
        result.append(receipt)
    return result


def _event_values(event: AmazonEvent, message_id: int, now: float, wanted: bool) -> dict[str, object]:
    return {"message_id": message_id, "event_id": event.event_id, "event_type": event.event_type,
            "envelope": event.envelope, "order_id": event.order_id, "ordering_key": event.ordering_key,
            "event_time": event.event_time.timestamp() if event.event_time else None, "received_at": now,
            "status": QUEUED if wanted else IGNORED, "outcome": None if wanted else _no_handler(event.event_type),
            "updated_at": now}


class EventWriter:
    """Stores deliveries from many concurrent requests in shared transactions (group commit).

    Each request hands its parsed event to this writer thread and waits for its receipt, which is
    set only after the transaction holding it committed, so "stored before acknowledged" holds for
    every event. Whatever queued up while one transaction ran goes into the next: under light load
    a batch is one event (no added latency); under heavy load per-event cost falls to a share of a
    few multi-row statements, which is what lets the durable intake keep up with the web stack.
    One thread: SQLite has one writer at a time anyway, and on PostgreSQL more writer threads
    measured no faster (the process is CPU-bound, not waiting on the database).
    """

    def __init__(self, db: Database, *, handled: Callable[[str], bool], max_attempts: int,
                 max_batch: int = 200) -> None:
        self.db = db
        self.handled = handled
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[AmazonEvent, str, Future[EventReceipt]] | None] = queue.SimpleQueue()
        self.threads = 1
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, event: AmazonEvent, raw: str) -> Future[EventReceipt]:
        with self._lock:
            self._workers = [t for t in self._workers if t.is_alive()]
            while len(self._workers) < self.threads:
                worker = threading.Thread(target=self._run, name="event-writer", daemon=True)
                worker.start()
                self._workers.append(worker)
        future: Future[EventReceipt] = Future()
        self._queue.put((event, raw, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put(None)
        for worker in workers:
            worker.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._write(batch)
                    return
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[tuple[AmazonEvent, str, Future[EventReceipt]]]) -> None:
        try:
            receipts = accept_events(self.db, [(event, raw) for event, raw, _ in batch], handled=self.handled,
                                     max_attempts=self.max_attempts)
        except Exception as exc:
            if len(batch) == 1 or not isinstance(exc, IntegrityError):
                for _, _, future in batch:
                    future.set_exception(exc)
                return
            # Lost a race on the unique key with another writer: store one by one (ON CONFLICT path).
            for event, raw, future in batch:
                try:
                    future.set_result(accept_event(self.db, event, raw, handled=self.handled,
                                                   max_attempts=self.max_attempts))
                except Exception as single:
                    future.set_exception(single)
            return
        for (_, _, future), receipt in zip(batch, receipts, strict=True):
            future.set_result(receipt)


_SQLITE_WRITER = threading.Lock()


def _writer(db: Database) -> AbstractContextManager[object]:
    """SQLite takes one writer at a time; writers of this process queue on a lock instead of in
    SQLite's busy handler, which sleeps in steps of up to 100 ms and made the p99 latency seconds
    under concurrent deliveries. PostgreSQL writes concurrently."""
    return nullcontext() if db.is_postgres else _SQLITE_WRITER


def _duplicate(session: Session, sid: str) -> EventReceipt:
    row = session.execute(
        select(AmazonEventRow.id, AmazonEventRow.status, AmazonEventRow.job_id)
        .join(Message, Message.id == AmazonEventRow.message_id)
        .where(Message.source == SOURCE, Message.source_id == sid)).one()
    return EventReceipt(row.id, DUPLICATE, row.status, row.job_id)


def _enqueue(session: Session, row_id: int, ordering_key: str, max_attempts: int, message_id: int) -> int:
    job_id = jobs.enqueue(session, EVENT_JOB, {"event_row_id": row_id}, ordering_key=ordering_key,
                          max_attempts=max_attempts, message_id=message_id)
    assert job_id is not None
    session.connection().execute(_SET_JOB, {"row_id": row_id, "job_id": job_id})
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

