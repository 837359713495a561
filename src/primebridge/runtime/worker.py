"""The worker: claims jobs, runs their handlers in a thread pool, and turns each outcome into the
queue's next state. A handler's exception type carries the decision (see domain/errors.py):

- ``Rejected``: bad input; recorded with its reason, never retried.
- ``TransientError``, network and database hiccups: retried with backoff until ``max_attempts``,
  then dead-lettered.
- ``PermanentError`` and anything unexpected: dead-lettered at once, so a bug never loops and never
  kills the worker. An operator replays it with ``primebridge jobs retry``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog
from sqlalchemy.exc import OperationalError

from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.runtime import context
from primebridge.runtime.backoff import retry_delay
from primebridge.runtime.jobs import ClaimedJob, JobQueue
from primebridge.runtime.wakeup import LOCAL, Wakeup

log = structlog.get_logger(__name__)

Handler = Callable[[ClaimedJob], str | None]


class DeadLetterNotifier(Protocol):
    def dead_lettered(self, job: ClaimedJob, error: str) -> None: ...


class LogNotifier:
    def dead_lettered(self, job: ClaimedJob, error: str) -> None:
        log.error("job.dead_lettered", job_id=job.id, kind=job.kind, key=job.ordering_key, error=error)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 300.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(self, queue: JobQueue, handlers: dict[str, Handler], *, concurrency: int = 4,
                 poll_interval: float = 0.5, retry: RetryPolicy | None = None,
                 wakeup: Wakeup = LOCAL, notifier: DeadLetterNotifier | None = None,
                 name: str | None = None) -> None:
        self.queue = queue
        self.handlers = handlers
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.retry = retry or RetryPolicy()
        self.wakeup = wakeup
        self.notifier = notifier or LogNotifier()
        self.name = name or worker_name()
        self._running: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._nudge = threading.Event()

    # -- loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        log.info("worker.start", worker=self.name, concurrency=self.concurrency)
        self.wakeup.subscribe(self._nudge)
        heartbeat = threading.Thread(target=self._heartbeat, args=(stop,), name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
                while not stop.is_set():
                    # Cleared before claiming: a notification that arrives during the claim is kept.
                    self._nudge.clear()
                    free = self.concurrency - len(self._running)
                    claimed: list[ClaimedJob] = []
                    if free > 0:
                        try:
                            claimed = self.queue.claim(self.name, free)
                        except OperationalError as exc:
                            log.warning("worker.claim_failed", error=str(exc).splitlines()[0])
                    for job in claimed:
                        with self._lock:
                            self._running[job.id] = pool.submit(self._execute, job)
                    if free > 0 and len(claimed) == free:
                        continue
                    self._nudge.wait(self.poll_interval)
                log.info("worker.stopping", worker=self.name, running=len(self._running))
        finally:
            self.wakeup.unsubscribe(self._nudge)
        log.info("worker.stopped", worker=self.name)

    def run_until_idle(self, timeout: float = 60.0, idle_for: float = 0.3) -> None:
        """Run until nothing is claimable nor running for ``idle_for`` seconds (demo, tests)."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            busy = bool(self._running) or self._claimable()
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_for:
                break
            time.sleep(0.05)
        stop.set()
        self._nudge.set()
        thread.join(timeout=30)

    def _claimable(self) -> bool:
        """Work is left while any job is running, not only this worker's: a job left "running" by a
        crashed worker is requeued by a claim once its lease expires, so stopping early would leave
        it behind (seen after a SIGKILL in the crash test)."""
        counts = self.queue.counts()
        if counts.get("running", 0) > 0:
            return True
        return counts.get("queued", 0) > 0 and self.queue.next_due() is not None

    def _heartbeat(self, stop: threading.Event) -> None:
        interval = max(0.2, self.queue.lease_seconds / 3)
        while not stop.wait(interval):
            with self._lock:
                ids = list(self._running)
            try:
                self.queue.heartbeat(self.name, ids)
            except OperationalError as exc:
                log.warning("worker.heartbeat_failed", error=str(exc).splitlines()[0])

    # -- one job ------------------------------------------------------------------------------

    def _execute(self, job: ClaimedJob) -> None:
        payload = job.payload
        ids = {"job_id": job.id, "message_id": job.message_id}
        if "oms" in payload and "order_id" in payload:
            ids.update(oms=payload["oms"], oms_order_id=str(payload["order_id"]))
        try:
            with context.correlated(**ids):
                self._run_handler(job)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            self._nudge.set()

    def _run_handler(self, job: ClaimedJob) -> None:
        bound = log.bind(job_id=job.id, kind=job.kind, key=job.ordering_key, attempt=job.attempts)
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise PermanentError(f"no handler for job kind {job.kind!r}")
            outcome = handler(job)
        except Rejected as exc:
            bound.info("job.rejected", reason=exc.reason)
            self.queue.reject(job, self.name, exc.reason)
        except (TransientError, httpx.TransportError, OperationalError) as exc:
            error = _describe(exc)
            if job.attempts >= job.max_attempts:
                bound.warning("job.exhausted", error=error)
                if self.queue.dead_letter(job, self.name, f"gave up after {job.attempts} attempts: {error}"):
                    self.notifier.dead_lettered(job, error)
                return
            retry_after = exc.retry_after if isinstance(exc, TransientError) else None
            delay = retry_delay(job.attempts, base=self.retry.base, cap=self.retry.cap,
                                retry_after=retry_after)
            bound.info("job.retry", error=error, delay=round(delay, 2))
            self.queue.retry_later(job, self.name, error, delay)
        except PermanentError as exc:
            bound.error("job.failed", error=_describe(exc))
            if self.queue.dead_letter(job, self.name, _describe(exc)):
                self.notifier.dead_lettered(job, _describe(exc))
        except Exception as exc:
            error = f"{_describe(exc)}\n{traceback.format_exc(limit=8)}"
            bound.exception("job.crashed")
            if self.queue.dead_letter(job, self.name, error):
                self.notifier.dead_lettered(job, _describe(exc))
        else:
            bound.info("job.done", outcome=outcome)
            self.queue.complete(job, self.name, outcome)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
