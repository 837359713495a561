"""The package flows' SQL store: resolution of Amazon orders, package records, cancellation totals."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from primebridge.ports import LinkState, OrderLink, PackageRecord
from primebridge.runtime.audit import StoreAudit
from primebridge.runtime.db import Database
from primebridge.runtime.package_store import SqlPackageStore
from primebridge.runtime.store import SqlStore


def _store(db: Database) -> SqlPackageStore:
    return SqlPackageStore(SqlStore(db, StoreAudit(db), max_attempts=3))


def test_amazon_order_resolves_to_the_linked_oms_order(any_db: Database) -> None:
    store = _store(any_db)
    assert store.oms_order_for("322-1") is None
    store.store.save_order_link(OrderLink(oms="sap", oms_order_id="4711", state=LinkState.WRITTEN_BACK,
                                          amazon_order_id="322-1", line_ids={"10": "L1"}))
    assert store.oms_order_for("322-1") == ("sap", "4711")
    link = store.get_order_link("sap", "4711")
    assert link is not None and link.line_ids == {"10": "L1"}
    # The line cross-references share the table but never resolve as an order.
    assert store.oms_order_for("L1") is None


def test_package_records_round_trip_and_are_upserted(any_db: Database) -> None:
    store = _store(any_db)
    record = PackageRecord(oms="netsuite", oms_order_id="SO1", amazon_order_id="322-1", package_id="P1",
                           document_id="IF9")
    store.save_package(record)
    assert store.get_package("netsuite", "SO1", "P1") == record
    assert store.get_package("sap", "SO1", "P1") is None
    delivered = replace(record, tracking="abc", delivered_at="2025-03-01T00:00:00+00:00", alias_written=True)
    store.save_package(delivered)
    assert store.get_package("netsuite", "SO1", "P1") == delivered
    assert store.packages("netsuite", "SO1") == [delivered]
    assert store.packages() == [delivered]
    store.save_package(PackageRecord(oms="netsuite", oms_order_id="SO1_", amazon_order_id="322-2",
                                     package_id="P2", document_id="IF10"))
    assert [r.package_id for r in store.packages("netsuite", "SO1")] == ["P1"]  # "SO1_" is another order


def test_cancellation_totals_round_trip_exactly(any_db: Database) -> None:
    store = _store(any_db)
    assert store.get_cancellations("sap", "4711") is None
    store.save_cancellations("sap", "4711", "322-1", {"10": Decimal("1.5"), "20": Decimal(2)})
    assert store.get_cancellations("sap", "4711") == {"10": Decimal("1.5"), "20": Decimal(2)}
    store.save_cancellations("sap", "4711", "322-1", {"10": Decimal(3)})
    assert store.get_cancellations("sap", "4711") == {"10": Decimal(3)}
