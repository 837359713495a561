"""Waking idle workers as soon as a job is enqueued, instead of waiting for the next poll.

In one process a committed enqueue sets an event; across PostgreSQL clients ``NOTIFY`` does the
same through a listener thread. SQLite across processes falls back to the poll interval.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)
NOTIFY_CHANNEL = "primebridge_jobs"


class Wakeup:
    """A broadcast: every subscribed event is set on ``notify`` (several workers may share a process)."""

    def __init__(self) -> None:
        self._subscribers: list[threading.Event] = []
        self._lock = threading.Lock()

    def subscribe(self, target: threading.Event) -> None:
        with self._lock:
            self._subscribers.append(target)

    def unsubscribe(self, target: threading.Event) -> None:
        with self._lock:
            if target in self._subscribers:
                self._subscribers.remove(target)

    def notify(self) -> None:
        with self._lock:
            for target in self._subscribers:
                target.set()


LOCAL = Wakeup()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("jobs_enqueued", False):
        LOCAL.notify()


class PostgresListener:
    """LISTENs on the jobs channel with its own connection and wakes ``target`` on each NOTIFY."""

    def __init__(self, url: str, target: Wakeup = LOCAL) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://")
        self.target = target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listener", daemon=True)

    def start(self) -> PostgresListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.target.notify()
            except Exception as exc:
                log.warning("pg_listener.reconnect", error=str(exc))
                self._stop.wait(1.0)

    def __enter__(self) -> PostgresListener:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
