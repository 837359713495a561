"""Schema migrations with Alembic, run programmatically so no alembic.ini has to ship."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from primebridge.runtime.db import Database

# One migration may run at a time even when several processes start together on PostgreSQL.
_PG_LOCK_ID = 0x70726D62


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("primebridge.runtime") / "migrations"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = _config()
    with db.engine.begin() as connection:
        if db.is_postgres:
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def revision(db: Database, message: str) -> None:
    """Developer helper: autogenerate a migration from the tables (``primebridge db revision``)."""
    cfg = _config()
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)
