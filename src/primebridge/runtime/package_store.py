"""The package flows' store: Amazon order → OMS order, package → OMS document, applied cancellations.

Everything lives in the ``xrefs`` table (no migration): kind ``package`` rows are keyed
``<oms order id>/<package id>`` with the package id as ``amazon_key`` and the document and what was
recorded on it in ``detail``; kind ``cancellation`` rows hold, per OMS order, the cancelled totals
last applied to the OMS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from primebridge.ports import OrderLink, PackageRecord
from primebridge.runtime.store import ORDER, SqlStore, xref_upsert
from primebridge.runtime.tables import Xref

PACKAGE, CANCELLATION = "package", "cancellation"


def _package_key(oms_order_id: str, package_id: str) -> str:
    return f"{oms_order_id}/{package_id}"


class SqlPackageStore:
    """``PackageStore`` on the shared database; links and notes come from the fulfil flow's store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.db = store.db

    def oms_order_for(self, amazon_order_id: str) -> tuple[str, str] | None:
        with self.db.statements() as connection:
            row = connection.execute(select(Xref.oms, Xref.oms_key).where(
                Xref.kind == ORDER, Xref.amazon_key == amazon_order_id).order_by(Xref.id)).first()
        return (row.oms, row.oms_key) if row else None

    def get_order_link(self, oms: str, oms_order_id: str) -> OrderLink | None:
        return self.store.get_order_link(oms, oms_order_id)

    def note(self, operation: str, status: str, detail: str) -> None:
        self.store.note(operation, status, detail)

    # -- packages ---------------------------------------------------------------------------------

    def get_package(self, oms: str, oms_order_id: str, package_id: str) -> PackageRecord | None:
        with self.db.statements() as connection:
            row = connection.execute(select(Xref.oms_key, Xref.amazon_key, Xref.detail).where(
                Xref.kind == PACKAGE, Xref.oms == oms,
                Xref.oms_key == _package_key(oms_order_id, package_id))).first()
        return _record(oms, row.detail) if row else None

    def save_package(self, record: PackageRecord) -> None:
        detail = {"oms_order_id": record.oms_order_id, "amazon_order_id": record.amazon_order_id,
                  "package_id": record.package_id, "document_id": record.document_id,
                  "tracking": record.tracking, "delivered_at": record.delivered_at,
                  "failure": record.failure, "alias_written": record.alias_written}
        self._upsert({"kind": PACKAGE, "oms": record.oms,
                      "oms_key": _package_key(record.oms_order_id, record.package_id),
                      "amazon_key": record.package_id, "state": record.state, "detail": json.dumps(detail)})

    def packages(self, oms: str | None = None, oms_order_id: str | None = None) -> list[PackageRecord]:
        """Package records in the order they were first stored (for the demo and operators)."""
        query = select(Xref.oms, Xref.detail).where(Xref.kind == PACKAGE).order_by(Xref.id)
        if oms:
            query = query.where(Xref.oms == oms)
        if oms and oms_order_id:
            query = query.where(Xref.oms_key.startswith(f"{oms_order_id}/", autoescape=True))
        with self.db.statements() as connection:
            rows = connection.execute(query).all()
        return [_record(row.oms, row.detail) for row in rows]

    # -- cancellations ----------------------------------------------------------------------------

    def get_cancellations(self, oms: str, oms_order_id: str) -> dict[str, Decimal] | None:
        with self.db.statements() as connection:
            detail = connection.execute(select(Xref.detail).where(
                Xref.kind == CANCELLATION, Xref.oms == oms, Xref.oms_key == oms_order_id)).scalar()
        if detail is None:
            return None
        return {line: Decimal(qty) for line, qty in json.loads(detail)["totals"].items()}

    def save_cancellations(self, oms: str, oms_order_id: str, amazon_order_id: str,
                           totals: Mapping[str, Decimal]) -> None:
        detail = json.dumps({"totals": {line: str(qty) for line, qty in totals.items()}})
        self._upsert({"kind": CANCELLATION, "oms": oms, "oms_key": oms_order_id, "amazon_key": amazon_order_id,
                      "state": "applied", "detail": detail})

    def _upsert(self, row: dict[str, Any]) -> None:
        with self.db.statements() as connection:
            connection.execute(xref_upsert(self.db.dialect, False), [{**row, "updated_at": time.time()}])


def _record(oms: str, detail: str | None) -> PackageRecord:
    data = json.loads(detail or "{}")
    return PackageRecord(oms=oms, oms_order_id=data["oms_order_id"], amazon_order_id=data["amazon_order_id"],
                         package_id=data["package_id"], document_id=data["document_id"],
                         tracking=data.get("tracking"), delivered_at=data.get("delivered_at"),
                         failure=data.get("failure"), alias_written=bool(data.get("alias_written")))
