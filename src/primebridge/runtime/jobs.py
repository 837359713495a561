"""A durable job queue with leases, per-key ordering, retries and dead letters.

Modelled on procrastinate: a job is claimable only when no earlier unfinished job has the same
ordering key (the order), so jobs of one order never run concurrently nor out of order, while
different orders run in parallel. On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so several
worker processes on several hosts share one table; on SQLite every transaction is ``BEGIN
IMMEDIATE``, which serialises claims. A claim is a lease: a worker that dies simply lets it expire
and the job is claimed again; results reported under a lost lease are discarded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from primebridge.runtime.db import Database
from primebridge.runtime.tables import Job, JobAttempt
from primebridge.runtime.wakeup import NOTIFY_CHANNEL

QUEUED, RUNNING, DONE, REJECTED, DEAD = "queued", "running", "done", "rejected", "dead"
FINISHED = (DONE, REJECTED, DEAD)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    ordering_key: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    message_id: int | None


def enqueue(session: Session, kind: str, payload: dict[str, Any], *, ordering_key: str,
            max_attempts: int, message_id: int | None = None, coalesce: bool = False,
            delay: float = 0.0) -> int | None:
    """Add a job in the caller's transaction (so a stored message and its job commit together).

    ``coalesce`` skips the insert when an identical job for the key is still waiting to start:
    "sync order N" twice before it runs is one sync, since the job re-reads the order anyway.
    Returns the new job id, or ``None`` when coalesced.
    """
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    now = time.time()
    if coalesce:
        waiting = session.scalar(select(Job.id).where(
            Job.ordering_key == ordering_key, Job.kind == kind, Job.status == QUEUED,
            Job.attempts == 0, Job.payload == body).limit(1))
        if waiting is not None:
            return None
    job = Job(kind=kind, ordering_key=ordering_key, payload=body, status=QUEUED, attempts=0,
              max_attempts=max_attempts, next_attempt_at=now + delay, message_id=message_id,
              created_at=now, updated_at=now)
    session.add(job)
    session.flush()
    session.info["jobs_enqueued"] = True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": NOTIFY_CHANNEL})
    return job.id


_CLAIM = """
UPDATE jobs SET status = 'running', lease_owner = :worker, lease_expires_at = :lease,
       attempts = attempts + 1, updated_at = :now
WHERE id IN (
    SELECT j.id FROM jobs j
    WHERE j.status = 'queued' AND j.next_attempt_at <= :now
      AND NOT EXISTS (
          SELECT 1 FROM jobs e
          WHERE e.ordering_key = j.ordering_key AND e.id < j.id AND e.status IN ('queued', 'running'))
    ORDER BY j.id
    LIMIT :limit {lock}
)
RETURNING id, kind, ordering_key, payload, attempts, max_attempts, message_id
"""

_REAP = """
UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
       last_error = 'lease expired (worker stopped or lost)', updated_at = :now
