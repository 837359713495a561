"""The audit log's lookup by order: an OMS id and the Amazon id it is linked to tell the same story."""

from __future__ import annotations

from primebridge.runtime import context
from primebridge.runtime.audit import StoreAudit
from primebridge.runtime.db import Database


def test_either_id_finds_the_calls_filed_under_only_the_other(any_db: Database) -> None:
    audit = StoreAudit(any_db)
    with context.correlated(oms="sap", oms_order_id="4711", job_id=1):
        audit.note("read order", "ok", "before createOrder: only the OMS id is known")
        context.add(amazon_order_id="322-1")
        audit.note("create", "ok", "both ids")
    with context.correlated(amazon_order_id="322-1", job_id=2):
        audit.note("graphql order", "ok", "an Amazon event's first read: only the Amazon id")
    # Another OMS's order with the same number, and another Amazon order, stay out.
    with context.correlated(oms="netsuite", oms_order_id="4711", amazon_order_id="322-2", job_id=3):
        audit.note("create", "ok", "netsuite order 4711")
    with context.correlated(amazon_order_id="322-3", job_id=4):
        audit.note("graphql order", "ok", "unrelated")

    by_amazon = [r.response for r in audit.for_order("322-1")]
    assert by_amazon == ["before createOrder: only the OMS id is known", "both ids",
                         "an Amazon event's first read: only the Amazon id"]
    by_oms = [r.response for r in audit.for_order("4711")]
    # An OMS number alone does not say which OMS: both orders 4711 are listed, each with its own story.
    assert by_oms == [*by_amazon, "netsuite order 4711"]
    assert audit.for_order("nothing") == []
