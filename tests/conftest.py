"""Shared fixtures: a migrated database on SQLite (always) and PostgreSQL (when reachable).

Under ``CI=true`` a missing PostgreSQL fails the run instead of skipping: CI must prove the
multi-process guarantees on the database production uses.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from primebridge.runtime import migrate
from primebridge.runtime.db import Database

PG_URL = os.environ.get("PRIMEBRIDGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin_url() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://")


def pg_available() -> str | None:
    """``None`` when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(_pg_admin_url(), connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped afterwards."""
    reason = pg_available()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires PostgreSQL: {reason}")
        pytest.skip(reason)
    import psycopg

    name = f"pb_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = _pg_admin_url().rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables() -> tuple[str, ...]:
    """Every table of the schema, so a table added by a later migration is cleared too."""
    from primebridge.runtime.tables import Base

    return tuple(table.name for table in Base.metadata.sorted_tables)


TABLES = _tables()


@pytest.fixture
def pg_db(pg_database_url: str) -> Iterator[Database]:
    db = Database(pg_database_url)
    migrate.upgrade(db)
    from sqlalchemy import text

    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield db
    db.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'primebridge.db'}")
    migrate.upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on both stores."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    return request.getfixturevalue(name)
