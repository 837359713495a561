"""The event intake's group commit (``runtime/events.py`` ``EventWriter``, ``accept_events``).

Concurrent deliveries share one transaction. These tests pin what that must not change: every
event is stored once with its job, a repeat inside one group is a duplicate, a group whose commit
fails leaves nothing behind and fails every request in it (the sender delivers again), and one
bad event cannot fail the events it happened to share a group with.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
from sqlalchemy import func, select

from primebridge.domain.events import AmazonEvent, parse_event
from primebridge.runtime import events
from primebridge.runtime.db import Database
from primebridge.runtime.events import EventReceipt, EventWriter
from primebridge.runtime.tables import AmazonEventRow, Job, Message
from tests.e2e import harness
from tests.e2e.harness import Bridge

sandboxes = harness.sandboxes
store_url = harness.store_url
bridge = harness.bridge

BP = "businessProduct/bp-00000000-0000-4000-8000-00000000ab12"
HANDLED = {"PACKAGE_DELIVERED", "PACKAGE_DELIVERY_IN_TRANSIT"}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"bwp-sandbox:sandbox-events-password").decode()}


def body(event_id: str, event_type: str = "PACKAGE_DELIVERED", order: str = "O-1") -> dict[str, Any]:
    return {"eventId": event_id, "eventDescriptor": event_type, "apiVersion": "2024-11-01",
            "resources": [f"{BP}/order/{order}/delivery/D-{event_id}"], "eventTime": "2025-01-20T12:34:56Z"}


def delivery(event_id: str, event_type: str = "PACKAGE_DELIVERED", order: str = "O-1") -> tuple[AmazonEvent, str]:
    raw = json.dumps(body(event_id, event_type, order))
    return parse_event(raw), raw


def counts(db: Database) -> tuple[int, int, int]:
    with db.transaction() as session:
        return tuple(int(session.scalar(select(func.count()).select_from(t)) or 0)  # type: ignore[return-value]
                     for t in (Message, AmazonEventRow, Job))


def accept(db: Database, items: Sequence[tuple[AmazonEvent, str]]) -> list[EventReceipt]:
    return events.accept_events(db, items, handled=HANDLED.__contains__, max_attempts=5)


def test_a_group_stores_each_event_once_with_its_job(any_db: Database) -> None:
    [earlier] = accept(any_db, [delivery("e-1")])
    receipts = accept(any_db, [delivery("e-2"), delivery("e-1"), delivery("e-3", order="O-2"), delivery("e-2"),
                               delivery("u-1", event_type="SOMETHING_NEW")])
    assert [r.status for r in receipts] == ["accepted", "duplicate", "accepted", "duplicate", "accepted"]
    assert receipts[1] == EventReceipt(earlier.event_row_id, "duplicate", "queued", earlier.job_id)
    assert receipts[3].event_row_id == receipts[0].event_row_id and receipts[3].job_id == receipts[0].job_id
    assert (receipts[4].event_status, receipts[4].job_id) == ("ignored", None)
    assert counts(any_db) == (4, 4, 3)
    with any_db.transaction() as session:
        rows = {r.event_id: r for r in session.scalars(select(AmazonEventRow))}
        jobs = {j.id: j for j in session.scalars(select(Job))}
        payloads = {m.id: m.payload for m in session.scalars(select(Message))}
    for event_id in ("e-1", "e-2", "e-3"):
        row = rows[event_id]
        job = jobs[row.job_id]
        assert json.loads(job.payload) == {"event_row_id": row.id}
        assert (job.kind, job.status, job.message_id, job.ordering_key) == (
            events.EVENT_JOB, "queued", row.message_id, row.ordering_key)
        assert json.loads(payloads[row.message_id])["eventId"] == event_id
    assert rows["e-2"].job_id < rows["e-3"].job_id            # jobs numbered in arrival order
    assert (rows["u-1"].status, rows["u-1"].job_id) == ("ignored", None)
    assert "no handler for SOMETHING_NEW" in (rows["u-1"].outcome or "")
    assert rows["e-3"].ordering_key == "amazon:order:O-2" and rows["e-3"].event_time is not None


class Gate:
    """Holds the writer's first transaction until the test has queued a whole group behind it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[list[str]] = []
        self.open = threading.Event()
        real = events.accept_events

        def gated(db: Database, items: Sequence[tuple[AmazonEvent, str]], **kw: Any) -> list[EventReceipt]:
            self.batches.append([event.event_id for event, _ in items])
            if len(self.batches) == 1:
                assert self.open.wait(10)
            return real(db, items, **kw)

        monkeypatch.setattr(events, "accept_events", gated)


def run_group(writer: EventWriter, gate: Gate, group: list[tuple[AmazonEvent, str]]) -> list[Any]:
    """Deliver ``group`` concurrently while the writer is busy, so it becomes one group commit."""
    async def main() -> list[Any]:
        first = asyncio.ensure_future(writer.store(*delivery("blocker")))
        for _ in range(200):
            if gate.batches:
                break
            await asyncio.sleep(0.01)
        tasks = [asyncio.ensure_future(writer.store(event, raw)) for event, raw in group]
        await asyncio.sleep(0)          # every task has queued its event
        gate.open.set()
        return await asyncio.wait_for(asyncio.gather(first, *tasks, return_exceptions=True), 20)

    try:
        return asyncio.run(main())[1:]
    finally:
        writer.close()


