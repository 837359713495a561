"""The queue's guarantees: per-key ordering, leases, retries, dead letters, operator requeue."""

from __future__ import annotations

import threading
import time

from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.runtime import jobs
from primebridge.runtime.db import Database
from primebridge.runtime.jobs import ClaimedJob, JobQueue
from primebridge.runtime.tables import Job
from primebridge.runtime.worker import RetryPolicy, Worker


def _enqueue(db: Database, key: str, n: int, **payload: object) -> list[int]:
    ids = []
    with db.transaction() as session:
        for i in range(n):
            job_id = jobs.enqueue(session, "test", {"i": i, **payload}, ordering_key=key, max_attempts=3)
            assert job_id is not None
            ids.append(job_id)
    return ids


def test_one_key_is_claimed_one_job_at_a_time_in_order(any_db: Database) -> None:
    queue = JobQueue(any_db, lease_seconds=30)
    first, second = _enqueue(any_db, "k1", 2)
    other = _enqueue(any_db, "k2", 1)[0]
    claimed = queue.claim("w1", 10)
    assert [j.id for j in claimed] == [first, other]
    assert queue.claim("w2", 10) == []
    queue.complete(claimed[0], "w1", "ok")
    assert [j.id for j in queue.claim("w2", 10)] == [second]


def test_expired_lease_is_reclaimed_and_late_result_discarded(any_db: Database) -> None:
    queue = JobQueue(any_db, lease_seconds=0.2)
    _enqueue(any_db, "k", 1)
    job = queue.claim("dead-worker", 1)[0]
    time.sleep(0.3)
    again = queue.claim("w2", 1)
    assert [j.id for j in again] == [job.id] and again[0].attempts == 2
    assert queue.complete(job, "dead-worker") is False
    assert queue.complete(again[0], "w2") is True
    with any_db.transaction() as s:
        assert s.get(Job, job.id).status == "done"


def test_coalesce_skips_a_duplicate_waiting_job(any_db: Database) -> None:
    with any_db.transaction() as session:
        a = jobs.enqueue(session, "sync", {"o": 1}, ordering_key="o1", max_attempts=3, coalesce=True)
        b = jobs.enqueue(session, "sync", {"o": 1}, ordering_key="o1", max_attempts=3, coalesce=True)
    assert a is not None and b is None


def _status(db: Database, job_id: int) -> Job:
    with db.transaction() as s:
        return s.get(Job, job_id)


def test_worker_maps_outcomes_to_states(any_db: Database) -> None:
    queue = JobQueue(any_db, lease_seconds=5)
    calls: dict[str, int] = {}

    def handler(job: ClaimedJob) -> str:
        mode = job.payload["mode"]
        calls[mode] = calls.get(mode, 0) + 1
        if mode == "reject":
            raise Rejected("no ship-to address")
        if mode == "permanent":
            raise PermanentError("bad credentials")
        if mode == "flaky" and calls[mode] < 2:
            raise TransientError("503", retry_after=0.05)
        if mode == "always-transient":
            raise TransientError("down")
        if mode == "bug":
            raise KeyError("oops")
        return f"did {mode}"

    ids = {}
    for mode in ("ok", "reject", "permanent", "flaky", "always-transient", "bug"):
        ids[mode] = _enqueue(any_db, mode, 1, mode=mode)[0]
    worker = Worker(queue, {"test": handler}, concurrency=3, poll_interval=0.05,
                    retry=RetryPolicy(base=0.05, cap=0.1))
    worker.run_until_idle(timeout=20)
    assert _status(any_db, ids["ok"]).status == "done"
    rejected = _status(any_db, ids["reject"])
    assert rejected.status == "rejected" and rejected.outcome == "no ship-to address" and rejected.attempts == 1
    assert _status(any_db, ids["permanent"]).status == "dead"
    flaky = _status(any_db, ids["flaky"])
    assert flaky.status == "done" and flaky.attempts == 2
    exhausted = _status(any_db, ids["always-transient"])
    assert exhausted.status == "dead" and exhausted.attempts == 3 and "gave up" in exhausted.last_error
    bug = _status(any_db, ids["bug"])
    assert bug.status == "dead" and "KeyError" in bug.last_error

    assert queue.requeue(ids["permanent"], reset_attempts=False)
    assert not queue.requeue(ids["ok"], reset_attempts=False)
    assert queue.requeue(ids["ok"], reset_attempts=True)
    assert _status(any_db, ids["ok"]).status == "queued"


def test_same_key_never_runs_concurrently(any_db: Database) -> None:
    queue = JobQueue(any_db, lease_seconds=5)
    for key in ("a", "b", "c"):
        _enqueue(any_db, key, 6)
    active: dict[str, int] = {}
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()
    overlaps = []

    def handler(job: ClaimedJob) -> None:
        with lock:
            active[job.ordering_key] = active.get(job.ordering_key, 0) + 1
            if active[job.ordering_key] > 1:
                overlaps.append(job.ordering_key)
            seen.setdefault(job.ordering_key, []).append(job.payload["i"])
        time.sleep(0.01)
        with lock:
            active[job.ordering_key] -= 1

    workers = [Worker(queue, {"test": handler}, concurrency=4, poll_interval=0.05) for _ in range(2)]
    threads = [threading.Thread(target=w.run_until_idle, kwargs={"timeout": 20}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    assert seen == {k: list(range(6)) for k in ("a", "b", "c")}


def test_a_durable_sqlite_commit_syncs_then_returns_the_connection_to_normal(sqlite_db: Database) -> None:
    """Acknowledged messages are committed with synchronous=FULL; the pooled connection goes back to NORMAL."""
    def synchronous(connection: object) -> int:
        return connection.exec_driver_sql("PRAGMA synchronous").scalar()  # type: ignore[attr-defined]

    with sqlite_db.statements(durable=True) as connection:
        assert synchronous(connection) == 2  # FULL
    with sqlite_db.transaction(durable=True) as session:
        assert session.connection().exec_driver_sql("PRAGMA synchronous").scalar() == 2
    with sqlite_db.statements() as connection:
        assert synchronous(connection) == 1  # NORMAL
