"""What the inventory flows keep durably: reconciliation runs with their cursor, drift-report rows,
the last applied Amazon reading per (OMS, seller SKU), and the lease that keeps two full
reconciliations from running at once.

Every method is one short transaction, so a process killed at any point leaves a run whose cursor
says how far it got and whose drift rows say which adjustments were about to be posted
(``pending``) or were posted (``posted``, with the document).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, distinct, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from primebridge.domain.inventory_rules import Decision
from primebridge.runtime.db import Database
from primebridge.runtime.tables import InventoryDrift, InventoryLock, InventoryReading, InventoryRun

RUNNING, DONE, FAILED, INTERRUPTED = "running", "done", "failed", "interrupted"
PENDING, POSTED, REPORTED, ROW_FAILED = "pending", "posted", "reported", "failed"
# Rows of action "none": the SKU was seen by the run, equal, or left alone for a newer real-time
# reading. Not part of the report; they exist so a resumed run counts a SKU it scans twice once,
# and are deleted when the run finishes (its counters keep the numbers).
EQUAL, SKIPPED = "equal", "skipped"
SEEN = "none"
LOCK_NAME = "full"


@dataclass
class Counters:
    scanned: int = 0
    equal: int = 0
    differences: int = 0
    posted: int = 0
    documents: int = 0
    unmapped: int = 0
    unknown: int = 0
    invalid: int = 0
    failed: int = 0
    skipped: int = 0
    pages: int = 0

    def add(self, other: Counters) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, text: str | None) -> Counters:
        data = json.loads(text or "{}")
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class RunInfo:
    id: int
    oms: list[str]
    trigger: str
    status: str
    started_at: float
    heartbeat_at: float
    finished_at: float | None
    cursor_position: int
    cursor_sku: str | None
    counters: Counters = field(default_factory=Counters)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    oms: str
    seller_sku: str
    oms_item: str
    quantity: Decimal
    read_at: float
    amazon_updated_at: float | None
    origin: str
    document: str | None = None


@dataclass(frozen=True, slots=True)
class DriftRow:
    run_id: int
    oms: str
    seller_sku: str
    oms_item: str | None
    amazon_quantity: str | None
    oms_quantity: str | None
    action: str
    status: str
    reference: str | None
    document: str | None
    reason: str | None


def _run(row: InventoryRun) -> RunInfo:
    return RunInfo(id=row.id, oms=[o for o in row.oms.split(",") if o], trigger=row.trigger, status=row.status,
                   started_at=row.started_at, heartbeat_at=row.heartbeat_at, finished_at=row.finished_at,
                   cursor_position=row.cursor_position, cursor_sku=row.cursor_sku,
                   counters=Counters.from_json(row.counters), error=row.error)


def _qty(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class InventoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self, table: Any) -> Any:
        return (pg_insert if self.db.is_postgres else sqlite_insert)(table)

    # -- the lease -------------------------------------------------------------------------------

    def acquire(self, holder: str, ttl: float) -> bool:
        """Take the full-reconciliation lease unless another holder's lease is still alive."""
        now = time.time()
        try:
            with self.db.transaction() as session:
                won = session.execute(update(InventoryLock).where(
                    InventoryLock.name == LOCK_NAME,
                    (InventoryLock.expires_at <= now) | (InventoryLock.holder == holder),
                ).values(holder=holder, expires_at=now + ttl, run_id=None)).rowcount
                if won:
                    return True
                if session.get(InventoryLock, LOCK_NAME) is None:
                    session.execute(insert(InventoryLock).values(name=LOCK_NAME, holder=holder,
                                                                 expires_at=now + ttl))
                    return True
        except IntegrityError:
            return False
        return False

    def take_over(self, dead_holder: str, holder: str, ttl: float) -> bool:
        """Take the lease from a holder known to be dead (its process is gone), without waiting for
        its lease to expire; conditional, so two processes cannot both take it."""
        with self.db.transaction() as session:
            return bool(session.execute(update(InventoryLock).where(
                InventoryLock.name == LOCK_NAME, InventoryLock.holder == dead_holder,
            ).values(holder=holder, expires_at=time.time() + ttl, run_id=None)).rowcount)

    def renew(self, holder: str, ttl: float, run_id: int | None = None) -> bool:
        with self.db.transaction() as session:
            values: dict[str, Any] = {"expires_at": time.time() + ttl}
            if run_id is not None:
                values["run_id"] = run_id
            return bool(session.execute(update(InventoryLock).where(
                InventoryLock.name == LOCK_NAME, InventoryLock.holder == holder).values(**values)).rowcount)

    def release(self, holder: str) -> None:
        with self.db.transaction() as session:
            session.execute(update(InventoryLock).where(
                InventoryLock.name == LOCK_NAME, InventoryLock.holder == holder).values(expires_at=0.0, holder=None))

    def lock_holder(self) -> tuple[str | None, int | None, float]:
        with self.db.transaction() as session:
            row = session.get(InventoryLock, LOCK_NAME)
            return (row.holder, row.run_id, row.expires_at) if row else (None, None, 0.0)

    # -- runs ------------------------------------------------------------------------------------

    def start_run(self, oms: list[str], trigger: str) -> RunInfo:
        now = time.time()
        with self.db.transaction() as session:
            # A new run makes every unfinished one unresumable (only the newest run resumes): drop
            # their seen-rows, which only a resume would have counted.
            session.execute(delete(InventoryDrift).where(
                InventoryDrift.run_id.in_(select(InventoryRun.id).where(InventoryRun.status != DONE)),
                InventoryDrift.action == SEEN))
            row = InventoryRun(oms=",".join(oms), trigger=trigger, status=RUNNING, started_at=now, heartbeat_at=now,
                               cursor_position=0, counters=json.dumps(Counters().as_dict()))
            session.add(row)
            session.flush()
            return _run(row)

    def get_run(self, run_id: int) -> RunInfo | None:
        with self.db.transaction() as session:
            row = session.get(InventoryRun, run_id)
            return _run(row) if row else None

    def runs(self, limit: int = 20) -> list[RunInfo]:
        with self.db.transaction() as session:
            rows = session.scalars(select(InventoryRun).order_by(InventoryRun.id.desc()).limit(limit)).all()
            return [_run(row) for row in rows]

    def unfinished_run(self) -> RunInfo | None:
        """The newest run that did not finish (killed, or stopped by an error): the one to resume."""
        with self.db.transaction() as session:
            row = session.scalars(select(InventoryRun).where(InventoryRun.status.in_((RUNNING, INTERRUPTED, FAILED)))
                                  .order_by(InventoryRun.id.desc()).limit(1)).first()
            newest = session.scalars(select(InventoryRun).order_by(InventoryRun.id.desc()).limit(1)).first()
            # Only the newest run may be resumed: a run finished after it has seen a fresher catalogue.
            return _run(row) if row is not None and newest is not None and row.id == newest.id else None

    def resume_run(self, run_id: int) -> RunInfo:
        with self.db.transaction() as session:
            row = session.get(InventoryRun, run_id)
            if row is None:
                raise LookupError(f"inventory run {run_id} does not exist")
            row.status = RUNNING
            row.heartbeat_at = time.time()
            row.error = None
            row.finished_at = None
            return _run(row)

    def advance(self, run_id: int, position: int, sku: str | None, counters: Counters) -> None:
        """The scan is durably done up to ``position`` (the number of summaries before the cursor)."""
        with self.db.transaction() as session:
            session.execute(update(InventoryRun).where(InventoryRun.id == run_id).values(
                cursor_position=position, cursor_sku=sku, counters=json.dumps(counters.as_dict()),
                heartbeat_at=time.time()))

    def finish_run(self, run_id: int, status: str, counters: Counters, error: str | None = None) -> None:
        """A finished (``done``) run loses its seen-rows in the same transaction: its counters,
        taken from ``tally`` before, hold what they counted."""
        now = time.time()
        with self.db.transaction() as session:
            session.execute(update(InventoryRun).where(InventoryRun.id == run_id).values(
                status=status, counters=json.dumps(counters.as_dict()), error=error, heartbeat_at=now,
                finished_at=now if status == DONE else None))
            if status == DONE:
                session.execute(delete(InventoryDrift).where(InventoryDrift.run_id == run_id,
                                                             InventoryDrift.action == SEEN))

    # -- drift rows ------------------------------------------------------------------------------

    def record(self, run_id: int, oms: str, decisions: Iterable[Decision], status_for: dict[str, str], *,
               skipped: Iterable[str] = ()) -> set[str]:
        """Upsert one row per decision. ``status_for`` maps an action to the row status (``pending``
        for an adjustment about to be posted, ``reported`` otherwise). Equal decisions (and the
        ``skipped`` SKUs, left alone for a newer real-time reading) become seen-rows, which never
        replace a row that is ``pending`` or ``posted``: a SKU rescanned after its adjustment is
        equal *because* of it, and its row keeps the document.

        Returns the seller SKUs whose reportable row is new. Their references were never sent to
        the OMS (a row is written before its document is posted), so their post may skip the OMS's
        lookup of earlier documents. The insert decides it, under the table's unique key, so two
        workers that see the same SKU (a scan restarted over a changed catalogue) cannot both think so."""
        now = time.time()
        rows, seen = [], []
        for d in decisions:
            row = {"run_id": run_id, "oms": oms, "seller_sku": d.seller_sku, "oms_item": d.oms_item,
                   "amazon_quantity": _qty(d.amazon_quantity), "oms_quantity": _qty(d.oms_quantity),
                   "action": str(d.action), "status": status_for.get(str(d.action), REPORTED),
                   "reference": d.adjustment.reference if d.adjustment else None, "document": None,
                   "reason": d.reason or None, "updated_at": now}
            if row["action"] == SEEN:
                row["status"] = EQUAL
                seen.append(row)
            else:
                rows.append(row)
        seen += [{"run_id": run_id, "oms": oms, "seller_sku": sku, "oms_item": None, "amazon_quantity": None,
                  "oms_quantity": None, "action": SEEN, "status": SKIPPED, "reference": None, "document": None,
                  "reason": None, "updated_at": now} for sku in skipped]
        key = ["run_id", "oms", "seller_sku"]
        columns = ("oms_item", "amazon_quantity", "oms_quantity", "action", "status", "reference", "document",
                   "reason", "updated_at")
        create = self._insert(InventoryDrift).on_conflict_do_nothing(index_elements=key) \
            .returning(InventoryDrift.seller_sku)
        statement = self._insert(InventoryDrift)
        statement = statement.on_conflict_do_update(
            index_elements=key, set_={name: statement.excluded[name] for name in columns})
        see = self._insert(InventoryDrift)
        see = see.on_conflict_do_update(index_elements=key, set_={name: see.excluded[name] for name in columns},
                                        where=(InventoryDrift.status != PENDING) & (InventoryDrift.status != POSTED))
        created: set[str] = set()
        if not rows and not seen:
            return created
        with self.db.statements() as connection:
            if rows:
                created = set(connection.execute(create, rows).scalars())
                rest = [row for row in rows if row["seller_sku"] not in created]
                if rest:
                    connection.execute(statement, rest)
            if seen:
                connection.execute(see, seen)
        return created

    def settle(self, run_id: int, oms: str, skus: list[str], *, status: str, documents: dict[str, str] | None = None,
               action: str | None = None, reason: str | None = None, readings: list[Reading] | None = None) -> None:
        """Set the rows' outcome, each row with its own document (``documents``: seller SKU → the
        OMS document that holds its adjustment; none for the others), and save ``readings`` (what a
        posted document applied) in the same transaction: one commit per post instead of two."""
        by_document: dict[str | None, list[str]] = {}
        for sku in skus:
            by_document.setdefault((documents or {}).get(sku), []).append(sku)
        now = time.time()
        with self.db.statements() as connection:
            for document, group in by_document.items():
                values: dict[str, Any] = {"status": status, "document": document, "updated_at": now}
                if action is not None:
                    values["action"] = action
                if reason is not None:
                    values["reason"] = reason
                for start in range(0, len(group), 500):
                    connection.execute(update(InventoryDrift).where(
                        InventoryDrift.run_id == run_id, InventoryDrift.oms == oms,
                        InventoryDrift.seller_sku.in_(group[start:start + 500])).values(**values))
            if readings:
                self._save_readings(connection, readings)

    def tally(self, run_id: int) -> Counters:
        """The run's outcome counted from its rows, one per SKU and OMS: exact even when pages were
        processed twice (before a kill and again after the resume, or over a catalogue that shifted)."""
        counts = Counters()
        t = InventoryDrift.__table__.c
        with self.db.statements() as connection:
            rows = connection.execute(select(t.action, t.status, func.count()).where(t.run_id == run_id)
                                      .group_by(t.action, t.status)).all()
            counts.scanned = int(connection.scalar(select(func.count(distinct(t.seller_sku)))
                                                   .where(t.run_id == run_id)) or 0)
            # One document id per row (the document that holds that row's adjustment).
            counts.documents = int(connection.scalar(select(func.count(distinct(t.document))).where(
                t.run_id == run_id, t.status == POSTED)) or 0)
        for action, status, count in rows:
            if action in ("increase", "decrease"):
                counts.differences += count
                if status == POSTED:
                    counts.posted += count
            elif action == "failed":
                counts.failed += count
            elif action in ("unmapped", "unknown", "invalid"):
                setattr(counts, action, getattr(counts, action) + count)
            elif action == SEEN:
                if status == EQUAL:
                    counts.equal += count
                elif status == SKIPPED:
                    counts.skipped += count
        return counts

    def pending(self, run_id: int) -> list[DriftRow]:
        with self.db.transaction() as session:
            rows = session.scalars(select(InventoryDrift).where(
                InventoryDrift.run_id == run_id, InventoryDrift.status == PENDING).order_by(InventoryDrift.id)).all()
            return [_drift(row) for row in rows]

    def existing(self, run_id: int, oms: str, skus: list[str]) -> dict[str, DriftRow]:
        with self.db.transaction() as session:
            rows = session.scalars(select(InventoryDrift).where(
                InventoryDrift.run_id == run_id, InventoryDrift.oms == oms,
                InventoryDrift.seller_sku.in_(skus))).all()
            return {row.seller_sku: _drift(row) for row in rows}

    def drift_rows(self, run_id: int, batch: int = 5000) -> Iterator[DriftRow]:
        """Every row of a run in a stable order, read in batches so a report of a large catalogue
        never sits in memory at once. Plain Core rows, not ORM objects: a 100k-SKU run has 200k rows
        to write into its report, and the ORM's identity map would cost more than the query."""
        t = InventoryDrift.__table__.c
        columns = (t.id, t.run_id, t.oms, t.seller_sku, t.oms_item, t.amazon_quantity, t.oms_quantity, t.action,
                   t.status, t.reference, t.document, t.reason)
        last = 0
        while True:
            with self.db.statements() as connection:
                rows = connection.execute(select(*columns).where(t.run_id == run_id, t.id > last, t.action != SEEN)
                                          .order_by(t.id).limit(batch)).all()
            if rows:
                last = rows[-1][0]
            yield from (DriftRow(*row[1:]) for row in rows)
            if len(rows) < batch:
                return

    # -- last applied readings -------------------------------------------------------------------

    def readings(self, oms: str, skus: list[str]) -> dict[str, Reading]:
        if not skus:
            return {}
        with self.db.transaction() as session:
            rows = session.scalars(select(InventoryReading).where(
                InventoryReading.oms == oms, InventoryReading.seller_sku.in_(skus))).all()
            return {row.seller_sku: Reading(row.oms, row.seller_sku, row.oms_item, Decimal(row.quantity),
                                            row.read_at, row.amazon_updated_at, row.origin, row.document)
                    for row in rows}

    def save_readings(self, readings: list[Reading]) -> None:
        """Upsert, keeping the newer reading when one from a later read is there already."""
        if not readings:
            return
        with self.db.statements() as connection:
            self._save_readings(connection, readings)

    def _save_readings(self, connection: Connection, readings: list[Reading]) -> None:
        statement = self._insert(InventoryReading)
        statement = statement.on_conflict_do_update(
            index_elements=["oms", "seller_sku"],
            set_={name: statement.excluded[name] for name in
                  ("oms_item", "quantity", "read_at", "amazon_updated_at", "origin", "document")},
            where=InventoryReading.read_at <= statement.excluded.read_at)
        rows = [{"oms": r.oms, "seller_sku": r.seller_sku, "oms_item": r.oms_item, "quantity": str(r.quantity),
                 "read_at": r.read_at, "amazon_updated_at": r.amazon_updated_at, "origin": r.origin,
                 "document": r.document} for r in readings]
        connection.execute(statement, rows)


def _drift(row: InventoryDrift) -> DriftRow:
    return DriftRow(run_id=row.run_id, oms=row.oms, seller_sku=row.seller_sku, oms_item=row.oms_item,
                    amazon_quantity=row.amazon_quantity, oms_quantity=row.oms_quantity, action=row.action,
                    status=row.status, reference=row.reference, document=row.document, reason=row.reason)
