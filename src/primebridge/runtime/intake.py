"""Storing an inbound message and the jobs it causes in one transaction, before acknowledging it.

A message is deduplicated by ``(source, source_id)``: a redelivery is acknowledged and does
nothing, so the sender's retries are harmless and nothing is processed twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from primebridge.runtime import jobs
from primebridge.runtime.db import Database
from primebridge.runtime.store import SYNC_ORDER, order_key
from primebridge.runtime.tables import Message

ACCEPTED, DUPLICATE, IGNORED = "accepted", "duplicate", "ignored"


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: int
    status: str
    jobs: int


def accept_order_change(db: Database, *, source: str, source_id: str, kind: str, payload: str,
                        oms: str, order_id: str, max_attempts: int) -> Receipt:
    """Store the message and enqueue "sync order" for it, atomically."""
    try:
        with db.transaction(durable=True) as session:
            message = Message(source=source, source_id=source_id[:255], kind=kind, payload=payload,
                              status=ACCEPTED, received_at=time.time())
            session.add(message)
            session.flush()
            job = jobs.enqueue(session, SYNC_ORDER, {"oms": oms, "order_id": order_id},
                               ordering_key=order_key(oms, order_id), max_attempts=max_attempts,
                               message_id=message.id, coalesce=True)
            if job is None:
                message.note = "a sync of this order was already waiting"
            return Receipt(message.id, ACCEPTED, int(job is not None))
    except IntegrityError:
        with db.transaction() as session:
            existing = session.scalar(select(Message.id).where(
                Message.source == source, Message.source_id == source_id[:255]))
        if existing is None:
            raise
        return Receipt(existing, DUPLICATE, 0)
