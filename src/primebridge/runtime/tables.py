"""The durable store's tables. Times that the queue compares are epoch seconds (``Double``) so the
same SQL orders and compares them on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Message(Base):
    """Every inbound message, stored before it is acknowledged; ``(source, source_id)`` dedupes."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_messages_source"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Double)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "id"),
        Index("ix_jobs_key", "ordering_key", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    ordering_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[float] = mapped_column(Double)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)


class JobAttempt(Base):
    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)


class Xref(Base):
    """Cross-reference of an OMS document to its Amazon counterpart (orders, lines; later packages,
    returns, refunds). ``state`` records intent before a remote call, so a crash is resumable."""

    __tablename__ = "xrefs"
    __table_args__ = (
        UniqueConstraint("kind", "oms", "oms_key", name="uq_xrefs_oms"),
        Index("ix_xrefs_amazon", "kind", "amazon_key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    oms: Mapped[str] = mapped_column(String(32))
    oms_key: Mapped[str] = mapped_column(String(255))
    amazon_key: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Double)


class AuditRecord(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double)
    system: Mapped[str] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[float | None] = mapped_column(Double)
    http_status: Mapped[int | None] = mapped_column(Integer)
    oms: Mapped[str | None] = mapped_column(String(32))
    oms_order_id: Mapped[str | None] = mapped_column(String(255), index=True)
    amazon_order_id: Mapped[str | None] = mapped_column(String(255), index=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    request: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)


class Watermark(Base):
    __tablename__ = "watermarks"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Double)


class ScheduleRun(Base):
    """One row per schedule; a conditional update on it elects the one process that runs it now."""

    __tablename__ = "schedule_runs"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_run_at: Mapped[float] = mapped_column(Double)
    runner: Mapped[str | None] = mapped_column(String(128))


class AmazonEventRow(Base):
    """A received Buy with Prime event: its parsed fields and outcome. The raw body is the
    ``messages`` row (source ``amazon-event``, ``source_id`` = the event id), which dedupes."""

    __tablename__ = "amazon_events"
    __table_args__ = (
        Index("ix_amazon_events_received", "received_at"),
        Index("ix_amazon_events_order", "order_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(255))
    ordering_key: Mapped[str] = mapped_column(String(255))
    event_time: Mapped[float | None] = mapped_column(Double)
    received_at: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[float] = mapped_column(Double)


# -- inventory (migration 0003) ------------------------------------------------------------------

class InventoryRun(Base):
    """One full reconciliation: its cursor (how far the scan is durably done) makes it resumable."""

    __tablename__ = "inventory_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    oms: Mapped[str] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Double)
    heartbeat_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    cursor_position: Mapped[int] = mapped_column(Integer, default=0)
    cursor_sku: Mapped[str | None] = mapped_column(String(255))
    counters: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class InventoryDrift(Base):
    """A drift-report row: every SKU of a run that was not equal (adjusted, unmapped, unknown, ...)."""

    __tablename__ = "inventory_drift"
    __table_args__ = (UniqueConstraint("run_id", "oms", "seller_sku", name="uq_inventory_drift"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("inventory_runs.id"))
    oms: Mapped[str] = mapped_column(String(32))
    seller_sku: Mapped[str] = mapped_column(String(255))
    oms_item: Mapped[str | None] = mapped_column(String(255))
    amazon_quantity: Mapped[str | None] = mapped_column(String(32))
    oms_quantity: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(64))
    document: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Double)


class InventoryReading(Base):
    """The last Amazon reading applied to an OMS item, per (OMS, seller SKU): an event older than it
    is stale, and a full scan page fetched before it must not overwrite it."""

    __tablename__ = "inventory_readings"

    oms: Mapped[str] = mapped_column(String(32), primary_key=True)
    seller_sku: Mapped[str] = mapped_column(String(255), primary_key=True)
    oms_item: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[str] = mapped_column(String(32))
    read_at: Mapped[float] = mapped_column(Double)
    amazon_updated_at: Mapped[float | None] = mapped_column(Double)
    origin: Mapped[str] = mapped_column(String(64))
    document: Mapped[str | None] = mapped_column(String(255))


class InventoryLock(Base):
    """One row: the full reconciliation in progress. Two at once could both read the same OMS
    quantity and both post the same difference, so a run takes this lease first."""

    __tablename__ = "inventory_lock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Double)
