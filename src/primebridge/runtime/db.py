"""Engine set-up: SQLite file (WAL, immediate transactions) by default, PostgreSQL by URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we ship), not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own transaction handling is switched off so that we can BEGIN IMMEDIATE:
        # a deferred transaction that later writes fails at once with SQLITE_BUSY instead of waiting.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# A pooled connection unused for this long is pinged before it is handed out again.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping`` without its cost on busy connections.

    ``pool_pre_ping`` spends a round trip on every checkout, and a job checks out a connection for
    each of its dozen short transactions: in the benchmark the pings were a fifth of a PostgreSQL
    worker's time. A connection that went back to the pool moments ago is alive; one that idled
    (through a server restart, a firewall's idle timeout) is pinged, and replaced when the ping
    fails. A connection that breaks while in use raises ``OperationalError``, which the worker
    treats as transient (the job is retried) and which makes SQLAlchemy invalidate the pool.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool discards this connection and checks out a fresh one.
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        else:
            _ping_when_idle(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error. ``durable``: see
        ``statements``."""
        if not durable or self.dialect != "sqlite":
            with self._sessions() as session, session.begin():
                yield session
            return
        with self._durable_connection() as connection, \
                Session(bind=connection, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def statements(self, *, durable: bool = False) -> Iterator[Connection]:
        """A transaction for plain Core statements (no ORM session): for the hot, write-only paths
        (audit rows, finishing a job) where the session's bookkeeping costs more than the SQL.

        ``durable``: the commit must survive a power loss, not only a crash of the process — for
        what is acknowledged to a sender (an inbound message). SQLite runs with ``synchronous=NORMAL``
        in WAL mode, which keeps every commit through a process crash but may lose the last ones
        to a power loss; a durable commit syncs the WAL (``synchronous=FULL`` for that one
        transaction), which also covers every commit before it. Internal state (job attempts, audit)
        does not need it: a lost transition re-runs an idempotent job. PostgreSQL commits are durable
        by its own ``synchronous_commit``.
        """
        if not durable or self.dialect != "sqlite":
            with self.engine.begin() as connection:
                yield connection
            return
        with self._durable_connection() as connection, connection.begin():
            yield connection

    @contextmanager
    def _durable_connection(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            # Set on the driver's connection before BEGIN: the pragma applies per connection, and the
            # driver runs in autocommit mode here (see _sqlite_setup), so nothing is begun implicitly.
            driver = connection.connection.driver_connection
            driver.execute("PRAGMA synchronous=FULL")
            try:
                yield connection
            finally:
                driver.execute("PRAGMA synchronous=NORMAL")

    def dispose(self) -> None:
        self.engine.dispose()
