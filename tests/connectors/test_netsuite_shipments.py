"""NetSuiteShipments (the ShipmentDocuments port) against the NetSuite sandbox, plus its pure rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tests.sandbox import netsuite_fixtures
from tests.sandbox.netsuite_fixtures import T0, admin, netsuite_config, serve

from primebridge.config import NetSuiteConfig, NetSuiteShipmentsConfig
from primebridge.connectors.netsuite import build_netsuite_shipments
from primebridge.connectors.netsuite.fulfillments import (
    cancellation_lines,
    external_id,
    tracking_changes,
    transform_body,
)
from primebridge.connectors.netsuite.shipments import NetSuiteShipments, find_shipment_query
from primebridge.domain.errors import Rejected, TransientError
from primebridge.domain.packages import (
    CancellationReason,
    LineCancellation,
    Milestone,
    Shipment,
    ShipmentLine,
    Tracker,
)
from primebridge.ports import ShipmentDocuments
from primebridge.sandbox.netsuite import create_app
from primebridge.sandbox.server import ThreadedServer

PKG_FIELD = "custbody_pb_amazon_package_id"


server = serve()
url = netsuite_fixtures.url_at_t0


def _cfg(url: str, **shipments: Any) -> NetSuiteConfig:
    return netsuite_config(url, shipments=NetSuiteShipmentsConfig(**shipments))


def _docs(url: str, transport: httpx.BaseTransport | None = None, **shipments: Any) -> NetSuiteShipments:
    return build_netsuite_shipments(_cfg(url, **shipments), transport=transport)


def _seed(url: str, lines: list[dict[str, Any]] | None = None, status: str = "B") -> str:
    lines = lines or [{"item": "SKU-1", "quantity": 3, "rate": "10", "location": "AMZ"},
                      {"item": "SKU-2", "quantity": 1, "rate": "5", "location": "AMZ"}]
    return admin(url, "POST", "sales-orders", {"customer": "Ada", "status": status, "lines": lines})["id"]


def _order(url: str, order_id: str) -> dict[str, Any]:
    return admin(url, "GET", f"sales-orders/{order_id}")


def _fulfillments(url: str, order_id: str) -> list[dict[str, Any]]:
    return admin(url, "GET", "item-fulfillments", sales_order=order_id)["items"]


def _ops(url: str) -> dict[str, int]:
    return admin(url, "GET", "stats")["operations"]


def _shipment(order_id: str, package_id: str = "PKG-1", lines: tuple[tuple[str, int], ...] = (("1", 2),),
              **extra: Any) -> Shipment:
    values: dict[str, Any] = {"carrier_code": "ups", "tracking_number": "1Z999", "tracking_url": "https://t/1Z999"}
    values.update(extra)
    return Shipment(oms="netsuite", oms_order_id=order_id, package_id=package_id,
                    lines=tuple(ShipmentLine(line, Decimal(qty)) for line, qty in lines), **values)


# -- item fulfillments -------------------------------------------------------------------------------


def test_adapter_satisfies_the_port(url: str) -> None:
    docs: ShipmentDocuments = _docs(url)
    assert docs.name == "netsuite"


def test_create_fulfils_only_the_package_lines_with_tracking(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url)
    eta = T0 + timedelta(days=2)
    doc = docs.create_shipment(_shipment(order_id, estimated_delivery=eta))
    [ful] = _fulfillments(url, order_id)
    assert ful["id"] == doc and ful["createdFrom"]["id"] == order_id
    assert ful["shipStatus"]["id"] == "C" and ful["externalId"] == "PB-PKG-PKG-1"
    assert [(ln["orderLine"], ln["quantity"]) for ln in ful["item"]["items"]] == [(1, 2.0)]
    assert ful["package"]["items"] == [{"packageTrackingNumber": "1Z999"}]
    assert (ful[PKG_FIELD], ful["custbody_pb_carrier"], ful["custbody_pb_tracking_url"]) == \
        ("PKG-1", "ups", "https://t/1Z999")
    assert ful["custbody_pb_estimated_delivery"] == "2025-03-03T12:00:00Z"
    order = _order(url, order_id)
    assert order["status"]["id"] == "D"
    assert [ln["quantityFulfilled"] for ln in order["item"]["items"]] == [2.0, 0.0]
    assert docs.find_shipment(order_id, "PKG-1") == doc
    assert docs.find_shipment(order_id, "PKG-2") is None


def test_duplicate_package_returns_the_same_document(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url)
    first = docs.create_shipment(_shipment(order_id))
    assert _docs(url).create_shipment(_shipment(order_id)) == first  # another worker, same package
    assert len(_fulfillments(url, order_id)) == 1
    assert _ops(url)["transform salesOrder"] == 1
    second = docs.create_shipment(_shipment(order_id, "PKG-2", (("1", 1), ("2", 1))))
    assert second != first and len(_fulfillments(url, order_id)) == 2
    assert _order(url, order_id)["status"]["id"] == "F"


class _LoseTransformAnswer(httpx.HTTPTransport):
    """NetSuite commits the transform, then the answer is lost (a crash or a timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if "!transform" in request.url.path and not self.lost:
            response.read()
            self.lost += 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def test_retry_after_a_lost_answer_finds_the_committed_document(url: str) -> None:
    order_id = _seed(url)
    transport = _LoseTransformAnswer()
    docs = _docs(url, transport=transport)
    with pytest.raises(TransientError, match="ReadTimeout"):
        docs.create_shipment(_shipment(order_id))
    doc = docs.create_shipment(_shipment(order_id))
    assert transport.lost == 1
    assert [f["id"] for f in _fulfillments(url, order_id)] == [doc]


class _StaleLookup(NetSuiteShipments):
    """The first lookup ran before another worker's transform committed."""

    stale = True

    def find_shipment(self, oms_order_id: str, package_id: str) -> str | None:
        if self.stale:
            self.stale = False
            return None
        return super().find_shipment(oms_order_id, package_id)


def test_racing_transform_is_refused_by_external_id_and_answered_with_the_first(url: str) -> None:
    order_id = _seed(url)
    first = _docs(url).create_shipment(_shipment(order_id, lines=(("1", 1),)))
    racer = _StaleLookup(_docs(url).rest, _cfg(url))
    assert racer.create_shipment(_shipment(order_id, lines=(("1", 1),))) == first  # still fits: DUP_RCRD
    assert len(_fulfillments(url, order_id)) == 1
    assert _order(url, order_id)["item"]["items"][0]["quantityFulfilled"] == 1.0
    assert _ops(url)["transform salesOrder"] == 2
    late = _StaleLookup(_docs(url).rest, _cfg(url))
    assert late.create_shipment(_shipment(order_id, lines=(("1", 3),))) == first  # no longer fits
    assert _ops(url)["transform salesOrder"] == 2


def test_package_that_does_not_fit_is_rejected_with_a_clear_message(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url)
    with pytest.raises(Rejected, match=r"line 1 has 3 left to fulfil, the package ships 5") as err:
        docs.create_shipment(_shipment(order_id, lines=(("1", 5),)))
    assert err.value.code == "PackageDoesNotFit"
    with pytest.raises(Rejected, match="line 9 does not exist"):
        docs.create_shipment(_shipment(order_id, lines=(("9", 1),)))
    held = _seed(url, status="A")
    with pytest.raises(Rejected, match="pending approval"):
        docs.create_shipment(_shipment(held))
    with pytest.raises(Rejected, match=r"salesOrder 999999 .* does not exist"):
        docs.create_shipment(_shipment("999999"))
    assert "transform salesOrder" not in _ops(url)


@pytest.fixture(scope="module")
def strict_url() -> Iterator[str]:
    """An account where the merchant did not create the carrier field."""
    fields = {f for f in NetSuiteShipmentsConfig().model_dump().values()
              if isinstance(f, str) and f.startswith("cust")} - {"custbody_pb_carrier"}
    with ThreadedServer(create_app(custom_fields=fields), name="netsuite-strict") as srv:
        yield srv.url


def test_netsuite_error_details_become_clear_rejections(strict_url: str) -> None:
    admin(strict_url, "POST", "reset")
    order_id = _seed(strict_url)
    docs = _docs(strict_url)
    with pytest.raises(Rejected, match=r"transform salesOrder \d+ to itemFulfillment: Invalid property name "
                                       r"'custbody_pb_carrier'.* \[INVALID_CONTENT\]") as err:
        docs.create_shipment(_shipment(order_id))
    assert err.value.code == "INVALID_CONTENT"
    assert _fulfillments(strict_url, order_id) == []
    assert _docs(strict_url, carrier_field="").create_shipment(_shipment(order_id))


def test_external_id_can_be_switched_off_and_odd_ids_are_not_sent(url: str) -> None:
    order_id = _seed(url)
    doc = _docs(url, use_external_id=False).create_shipment(_shipment(order_id, "PKG A/1"))
    [ful] = _fulfillments(url, order_id)
    assert ful["id"] == doc and "externalId" not in ful and ful[PKG_FIELD] == "PKG A/1"
    cfg = NetSuiteShipmentsConfig()
    assert external_id("PKG A/1", cfg) is None and external_id("abc-1_2", cfg) == "PB-PKG-abc-1_2"


# -- tracking, delivery, failure ---------------------------------------------------------------------


def _tracker(code: str, at: datetime, number: str = "1Z999") -> Tracker:
    milestone = Milestone(code=code, occurred_at=at, locality="Reno", region="NV", country="US")
    return Tracker(tracking_number=number, carrier_code="ups", tracking_url=f"https://t/{number}",
                   estimated_delivery_latest=T0 + timedelta(days=3), latest_milestone=milestone)


def test_tracking_is_written_once_and_never_rolled_back(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url)
    doc = docs.create_shipment(_shipment(order_id))
    docs.record_tracking(order_id, doc, _tracker("IN_TRANSIT", T0 + timedelta(hours=5)))
    docs.record_tracking(order_id, doc, _tracker("IN_TRANSIT", T0 + timedelta(hours=5)))
    assert _ops(url)["PATCH itemFulfillment"] == 1
    docs.record_tracking(order_id, doc, _tracker("OUT_FOR_DELIVERY", T0 + timedelta(hours=9)))
    docs.record_tracking(order_id, doc, _tracker("IN_TRANSIT", T0 + timedelta(hours=5)))  # late duplicate
    [ful] = _fulfillments(url, order_id)
    assert (ful["custbody_pb_milestone_code"], ful["custbody_pb_milestone_time"],
            ful["custbody_pb_milestone_location"]) == ("OUT_FOR_DELIVERY", "2025-03-01T21:00:00Z", "Reno, NV, US")
    assert ful["custbody_pb_estimated_delivery"] == "2025-03-04T12:00:00Z"
    assert ful["package"]["items"] == [{"packageTrackingNumber": "1Z999"}]
    assert _ops(url)["PATCH itemFulfillment"] == 2


def test_new_tracking_number_replaces_the_package_line(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url, package_weight_lb=1.5)
    doc = docs.create_shipment(_shipment(order_id, tracking_number=None))
    assert _fulfillments(url, order_id)[0].get("package", {}).get("items") == []
    docs.record_tracking(order_id, doc, _tracker("IN_TRANSIT", T0, number="TBA1"))
    docs.record_tracking(order_id, doc, _tracker("IN_TRANSIT", T0, number="TBA2"))
    [ful] = _fulfillments(url, order_id)
    assert ful["package"]["items"] == [{"packageTrackingNumber": "TBA2", "packageWeight": 1.5}]
    assert ful["custbody_pb_tracking_url"] == "https://t/TBA2"


def test_delivered_and_failure_are_recorded_once(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url, ship_status="B")
    doc = docs.create_shipment(_shipment(order_id))
    assert _fulfillments(url, order_id)[0]["shipStatus"]["id"] == "B"
    delivered = T0 + timedelta(days=1, minutes=7)
    docs.mark_delivered(order_id, doc, delivered)
    docs.mark_delivered(order_id, doc, delivered)
    docs.record_delivery_failure(order_id, doc, "UNDELIVERABLE", T0 + timedelta(days=2))
    docs.record_delivery_failure(order_id, doc, "UNDELIVERABLE", T0 + timedelta(days=2))
    [ful] = _fulfillments(url, order_id)
    assert ful["shipStatus"]["id"] == "C" and ful["custbody_pb_delivered_at"] == "2025-03-02T12:07:00Z"
    assert (ful["custbody_pb_delivery_failure"], ful["custbody_pb_delivery_failed_at"]) == \
        ("UNDELIVERABLE", "2025-03-03T12:00:00Z")
    assert _ops(url)["PATCH itemFulfillment"] == 2


def test_updates_check_the_document_belongs_to_the_order(url: str) -> None:
    order_id, other = _seed(url), _seed(url)
    docs = _docs(url)
    doc = docs.create_shipment(_shipment(order_id))
    with pytest.raises(Rejected, match=f"belongs to salesOrder {order_id}, not {other}"):
        docs.mark_delivered(other, doc, T0)
    with pytest.raises(Rejected, match=r"itemFulfillment 424242 .* does not exist") as err:
        docs.record_tracking(order_id, "424242", _tracker("IN_TRANSIT", T0))
    assert err.value.code == "UnknownDocument"


def test_optional_fields_switched_off_are_not_written(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url, carrier_field="", tracking_url_field="", milestone_location_field=" ",
                 delivered_time_field="")
    doc = docs.create_shipment(_shipment(order_id))
    docs.record_tracking(order_id, doc, _tracker("DELIVERED", T0))
    docs.mark_delivered(order_id, doc, T0)
    [ful] = _fulfillments(url, order_id)
    assert not {"custbody_pb_carrier", "custbody_pb_tracking_url", "custbody_pb_milestone_location",
                "custbody_pb_delivered_at"} & set(ful)
    assert ful["custbody_pb_milestone_code"] == "DELIVERED"


# -- cancellations -----------------------------------------------------------------------------------


def _cancel(line: str, cancelled: int, remaining: int,
            reason: CancellationReason = CancellationReason.CUSTOMER_REQUESTED) -> LineCancellation:
    return LineCancellation(line, Decimal(cancelled), Decimal(remaining), reason)


def test_full_and_partial_cancellation_applied_twice_equals_once(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url)
    cancellations = (_cancel("1", 1, 2), _cancel("2", 1, 0, CancellationReason.UNFULFILLABLE))
    docs.apply_cancellations(order_id, cancellations)
    docs.apply_cancellations(order_id, cancellations)
    assert _ops(url)["PATCH salesOrder"] == 1
    first, second = _order(url, order_id)["item"]["items"]
    assert (first["quantity"], first["isClosed"], first["custcol_pb_amazon_cancelled_qty"],
            first["custcol_pb_amazon_cancel_reason"]) == (2.0, False, 1, "CUSTOMER_REQUESTED")
    assert (second["quantity"], second["isClosed"], second["custcol_pb_amazon_cancel_reason"]) == \
        (1.0, True, "UNFULFILLABLE")
    # a later, larger total cancels more; the document count and the shipped part are untouched
    docs.apply_cancellations(order_id, (_cancel("1", 2, 1),))
    assert _order(url, order_id)["item"]["items"][0]["quantity"] == 1.0


def test_split_package_part_shipped_part_cancelled(url: str) -> None:
    order_id = _seed(url, lines=[{"item": "SKU-1", "quantity": 3, "rate": "10"}])
    docs = _docs(url)
    docs.create_shipment(_shipment(order_id, "PKG-A", (("1", 1),)))
    docs.apply_cancellations(order_id, (_cancel("1", 2, 1),))
    order = _order(url, order_id)
    assert order["item"]["items"][0]["quantity"] == 1.0 and order["status"]["id"] == "F"
    with pytest.raises(Rejected, match="Amazon leaves 0 ordered but 1 are fulfilled already") as err:
        docs.apply_cancellations(order_id, (_cancel("1", 3, 0),))
    assert err.value.code == "CancellationBelowFulfilled"


def test_cancellation_of_unknown_line_or_order(url: str) -> None:
    order_id = _seed(url)
    docs = _docs(url)
    with pytest.raises(Rejected, match="has no line 7 to cancel"):
        docs.apply_cancellations(order_id, (_cancel("7", 1, 0),))
    with pytest.raises(Rejected, match="salesOrder 999999 does not exist"):
        docs.apply_cancellations("999999", (_cancel("1", 1, 0),))
    docs.apply_cancellations(order_id, ())
    assert "PATCH salesOrder" not in _ops(url)


def test_sandbox_refuses_lowering_below_fulfilled_with_error_details(url: str) -> None:
    """The connector checks first; NetSuite's own refusal still arrives as a clear ``Rejected``."""
    order_id = _seed(url)
    docs = _docs(url)
    docs.create_shipment(_shipment(order_id))
    with pytest.raises(Rejected, match=r"cannot lower the quantity of line 1 to 1: 2 have been fulfilled") as err:
        docs.rest.patch("salesOrder", order_id, {"item": {"items": [{"line": 1, "quantity": 1}]}})
    assert err.value.code == "USER_ERROR"


# -- pure rules ----------------------------------------------------------------------------------------


def _record(lines: list[dict[str, Any]], status: str = "B") -> dict[str, Any]:
    return {"id": "5", "status": {"id": status}, "item": {"items": lines}}


def test_transform_body_names_every_open_line() -> None:
    record = _record([
        {"line": 1, "quantity": 2, "quantityFulfilled": 0},
        {"line": 3, "quantity": 1, "quantityFulfilled": 1},  # done: not on the new fulfillment
        {"line": 4, "quantity": 5, "quantityFulfilled": 1},
        {"line": 6, "quantity": 1, "isClosed": True},
        {"line": 7, "quantity": 1, "itemType": {"id": "Discount"}},
    ])
    body = transform_body(_shipment("5", lines=(("4", 2), ("4", 1))), record, NetSuiteShipmentsConfig())
    assert body["item"]["items"] == [{"orderLine": 1, "itemReceive": False},
                                     {"orderLine": 4, "itemReceive": True, "quantity": 3}]
    with pytest.raises(Rejected, match="line 6 is closed"):
        transform_body(_shipment("5", lines=(("6", 1),)), record, NetSuiteShipmentsConfig())
    with pytest.raises(Rejected, match="only positive"):
        transform_body(_shipment("5", lines=(("1", 0),)), record, NetSuiteShipmentsConfig())


def test_tracking_changes_empty_when_current() -> None:
    cfg = NetSuiteShipmentsConfig()
    tracker = _tracker("IN_TRANSIT", T0)
    record = {"custbody_pb_carrier": "ups", "custbody_pb_tracking_url": "https://t/1Z999",
              "custbody_pb_estimated_delivery": "2025-03-04T12:00:00Z", "custbody_pb_milestone_code": "IN_TRANSIT",
              "custbody_pb_milestone_time": "2025-03-01T12:00:00Z",
              "custbody_pb_milestone_location": "Reno, NV, US",
              "package": {"items": [{"packageTrackingNumber": "1Z999"}]}}
    assert tracking_changes(record, tracker, cfg) == ({}, False)


def test_cancellation_lines_never_raise_a_quantity() -> None:
    record = _record([{"line": 1, "quantity": 1, "quantityFulfilled": 0}])
    lines = cancellation_lines("5", record, [_cancel("1", 1, 2)], NetSuiteShipmentsConfig(
        cancelled_quantity_field="", cancel_reason_field=""))
    assert lines == []


def test_find_query_escapes_the_package_id() -> None:
    assert find_shipment_query("O'Brien", PKG_FIELD) == (
        "SELECT t.id AS id FROM transaction t WHERE t.type = 'ItemShip' "
        "AND t.custbody_pb_amazon_package_id = 'O''Brien' ORDER BY t.id")


def test_config_rejects_field_ids_that_are_not_custom_fields() -> None:
    with pytest.raises(ValueError, match="package_id_field"):
        NetSuiteShipmentsConfig(package_id_field="id OR 1=1")
    with pytest.raises(ValueError, match="cancel_reason_field"):
        NetSuiteShipmentsConfig(cancel_reason_field="custbody_wrong_kind")
    with pytest.raises(ValueError, match="carrier_field"):
        NetSuiteShipmentsConfig(carrier_field="custbody_x'; DROP")
    assert NetSuiteShipmentsConfig(carrier_field="", tracking_url_field=" custbody_url ").carrier_field is None
    assert NetSuiteShipmentsConfig(tracking_url_field=" custbody_url ").tracking_url_field == "custbody_url"
