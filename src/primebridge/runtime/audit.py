"""The audit log: every API call (from the connectors' audited transport) and every decision,
filed under the order it concerns, so ``primebridge audit ORDER`` tells the whole story."""

from __future__ import annotations

import time

from sqlalchemy import and_, insert, or_, select

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
        """Entries about an OMS order id or an Amazon order id, oldest first.

        A call is often filed under only one of the two ids: an Amazon event's first read of the
        order knows only the Amazon id, the OMS reads before ``createOrder`` only the OMS id. So the
        ids linked to ``order`` by any entry are followed once, and either id tells the whole story.
        """
        with self.db.transaction() as session:
            links = session.execute(select(AuditRecord.oms, AuditRecord.oms_order_id, AuditRecord.amazon_order_id)
                                    .where(or_(AuditRecord.oms_order_id == order,
                                               AuditRecord.amazon_order_id == order))
                                    .distinct()).all()
            amazon_ids = {order} | {amazon for _, _, amazon in links if amazon}
            oms_orders = {(oms, oms_id) for oms, oms_id, _ in links if oms_id}
            matches = [AuditRecord.amazon_order_id.in_(sorted(amazon_ids))]
            # The OMS id is matched together with its OMS: SAP 4711 and NetSuite 4711 are two orders.
            matches += [and_(AuditRecord.oms_order_id == oms_id,
                             AuditRecord.oms.is_(None) if oms is None else AuditRecord.oms == oms)
                        for oms, oms_id in sorted(oms_orders, key=lambda pair: (pair[0] or "", pair[1]))]
            rows = session.scalars(select(AuditRecord).where(or_(*matches))
                                   .order_by(AuditRecord.id).limit(limit)).all()
        return list(rows)
