"""The SQL implementation of the flows' store port (cross-references, watermarks, jobs, notes)."""

from __future__ import annotations

import json
import time
from functools import cache

from sqlalchemy import Executable, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from primebridge.domain.errors import PermanentError
from primebridge.domain.model import Alias
from primebridge.ports import LinkState, OrderLink
from primebridge.runtime import jobs
from primebridge.runtime.audit import StoreAudit
from primebridge.runtime.db import Database
from primebridge.runtime.tables import Watermark, Xref

ORDER, LINE = "order", "line"
SYNC_ORDER = "fulfill.sync_order"


def order_key(oms: str, order_id: str) -> str:
    """The ordering key: every job about one OMS order runs one at a time, in order."""
    return f"{oms}:order:{order_id}"


@cache
def xref_upsert(dialect: str, keep_detail: bool) -> Executable:
    """INSERT ... ON CONFLICT DO UPDATE of an ``xrefs`` row (also the package store's). Built once per
    dialect: SQLAlchemy then reuses its compiled form instead of compiling anew."""
    if dialect not in ("postgresql", "sqlite"):
        raise PermanentError(f"the store supports SQLite and PostgreSQL, not {dialect}")
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(Xref)
    columns = ("amazon_key", "state", "updated_at") + (() if keep_detail else ("detail",))
    return statement.on_conflict_do_update(index_elements=["kind", "oms", "oms_key"],
                                           set_={name: statement.excluded[name] for name in columns})


class SqlStore:
    def __init__(self, db: Database, audit: StoreAudit, *, max_attempts: int) -> None:
        self.db = db
        self.audit = audit
        self.max_attempts = max_attempts

    # -- cross-references ----------------------------------------------------------------------

    def get_order_link(self, oms: str, oms_order_id: str) -> OrderLink | None:
        with self.db.statements() as connection:
            row = connection.execute(select(Xref.state, Xref.amazon_key, Xref.detail).where(
                Xref.kind == ORDER, Xref.oms == oms, Xref.oms_key == oms_order_id)).first()
        if row is None:
            return None
        detail = json.loads(row.detail or "{}")
        alias = detail.get("alias")
        return OrderLink(
            oms=oms, oms_order_id=oms_order_id, state=LinkState(row.state),
            alias=Alias(alias[0], alias[1]) if alias else None, amazon_order_id=row.amazon_key,
            line_ids=detail.get("line_ids", {}), fingerprint=detail.get("fingerprint"),
            reason=detail.get("reason"))

    def save_order_link(self, link: OrderLink) -> None:
        now = time.time()
        detail = json.dumps({
            "alias": [link.alias.alias_type, link.alias.alias_id] if link.alias else None,
            "line_ids": link.line_ids, "fingerprint": link.fingerprint, "reason": link.reason,
        })
        order_row = {"kind": ORDER, "oms": link.oms, "oms_key": link.oms_order_id,
                     "amazon_key": link.amazon_order_id, "state": str(link.state), "detail": detail,
                     "updated_at": now}
        line_rows = [{"kind": LINE, "oms": link.oms, "oms_key": f"{link.oms_order_id}/{oms_line}",
                      "amazon_key": amazon_line, "state": "linked", "detail": None, "updated_at": now}
                     for oms_line, amazon_line in link.line_ids.items()]
        # INSERT ... ON CONFLICT DO UPDATE with one compiled statement for every call: a link is
        # saved three times per order, and the ORM's select-then-write per row was a quarter of a
        # worker's CPU. It is also safe against a concurrent insert of the same row (a worker that
        # lost its lease).
        with self.db.statements() as connection:
            connection.execute(xref_upsert(self.db.dialect, False), [order_row])
            if line_rows:
                connection.execute(xref_upsert(self.db.dialect, True), line_rows)

    def order_links(self, oms: str | None = None) -> list[OrderLink]:
        with self.db.transaction() as session:
            query = select(Xref.oms, Xref.oms_key).where(Xref.kind == ORDER).order_by(Xref.id)
            if oms:
                query = query.where(Xref.oms == oms)
            keys = session.execute(query).all()
        return [link for o, k in keys if (link := self.get_order_link(o, k)) is not None]

    # -- notes, watermarks, jobs ----------------------------------------------------------------

    def note(self, operation: str, status: str, detail: str) -> None:
        self.audit.note(operation, status, detail)

    def get_watermark(self, name: str) -> str | None:
        with self.db.transaction() as session:
            row = session.get(Watermark, name)
            return row.value if row else None

    def enqueue_order_syncs(self, oms: str, order_ids: list[str], *, watermark: tuple[str, str] | None,
                            message_id: int | None = None) -> int:
        added = 0
        with self.db.transaction() as session:
            for order_id in order_ids:
                job_id = jobs.enqueue(session, SYNC_ORDER, {"oms": oms, "order_id": order_id},
                                      ordering_key=order_key(oms, order_id),
                                      max_attempts=self.max_attempts, message_id=message_id, coalesce=True)
                added += job_id is not None
            if watermark is not None:
                name, value = watermark
                row = session.get(Watermark, name)
                if row is None:
                    session.add(Watermark(name=name, value=value, updated_at=time.time()))
                elif value > row.value:
                    row.value, row.updated_at = value, time.time()
        return added
