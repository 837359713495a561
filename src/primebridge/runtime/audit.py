"""The audit log: every API call (from the connectors' audited transport) and every decision,
filed under the order it concerns, so ``primebridge audit ORDER`` tells the whole story."""

from __future__ import annotations

import time

from sqlalchemy import insert, or_, select

from primebridge.connectors.http import AuditEntry
from primebridge.runtime import context
from primebridge.runtime.db import Database
from primebridge.runtime.tables import AuditRecord

_INSERT = insert(AuditRecord)


class StoreAudit:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, entry: AuditEntry) -> None:
        # One prepared Core INSERT, not an ORM object: every API call is audited, and the unit of
        # work's bookkeeping for a row that is never read back cost more than the insert itself.
        c = entry.correlation
        with self.db.statements() as connection:
            connection.execute(_INSERT, {
                "at": time.time(), "system": entry.system, "operation": entry.operation,
                "status": entry.status, "duration_ms": entry.duration_ms, "http_status": entry.http_status,
                "oms": c.oms, "oms_order_id": c.oms_order_id, "amazon_order_id": c.amazon_order_id,
                "job_id": c.job_id, "message_id": c.message_id, "request": entry.request,
                "response": entry.response})

    def note(self, operation: str, status: str, detail: str, *, system: str = "primebridge") -> None:
        self.record(AuditEntry(system=system, operation=operation, status=status, duration_ms=0.0,
                               request="", response=detail, correlation=context.current()))

    def for_order(self, order: str, limit: int = 1000) -> list[AuditRecord]:
        """Entries about an OMS order id or an Amazon order id, oldest first."""
        with self.db.transaction() as session:
            rows = session.scalars(select(AuditRecord).where(or_(
                AuditRecord.oms_order_id == order, AuditRecord.amazon_order_id == order,
            )).order_by(AuditRecord.id).limit(limit)).all()
        return list(rows)
