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
