"""Alembic environment: the URL comes from the caller (``primebridge db upgrade``), never a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from primebridge.runtime.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through primebridge.runtime.migrate.upgrade()")
_run(connection)