def writer_for(db: Database) -> EventWriter:
    return EventWriter(db, handled=HANDLED.__contains__, max_attempts=5)


def test_concurrent_deliveries_share_one_commit_and_a_repeat_in_it_is_a_duplicate(
        any_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    group = [delivery(f"g-{i}", order=f"O-{i % 3}") for i in range(8)] + [delivery("g-2")]
    results = run_group(writer_for(any_db), gate, group)
    assert gate.batches == [["blocker"], [event.event_id for event, _ in group]]   # one group commit
    assert [r.status for r in results] == ["accepted"] * 8 + ["duplicate"]
    assert results[8].event_row_id == results[2].event_row_id
    assert len({r.event_row_id for r in results}) == 8 and len({r.job_id for r in results}) == 8
    assert counts(any_db) == (9, 9, 9)


def failing(db: Database, monkeypatch: pytest.MonkeyPatch, error: Callable[[list[str]], Exception | None]) -> None:
    """Make the SQLite store raise ``error(source ids)`` after its inserts ran, before the commit."""
    real = events._store_sqlite

    def store(driver: Any, batch: list[Any], *args: Any) -> Any:
        result = real(driver, batch, *args)
        exc = error([item.sid for item in batch])
        if exc is not None:
            raise exc
        return result

    monkeypatch.setattr(events, "_store_sqlite", store)


@contextmanager
def jobs_refused(db: Database, order: str, sqlstate: str = "23514") -> Iterator[None]:
    """A trigger in the database refuses the job of any event of ``order``: the group's messages and
    events are already written when its jobs are refused (SQLite: a constraint error; PostgreSQL: an
    error with ``sqlstate``)."""
    key = f"amazon:order:{order}"
    with db.engine.begin() as connection:
        if db.is_postgres:
            connection.exec_driver_sql(
                "CREATE FUNCTION pb_test_refuse_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.ordering_key = '{key}' THEN RAISE EXCEPTION 'job refused (test)' "
                f"USING ERRCODE = '{sqlstate}'; END IF; RETURN NEW; END $$")
            connection.exec_driver_sql("CREATE TRIGGER pb_test_refuse_job BEFORE INSERT ON jobs FOR EACH ROW "
                                       "EXECUTE FUNCTION pb_test_refuse_job()")
        else:
            connection.exec_driver_sql(f"CREATE TRIGGER pb_test_refuse_job BEFORE INSERT ON jobs WHEN "
                                       f"NEW.ordering_key = '{key}' BEGIN SELECT RAISE(ABORT, 'job refused'); END")
    try:
        yield
    finally:
        with db.engine.begin() as connection:   # the PostgreSQL test database is shared: always clean up
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS pb_test_refuse_job" +
                                       (" ON jobs" if db.is_postgres else ""))
            if db.is_postgres:
                connection.exec_driver_sql("DROP FUNCTION IF EXISTS pb_test_refuse_job()")


def test_a_failed_group_commit_fails_every_request_and_keeps_nothing(
        any_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    driver = any_db.engine.dialect.loaded_dbapi
    group = [delivery(f"f-{i}", order="FAIL" if i == 4 else f"O-{i}") for i in range(6)]
    if any_db.is_postgres:
        refused = jobs_refused(any_db, "FAIL", sqlstate="53100")   # disk full: the store is unavailable
    else:
        refused = nullcontext()
        failing(any_db, monkeypatch, lambda sids: None if sids == ["event:blocker"] else
                driver.OperationalError("disk I/O error (injected)"))
    with refused:
        results = run_group(writer_for(any_db), gate, group)
    assert gate.batches[1] == [f"f-{i}" for i in range(6)]
    assert all(isinstance(r, driver.OperationalError) for r in results), results
    assert counts(any_db) == (1, 1, 1)            # the blocker only: nothing of the group half-written
    monkeypatch.undo()
    retried = accept(any_db, group)                # the sender delivers again
    assert [r.status for r in retried] == ["accepted"] * 6
    assert counts(any_db) == (7, 7, 7)


def test_one_bad_event_does_not_fail_its_group(any_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    driver = any_db.engine.dialect.loaded_dbapi
    group = [delivery("ok-1"), delivery("bad", order="BAD"), delivery("ok-2")]
    with jobs_refused(any_db, "BAD"):
        results = run_group(writer_for(any_db), gate, group)
    assert gate.batches[1] == ["ok-1", "bad", "ok-2"]
    assert results[0].status == results[2].status == "accepted"
    assert isinstance(results[1], driver.IntegrityError), results[1]
    assert counts(any_db) == (3, 3, 3)
    [bad] = accept(any_db, [group[1]])            # delivered again once the cause is gone
    assert bad.status == "accepted" and counts(any_db) == (4, 4, 4)


def test_the_endpoint_answers_503_when_the_group_commit_fails(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    db = bridge.service.db
    driver = db.engine.dialect.loaded_dbapi
    failing(db, monkeypatch, lambda sids: driver.OperationalError("database is locked (injected)"))
    answer = bridge.post("/events/amazon", body("w-1"), headers=AUTH)
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5" and answer.json()["code"] == "Unavailable"
    assert counts(db) == (0, 0, 0)
    monkeypatch.undo()
    again = bridge.post("/events/amazon", body("w-1"), headers=AUTH)
    assert again.status_code == 200 and again.json()["status"] == "accepted"
    assert counts(db) == (1, 1, 1)