WHERE status = 'running' AND lease_expires_at < :now
"""

_REAP_SQL = text(_REAP)


class JobQueue:
    def __init__(self, db: Database, *, lease_seconds: float) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self._claim_sql = text(_CLAIM.format(lock="FOR UPDATE SKIP LOCKED" if db.is_postgres else ""))

    def claim(self, worker: str, limit: int) -> list[ClaimedJob]:
        now = time.time()
        with self.db.statements() as connection:
            connection.execute(_REAP_SQL, {"now": now})
            rows = connection.execute(self._claim_sql, {
                "worker": worker, "lease": now + self.lease_seconds, "now": now, "limit": limit,
            }).all()
            # Read after the claim took effect, not before the transaction: ``now`` can predate the
            # commit of the previous job of the same key (a wait for SQLite's write lock, a concurrent
            # finish on PostgreSQL), and job_attempts must never show one key's attempts overlapping.
            started = time.time()
            claimed = [ClaimedJob(id=r.id, kind=r.kind, ordering_key=r.ordering_key,
                                  payload=json.loads(r.payload), attempts=r.attempts,
                                  max_attempts=r.max_attempts, message_id=r.message_id) for r in rows]
            if claimed:
                connection.execute(insert(JobAttempt), [
                    {"job_id": job.id, "attempt": job.attempts, "worker": worker, "started_at": started,
                     "status": RUNNING} for job in claimed])
        return sorted(claimed, key=lambda j: j.id)

    def heartbeat(self, worker: str, job_ids: Sequence[int]) -> None:
        if not job_ids:
            return
        now = time.time()
        with self.db.statements() as connection:
            connection.execute(update(Job).where(
                Job.id.in_(job_ids), Job.lease_owner == worker, Job.status == RUNNING,
            ).values(lease_expires_at=now + self.lease_seconds))

    def _finish(self, job: ClaimedJob, worker: str, *, status: str, attempt_status: str,
                error: str | None = None, outcome: str | None = None,
                next_attempt_at: float | None = None) -> bool:
        now = time.time()
        values: dict[str, Any] = {"status": status, "updated_at": now, "lease_owner": None,
                                  "lease_expires_at": None}
        if error is not None:
            values["last_error"] = error[:4000]
        if outcome is not None:
            values["outcome"] = outcome[:4000]
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        with self.db.statements() as connection:
            owned = connection.execute(update(Job).where(
                Job.id == job.id, Job.lease_owner == worker, Job.status == RUNNING,
            ).values(**values)).rowcount
            connection.execute(update(JobAttempt).where(
                JobAttempt.job_id == job.id, JobAttempt.attempt == job.attempts,
                JobAttempt.worker == worker,
            ).values(finished_at=now, status=attempt_status if owned else "lease-lost",
                     error=(error or None) and error[:4000]))
        return bool(owned)

    def complete(self, job: ClaimedJob, worker: str, outcome: str | None = None) -> bool:
        return self._finish(job, worker, status=DONE, attempt_status=DONE, outcome=outcome)

    def reject(self, job: ClaimedJob, worker: str, reason: str) -> bool:
        return self._finish(job, worker, status=REJECTED, attempt_status=REJECTED, outcome=reason,
                            error=reason)

    def dead_letter(self, job: ClaimedJob, worker: str, error: str) -> bool:
        return self._finish(job, worker, status=DEAD, attempt_status="failed", error=error)

    def retry_later(self, job: ClaimedJob, worker: str, error: str, delay: float) -> bool:
        return self._finish(job, worker, status=QUEUED, attempt_status="failed", error=error,
                            next_attempt_at=time.time() + delay)

    # -- operator actions ---------------------------------------------------------------------

    def requeue(self, job_id: int, *, reset_attempts: bool) -> bool:
        """``jobs retry`` (dead/rejected → queued, attempts kept) and ``jobs replay`` (any finished
        job runs again from scratch). Both run the same idempotent handler again."""
        now = time.time()
        values: dict[str, Any] = {"status": QUEUED, "next_attempt_at": now, "updated_at": now}
        if reset_attempts:
            values["attempts"] = 0
        allowed = FINISHED if reset_attempts else (REJECTED, DEAD)
        with self.db.transaction() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise LookupError(f"job {job_id} does not exist")
            if job.status not in allowed:
                return False
            if not reset_attempts and job.attempts >= job.max_attempts:
                values["max_attempts"] = job.attempts + 1
            session.execute(update(Job).where(Job.id == job_id).values(**values))
            session.info["jobs_enqueued"] = True
            if self.db.is_postgres:
                session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": NOTIFY_CHANNEL})
        return True

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        return {status: count for status, count in rows}

    def next_due(self) -> float | None:
        """When the earliest queued job becomes due (``None`` when nothing is due within a second)."""
        with self.db.transaction() as session:
            due = session.scalar(select(func.min(Job.next_attempt_at)).where(Job.status == QUEUED))
        return due if due is not None and due <= time.time() + 1.0 else None
