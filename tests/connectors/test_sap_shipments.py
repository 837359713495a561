"""``SapShipments`` (the SAP ``ShipmentDocuments``) against the real SAP sandbox: one outbound delivery per
Amazon package whatever is repeated, tracking/delivered/failure texts, item rejection and quantity
reduction applied twice = once, and SAP's errors turned into clear domain errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from tests.sandbox import sap_fixtures
from tests.sandbox.sap_fixtures import Track, sap_config, seed

from primebridge.config import SapShipmentsConfig
from primebridge.connectors.sap import build_sap_shipments
from primebridge.connectors.sap.deliveries import DeliveryLine, OutboundDeliveries
from primebridge.connectors.sap.shipments import SapShipments, milestone_text
from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.domain.packages import (
    CancellationReason,
    LineCancellation,
    Milestone,
    Shipment,
    ShipmentLine,
    Tracker,
)
from primebridge.sandbox.server import ThreadedServer

sap_server = sap_fixtures.sap_server
admin = sap_fixtures.admin
track = sap_fixtures.track

PACKAGE = "95c933bf-1d2e-4f60-9a6b-0c1d2e3f4a5b"  # 36 characters, like the ids in BwP events
ETA = datetime(2031, 3, 4, 15, 30, tzinfo=UTC)


def shipments(url: str, track: Track, **changes: Any) -> SapShipments:
    return track(build_sap_shipments(sap_config(url, **changes)))


def shipment(order_id: str, package: str = PACKAGE, lines: tuple[tuple[str, str], ...] = (("10", "1"),),
             **kw: Any) -> Shipment:
    values: dict[str, Any] = {"carrier_code": "UPS", "tracking_number": "1Z999AA10123456784",
                              "tracking_url": "https://track.example/1Z999", "estimated_delivery": ETA}
    values.update(kw)
    return Shipment("sap", order_id, package, tuple(ShipmentLine(i, Decimal(q)) for i, q in lines), **values)


def deliveries(admin: httpx.Client, order_id: str | None = None) -> list[dict[str, Any]]:
    params = {"order": order_id} if order_id else {}
    return list(admin.get("/_sandbox/deliveries", params=params).json()["deliveries"])


def delivery(admin: httpx.Client, doc: str) -> dict[str, Any]:
    return dict(admin.get(f"/_sandbox/deliveries/{doc}").json())


def stats(admin: httpx.Client) -> dict[str, int]:
    return dict(admin.get("/_sandbox/stats").json())


def item(admin: httpx.Client, order_id: str, item_id: str) -> dict[str, Any]:
    view = admin.get(f"/_sandbox/sales-orders/{order_id}").json()
    return next(i for i in view["items"] if i["SalesOrderItem"] == item_id)


def text_writes(admin: httpx.Client) -> int:
    counters = stats(admin)
    return counters.get("POST A_OutbDeliveryHeaderText", 0) + counters.get("PATCH A_OutbDeliveryHeaderText", 0)


# -- shipping ----------------------------------------------------------------------------------------

def test_create_shipment_makes_one_complete_delivery(sap_server: ThreadedServer, admin: httpx.Client,
                                                     track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)

    doc = adapter.create_shipment(shipment(order_id, lines=(("10", "2"), ("20", "1"))))

    view = delivery(admin, doc)
    assert view["orders"] == [order_id]
    assert [(i["ReferenceSDDocumentItem"], i["ActualDeliveryQuantity"], i["DeliveryQuantityUnit"])
            for i in view["items"]] == [("10", "2", "PC"), ("20", "1", "PC")]
    assert view["texts"] == {"Z101": PACKAGE, "Z102": "Carrier: UPS\nTracking number: 1Z999AA10123456784\n"
                                                      "Tracking URL: https://track.example/1Z999"}
    assert view["BillOfLading"] == "1Z999AA10123456784"
    assert view["DeliveryDate"].startswith("2031-03-04")
    assert view["goods_issued"] is True and len(view["goods_movements"]) == 2
    assert adapter.find_shipment(order_id, PACKAGE) == doc
    assert adapter.find_shipment(order_id, "another-package") is None
    assert item(admin, order_id, "10")["DeliveryStatus"] == "C"


def test_duplicate_create_returns_the_same_delivery(sap_server: ThreadedServer, admin: httpx.Client,
                                                    track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    first = adapter.create_shipment(shipment(order_id))
    before = stats(admin)

    # A second adapter (another worker, or the process after a restart) sees the same delivery.
    again = shipments(sap_server.url, track).create_shipment(shipment(order_id))

    after = stats(admin)
    assert again == first
    assert len(deliveries(admin, order_id)) == 1
    assert after["deliveries_created"] == before["deliveries_created"] == 1
    assert after["goods_issues_posted"] == before["goods_issues_posted"] == 1
    assert after.get("PATCH A_OutbDeliveryHeader", 0) == before.get("PATCH A_OutbDeliveryHeader", 0)


def test_a_retry_after_a_crash_completes_the_delivery_without_a_second_one(sap_server: ThreadedServer,
                                                                           admin: httpx.Client,
                                                                           track: Track) -> None:
    """The deep insert (with the package text) succeeded, then the process died before the tracking
    field and the goods issue: the retry finds the delivery and does only what is missing."""
    order_id = seed(admin)
    cfg = sap_config(sap_server.url)
    adapter = track(build_sap_shipments(cfg))
    raw = track(build_sap_shipments(cfg))._deliveries
    orphan = raw.create([DeliveryLine(order_id, "10", Decimal(1), "PC")], {"Z101": PACKAGE})
    assert delivery(admin, orphan.id)["goods_issued"] is False

    assert adapter.create_shipment(shipment(order_id)) == orphan.id

    view = delivery(admin, orphan.id)
    assert len(deliveries(admin, order_id)) == 1
    assert view["goods_issued"] is True and view["BillOfLading"] == "1Z999AA10123456784"
    assert "Z102" in view["texts"]


def test_split_packages_become_separate_deliveries(sap_server: ThreadedServer, admin: httpx.Client,
                                                   track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    first = adapter.create_shipment(shipment(order_id, "pkg-a", (("10", "1"),)))
    second = adapter.create_shipment(shipment(order_id, "pkg-b", (("10", "1"), ("20", "1")), tracking_number="1Z2"))

    assert first != second
    assert (adapter.find_shipment(order_id, "pkg-a"), adapter.find_shipment(order_id, "pkg-b")) == (first, second)
    assert adapter.create_shipment(shipment(order_id, "pkg-a", (("10", "1"),))) == first
    assert len(deliveries(admin, order_id)) == 2
    assert item(admin, order_id, "10")["DeliveryStatus"] == "C"


def test_configuration_choices(sap_server: ThreadedServer, admin: httpx.Client, track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track, shipments={
        "post_goods_issue": False, "tracking_number_field": "DeliveryDocumentBySupplier",
        "delivery_date_target": "sales_order", "package_text_id": "Y001", "shipping_point": "AMZ1"})
    doc = adapter.create_shipment(shipment(order_id))

    view = delivery(admin, doc)
    assert view["goods_issued"] is False
    assert (view["DeliveryDocumentBySupplier"], view["BillOfLading"], view["ShippingPoint"]) == (
        "1Z999AA10123456784", "", "AMZ1")
    assert view["texts"]["Y001"] == PACKAGE
    order = admin.get(f"/_sandbox/sales-orders/{order_id}").json()
    assert order["RequestedDeliveryDate"].startswith("2031-03-04")
    assert not view["DeliveryDate"].startswith("2031-03-04")
    # Another package-text id does not see this delivery: the text id is part of the identity.
    assert shipments(sap_server.url, track).find_shipment(order_id, PACKAGE) is None


# -- tracking, delivered, failure --------------------------------------------------------------------

def test_tracking_is_recorded_once_and_updated_when_it_changes(sap_server: ThreadedServer, admin: httpx.Client,
                                                               track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    doc = adapter.create_shipment(shipment(order_id))
    milestone = Milestone("IN_TRANSIT", datetime(2031, 3, 2, 8, 0, tzinfo=UTC), "Scanned", "Reno", "NV", "US")
    tracker = Tracker("1Z999AA10123456784", "UPS", "https://track.example/1Z999", latest_milestone=milestone)

    adapter.record_tracking(order_id, doc, tracker)
    writes = text_writes(admin)
    adapter.record_tracking(order_id, doc, tracker)
    assert text_writes(admin) == writes
    assert delivery(admin, doc)["texts"]["Z103"] == "IN_TRANSIT | 2031-03-02T08:00:00Z | Reno, NV, US | Scanned"

    later = Tracker("1Z999AA10123456784", "UPS", latest_milestone=Milestone("OUT_FOR_DELIVERY"))
    adapter.record_tracking(order_id, doc, later)
    texts = delivery(admin, doc)["texts"]
    assert texts["Z103"] == "OUT_FOR_DELIVERY"
    assert texts["Z102"] == "Carrier: UPS\nTracking number: 1Z999AA10123456784"
    assert len([k for k in texts if k == "Z103"]) == 1


def test_delivered_and_failure_are_recorded_idempotently(sap_server: ThreadedServer, admin: httpx.Client,
                                                         track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    doc = adapter.create_shipment(shipment(order_id))

    adapter.mark_delivered(order_id, doc, datetime(2031, 3, 4, 12, 5, tzinfo=UTC))
    adapter.record_delivery_failure(order_id, doc, "UNDELIVERABLE", datetime(2031, 3, 5, tzinfo=UTC))
    writes = text_writes(admin)
    adapter.mark_delivered(order_id, doc, datetime(2031, 3, 4, 12, 5, tzinfo=UTC))
    adapter.record_delivery_failure(order_id, doc, "UNDELIVERABLE", datetime(2031, 3, 5, tzinfo=UTC))
    assert text_writes(admin) == writes

    texts = delivery(admin, doc)["texts"]
    assert texts["Z104"] == "Delivered 2031-03-04T12:05:00Z"
    assert texts["Z105"] == "UNDELIVERABLE at 2031-03-05T00:00:00Z"
    adapter.record_delivery_failure(order_id, doc, "LOST", None)
    assert delivery(admin, doc)["texts"]["Z105"] == "LOST"


def test_tracking_on_an_unposted_delivery_also_updates_its_fields(sap_server: ThreadedServer, admin: httpx.Client,
                                                                 track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track, shipments={"post_goods_issue": False})
    doc = adapter.create_shipment(shipment(order_id, tracking_number=None, estimated_delivery=None))
    assert delivery(admin, doc)["BillOfLading"] == ""

    adapter.record_tracking(order_id, doc, Tracker("1ZNEW", "FEDEX", estimated_delivery_latest=ETA))

    view = delivery(admin, doc)
    assert view["BillOfLading"] == "1ZNEW" and view["DeliveryDate"].startswith("2031-03-04")
    assert view["texts"]["Z102"] == "Carrier: FEDEX\nTracking number: 1ZNEW"


# -- cancellations -------------------------------------------------------------------------------------

def test_full_and_partial_cancellations_applied_twice_equal_once(sap_server: ThreadedServer, admin: httpx.Client,
                                                                 track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    lines = (LineCancellation("10", Decimal(1), Decimal(1), CancellationReason.CUSTOMER_REQUESTED),
             LineCancellation("20", Decimal(1), Decimal(0), CancellationReason.UNFULFILLABLE))

    adapter.apply_cancellations(order_id, lines)
    patches = stats(admin).get("PATCH A_SalesOrderItem", 0)
    adapter.apply_cancellations(order_id, lines)

    assert stats(admin).get("PATCH A_SalesOrderItem", 0) == patches == 2
    first, second = item(admin, order_id, "10"), item(admin, order_id, "20")
    assert (first["RequestedQuantity"], first["SalesDocumentRjcnReason"]) == ("1", "")
    assert (second["RequestedQuantity"], second["SalesDocumentRjcnReason"]) == ("1", "Z2")
    # A later, larger total on the same line: reduce further, then reject when nothing remains.
    adapter.apply_cancellations(order_id, (
        LineCancellation("10", Decimal(2), Decimal(0), CancellationReason.UNDELIVERABLE),))
    assert item(admin, order_id, "10")["SalesDocumentRjcnReason"] == "Z3"


def test_cancellation_of_a_split_package_keeps_the_shipped_part(sap_server: ThreadedServer, admin: httpx.Client,
                                                                track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track, shipments={"rejection_reasons": {
        "CUSTOMER_REQUESTED": "10", "UNFULFILLABLE": "02", "UNDELIVERABLE": "05"}})
    adapter.create_shipment(shipment(order_id, "pkg-shipped", (("10", "1"),)))

    adapter.apply_cancellations(order_id, (
        LineCancellation("10", Decimal(1), Decimal(1), CancellationReason.UNFULFILLABLE),
        LineCancellation("20", Decimal(1), Decimal(0), CancellationReason.CUSTOMER_REQUESTED)))

    assert (item(admin, order_id, "10")["RequestedQuantity"], item(admin, order_id, "10")["DeliveryStatus"]) == (
        "1", "C")
    assert item(admin, order_id, "20")["SalesDocumentRjcnReason"] == "10"
    # SAP refuses to go below what was delivered; the refusal arrives as a clear Rejected.
    with pytest.raises(Rejected, match="less than the quantity already delivered"):
        adapter.apply_cancellations(order_id, (
            LineCancellation("10", Decimal("1.5"), Decimal("0.5"), CancellationReason.UNFULFILLABLE),))


def test_cancellation_input_errors(sap_server: ThreadedServer, admin: httpx.Client, track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    with pytest.raises(Rejected, match="has no item"):
        adapter.apply_cancellations(order_id, (
            LineCancellation("90", Decimal(1), Decimal(0), CancellationReason.UNFULFILLABLE),))
    with pytest.raises(Rejected, match="999999 does not exist"):
        adapter.apply_cancellations("999999", (
            LineCancellation("10", Decimal(1), Decimal(0), CancellationReason.UNFULFILLABLE),))
    with pytest.raises(Rejected, match="not a valid SalesOrder"):
        adapter.apply_cancellations("12345678901", ())
    assert stats(admin).get("PATCH A_SalesOrderItem", 0) == 0


# -- errors ---------------------------------------------------------------------------------------------

def test_sap_refusals_become_clear_errors(sap_server: ThreadedServer, admin: httpx.Client, track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    with pytest.raises(Rejected, match=r"SAP POST A_OutbDeliveryHeader: HTTP 400 .*exceeds the open quantity 2"):
        adapter.create_shipment(shipment(order_id, lines=(("10", "3"),)))
    with pytest.raises(Rejected, match=r"item .*/30 is rejected \(reason Z1\)"):
        adapter.create_shipment(shipment(order_id, lines=(("30", "1"),)))
    with pytest.raises(Rejected, match="has no item 70"):
        adapter.create_shipment(shipment(order_id, lines=(("70", "1"),)))
    with pytest.raises(Rejected, match="is not positive"):
        adapter.create_shipment(shipment(order_id, lines=(("10", "0"),)))
    with pytest.raises(Rejected, match="sales order 888888 does not exist"):
        adapter.create_shipment(shipment("888888"))
    with pytest.raises(Rejected, match="outbound delivery 12345 does not exist"):
        adapter.record_tracking(order_id, "12345", Tracker("1Z", "UPS"))
    with pytest.raises(Rejected, match="package id is needed"):
        adapter.find_shipment(order_id, " ")
    assert deliveries(admin) == []


def test_stale_etag_and_outages_are_transient(sap_server: ThreadedServer, admin: httpx.Client,
                                              track: Track) -> None:
    order_id = seed(admin)
    cfg = sap_config(sap_server.url)
    raw: OutboundDeliveries = track(build_sap_shipments(cfg))._deliveries
    created = raw.create([DeliveryLine(order_id, "10", Decimal(1))], {"Z101": "pkg"})
    admin.patch(f"/_sandbox/deliveries/{created.id}", json={"fields": {"DeliveryPriority": "01"}})  # a user's change
    with pytest.raises(TransientError, match="changed since it was read"):
        raw.update_header(created, {"BillOfLading": "1Z"})
    with pytest.raises(TransientError, match="changed since it was read"):
        raw.post_goods_issue(created)

    admin.put("/_sandbox/knobs", json={"error_rate": 1})
    with pytest.raises(TransientError, match="HTTP 503"):
        shipments(sap_server.url, track).create_shipment(shipment(order_id))
    admin.put("/_sandbox/knobs", json={"error_rate": 0, "throttle_rate": 1, "retry_after_seconds": 7})
    with pytest.raises(TransientError) as throttled:
        shipments(sap_server.url, track).mark_delivered(order_id, created.id, ETA)
    assert throttled.value.retry_after == 7


def test_csrf_expiry_is_handled_and_bad_credentials_are_permanent(sap_server: ThreadedServer, admin: httpx.Client,
                                                                  track: Track) -> None:
    order_id = seed(admin)
    adapter = shipments(sap_server.url, track)
    doc = adapter.create_shipment(shipment(order_id))
    admin.post("/_sandbox/csrf/expire")
    adapter.mark_delivered(order_id, doc, ETA)
    assert delivery(admin, doc)["texts"]["Z104"].startswith("Delivered")
    with pytest.raises(PermanentError, match="HTTP 401"):
        shipments(sap_server.url, track, password="wrong").find_shipment(order_id, PACKAGE)


def test_config_validates_rejection_reasons() -> None:
    with pytest.raises(ValidationError, match="unknown Amazon cancellation reason"):
        SapShipmentsConfig(rejection_reasons={"CUSTOMER_REQUESTED": "1", "UNFULFILLABLE": "2",
                                              "UNDELIVERABLE": "3", "LOST": "4"})
    with pytest.raises(ValidationError, match="no SAP rejection reason for UNDELIVERABLE"):
        SapShipmentsConfig(rejection_reasons={"CUSTOMER_REQUESTED": "1", "UNFULFILLABLE": "2"})
    with pytest.raises(ValidationError, match="1-2 characters"):
        SapShipmentsConfig(rejection_reasons={"CUSTOMER_REQUESTED": "100", "UNFULFILLABLE": "2",
                                              "UNDELIVERABLE": "3"})
    with pytest.raises(ValidationError):
        SapShipmentsConfig(tracking_number_field="ExternalTransportSystem")


def test_milestone_text_names_what_is_known() -> None:
    assert milestone_text(Milestone("DELIVERED", country="US")) == "DELIVERED | US"
    assert milestone_text(Milestone("LOST", datetime(2031, 1, 1, 1, 2, 3, tzinfo=UTC), "Gone")) == (
        "LOST | 2031-01-01T01:02:03Z | Gone")
