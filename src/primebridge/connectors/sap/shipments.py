"""Amazon packages as SAP outbound deliveries, and Amazon cancellations as sales order item changes.

``SapShipments`` is the SAP adapter of the ``ShipmentDocuments`` port.

**One delivery per Amazon package.** The package id is written as a delivery header text
(``sap.shipments.package_text_id``) inside the same deep insert that creates the delivery, so a
delivery never exists without it. Why a text and not a header field: the only free header fields
(``DeliveryDocumentBySupplier``, ``BillOfLading``, 35 characters) are *not creatable* in the EDMX, so
setting one needs a second call after the create, and a crash in between would leave a delivery
nobody can recognise; they are also too short for a 36-character UUID. Texts are not filterable, so
``find_shipment`` lists the deliveries whose items reference the sales order (a handful per order)
and reads their texts in one query. A retry after a crash therefore always finds the delivery
and only completes what is missing (tracking field, delivery date, goods issue): every step checks
the state it reads first.

**Cancellations.** A line cancelled in full gets the rejection reason mapped from the Amazon reason
(``SalesDocumentRjcnReason``); a line cancelled in part gets ``RequestedQuantity`` reduced to what
remains. Both are totals compared with what SAP holds, so applying them twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import structlog

from primebridge.config import SapConfig
from primebridge.connectors.sap.deliveries import (
    TRACKING_FIELD_LENGTH,
    Delivery,
    DeliveryLine,
    OutboundDeliveries,
)
from primebridge.connectors.sap.odata import ODataClient
from primebridge.connectors.sap.values import (
    entity_etag,
    format_json_datetime,
    iso_utc,
    key_predicate,
    parse_datetime,
    parse_decimal,
    results,
)
from primebridge.domain.errors import PermanentError, Rejected
from primebridge.domain.packages import LineCancellation, Milestone, Shipment, Tracker

log = structlog.get_logger()

ORDER_SET = "A_SalesOrder"
ORDER_ITEM_SET = "A_SalesOrderItem"
MAX_ORDER_ID = 10
# Sales order properties this adapter reads or writes; tests check them against the EDMX.
ORDER_PROPERTIES = ("SalesOrder", "RequestedDeliveryDate", "LastChangeDateTime")
ORDER_ITEM_PROPERTIES = ("SalesOrder", "SalesOrderItem", "RequestedQuantity", "RequestedQuantityUnit",
                         "SalesDocumentRjcnReason")


def _order_keys(order_id: str) -> dict[str, str]:
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id.strip()) > MAX_ORDER_ID:
        raise Rejected(f"SAP sales order id {order_id!r} is not a valid SalesOrder (1-{MAX_ORDER_ID} characters)")
    return {"SalesOrder": order_id.strip()}


def _stamp(value: datetime) -> str:
    return iso_utc(value if value.tzinfo else value.replace(tzinfo=UTC), digits=0)


def tracking_text(carrier: str | None, number: str | None, url: str | None) -> str:
    """The tracking header text: one ``label: value`` line per known fact."""
    lines = [f"Carrier: {carrier}" if carrier else "", f"Tracking number: {number}" if number else "",
             f"Tracking URL: {url}" if url else ""]
    return "\n".join(line for line in lines if line)


def _date_value(current: Any, day: date) -> str | None:
    """``day`` as an ``Edm.DateTime`` value, or ``None`` when ``current`` already holds that day
    (an unreadable current value is overwritten)."""
    try:
        stored = parse_datetime(current)
    except ValueError:
        stored = None
    if stored is not None and stored.date() == day:
        return None
    return format_json_datetime(datetime(day.year, day.month, day.day, tzinfo=UTC), offset=False)


def milestone_text(milestone: Milestone) -> str:
    """``DELIVERED | 2025-01-02T10:00:00Z | Seattle, WA, US | Left at door``: code first, then what is known."""
    where = ", ".join(p for p in (milestone.locality, milestone.region, milestone.country) if p)
    parts = [milestone.code, _stamp(milestone.occurred_at) if milestone.occurred_at else "", where,
             milestone.message or ""]
    return " | ".join(p for p in parts if p)


class SapShipments:
    """The SAP adapter of the ``ShipmentDocuments`` port (outbound deliveries and item rejection)."""

    name = "sap"

    def __init__(self, deliveries: OutboundDeliveries, orders: ODataClient, cfg: SapConfig) -> None:
        self._deliveries = deliveries
        self._orders = orders
        self._cfg = cfg.shipments
        self._language = cfg.fields.text_language

    def close(self) -> None:
        self._deliveries.close()
        self._orders.close()

    # -- finding -------------------------------------------------------------------------------

    def find_shipment(self, oms_order_id: str, package_id: str) -> str | None:
        order_id = _order_keys(oms_order_id)["SalesOrder"]
        found = self._find(order_id, package_id)
        return None if found is None else found.id

    def _find(self, order_id: str, package_id: str) -> Delivery | None:
        package_id = package_id.strip()
        if not package_id:
            raise Rejected("an Amazon package id is needed to find or create its SAP delivery")
        text_id = self._cfg.package_text_id
        matches = [d for d in self._deliveries.read_many(self._deliveries.ids_for_order(order_id))
                   if (d.text(text_id) or "").strip() == package_id]
        if not matches:
            return None
        matches.sort(key=lambda d: (len(d.id), d.id))
        if len(matches) > 1:
            log.warning("sap.delivery.duplicate_package", sales_order=order_id, package_id=package_id,
                        deliveries=[d.id for d in matches])
        return matches[0]

    # -- shipping ------------------------------------------------------------------------------

    def create_shipment(self, shipment: Shipment) -> str:
        order_id = _order_keys(shipment.oms_order_id)["SalesOrder"]
        delivery = self._find(order_id, shipment.package_id)
        if delivery is None:
            lines = self._delivery_lines(order_id, shipment)
            texts = {self._cfg.package_text_id: shipment.package_id.strip()}
            tracking = tracking_text(shipment.carrier_code, shipment.tracking_number, shipment.tracking_url)
            if tracking:
                texts[self._cfg.tracking_text_id] = tracking
            created = self._deliveries.create(lines, texts, shipping_point=self._cfg.shipping_point)
            log.info("sap.delivery.created", sales_order=order_id, package_id=shipment.package_id,
                     delivery=created.id, items=len(lines))
            # The create answer carries neither the ETag header nor the expanded texts: read it back.
            delivery = self._read(created.id)
        else:
            log.info("sap.delivery.found", sales_order=order_id, package_id=shipment.package_id,
                     delivery=delivery.id)
        self._complete(order_id, delivery, shipment)
        return delivery.id

    def _delivery_lines(self, order_id: str, shipment: Shipment) -> list[DeliveryLine]:
        """The package's lines as delivery items, checked against the order so a mistake is named
        in our words before SAP answers with its own."""
        items = self._order_items(order_id)
        wanted: dict[str, Decimal] = {}
        for line in shipment.lines:
            if line.quantity <= 0:
                raise Rejected(f"package {shipment.package_id}: quantity {line.quantity} of SAP item "
                               f"{order_id}/{line.oms_line_id} is not positive")
            wanted[line.oms_line_id] = wanted.get(line.oms_line_id, Decimal(0)) + line.quantity
        if not wanted:
            raise Rejected(f"package {shipment.package_id} has no lines to deliver")
        lines = []
        for item_id, quantity in sorted(wanted.items(), key=lambda kv: (len(kv[0]), kv[0])):
            item = items.get(item_id)
            if item is None:
                raise Rejected(f"SAP sales order {order_id} has no item {item_id} (package "
                               f"{shipment.package_id})")
            reason = str(item.get("SalesDocumentRjcnReason") or "")
            if reason:
                raise Rejected(f"SAP sales order item {order_id}/{item_id} is rejected (reason {reason}) but "
                               f"Amazon shipped {quantity} in package {shipment.package_id}")
            unit = str(item.get("RequestedQuantityUnit") or "") or None
            lines.append(DeliveryLine(order_id, item_id, quantity, unit))
        return lines

    def _complete(self, order_id: str, delivery: Delivery, shipment: Shipment) -> None:
        """Everything after the create, each step skipped when SAP already shows it done. ``delivery``
        is as just read (by ``_find`` or after the create)."""
        estimated = shipment.estimated_delivery
        delivery = self._update_header(delivery, shipment.tracking_number, estimated)
        tracking = tracking_text(shipment.carrier_code, shipment.tracking_number, shipment.tracking_url)
        if tracking:
            self._deliveries.upsert_text(delivery, self._cfg.tracking_text_id, tracking)
        if self._cfg.post_goods_issue and not delivery.goods_issued:
            self._deliveries.post_goods_issue(delivery)
            log.info("sap.delivery.goods_issue_posted", sales_order=order_id, delivery=delivery.id)
        if estimated is not None and self._cfg.delivery_date_target in ("sales_order", "both"):
            self._set_order_delivery_date(order_id, estimated.astimezone(UTC).date())

    def _update_header(self, delivery: Delivery, tracking_number: str | None,
                       estimated: datetime | None) -> Delivery:
        """Tracking field and delivery date on the header where they differ; the delivery as it is after."""
        changes = self._tracking_field_change(delivery, tracking_number)
        if estimated is not None and self._cfg.delivery_date_target in ("delivery", "both"):
            changes.update(self._delivery_date_change(delivery, estimated.astimezone(UTC).date()))
        if not changes:
            return delivery
        self._deliveries.update_header(delivery, changes)
        return self._read(delivery.id)

    def _read(self, delivery_id: str) -> Delivery:
        delivery = self._deliveries.read(delivery_id)
        if delivery is None:
            raise Rejected(f"SAP outbound delivery {delivery_id} does not exist")
        return delivery

    def _tracking_field_change(self, delivery: Delivery, number: str | None) -> dict[str, Any]:
        """The tracking number for the configured header field, when it differs and SAP can still take
        it: header fields are written before goods issue, after that only texts change."""
        field = self._cfg.tracking_number_field
        if not field or not number or delivery.goods_issued:
            return {}
        if len(number) > TRACKING_FIELD_LENGTH[field]:
            log.warning("sap.delivery.tracking_number_too_long", delivery=delivery.id, field=field,
                        length=len(number))
            return {}
        return {} if str(delivery.header.get(field) or "") == number else {field: number}

    @staticmethod
    def _delivery_date_change(delivery: Delivery, day: date) -> dict[str, Any]:
        if delivery.goods_issued:
            return {}
        value = _date_value(delivery.header.get("DeliveryDate"), day)
        return {} if value is None else {"DeliveryDate": value}

    def _set_order_delivery_date(self, order_id: str, day: date) -> None:
        path = ORDER_SET + key_predicate(_order_keys(order_id))
        header = self._orders.get_entity(path, select=("SalesOrder", "RequestedDeliveryDate", "LastChangeDateTime"))
        if header is None:
            raise Rejected(f"SAP sales order {order_id} does not exist")
        value = _date_value(header.get("RequestedDeliveryDate"), day)
        if value is None:
            return
        self._orders.update(path, {"RequestedDeliveryDate": value}, etag=entity_etag(header) or "*")
        log.info("sap.sales_order.delivery_date_set", sales_order=order_id, date=day.isoformat())

    # -- tracking and outcome --------------------------------------------------------------------

    def record_tracking(self, oms_order_id: str, document_id: str, tracker: Tracker) -> None:
        _order_keys(oms_order_id)
        estimated = tracker.estimated_delivery_latest or tracker.estimated_delivery_earliest
        delivery = self._update_header(self._read(document_id), tracker.tracking_number, estimated)
        outcome: dict[str, str] = {}
        tracking = tracking_text(tracker.carrier_code, tracker.tracking_number, tracker.tracking_url)
        if tracking:
            outcome["tracking"] = self._deliveries.upsert_text(delivery, self._cfg.tracking_text_id, tracking)
        if tracker.latest_milestone is not None:
            outcome["milestone"] = self._deliveries.upsert_text(delivery, self._cfg.milestone_text_id,
                                                                milestone_text(tracker.latest_milestone))
        log.info("sap.delivery.tracking_recorded", sales_order=oms_order_id, delivery=document_id, **outcome)

    def mark_delivered(self, oms_order_id: str, document_id: str, delivered_at: datetime) -> None:
        _order_keys(oms_order_id)
        delivery = self._read(document_id)
        outcome = self._deliveries.upsert_text(delivery, self._cfg.delivered_text_id,
                                               f"Delivered {_stamp(delivered_at)}")
        log.info("sap.delivery.delivered", sales_order=oms_order_id, delivery=document_id, text=outcome)

    def record_delivery_failure(self, oms_order_id: str, document_id: str, reason: str,
                                occurred_at: datetime | None) -> None:
        _order_keys(oms_order_id)
        delivery = self._read(document_id)
        text = f"{reason} at {_stamp(occurred_at)}" if occurred_at else reason
        outcome = self._deliveries.upsert_text(delivery, self._cfg.failure_text_id, text)
        log.info("sap.delivery.failure_recorded", sales_order=oms_order_id, delivery=document_id, reason=reason,
                 text=outcome)

    # -- cancellations -------------------------------------------------------------------------

    def _order_items(self, order_id: str) -> dict[str, dict[str, Any]]:
        path = ORDER_SET + key_predicate(_order_keys(order_id))
        header = self._orders.get_entity(path, expand="to_Item")
        if header is None:
            raise Rejected(f"SAP sales order {order_id} does not exist")
        try:
            return {str(item.get("SalesOrderItem")): item for item in results(header.get("to_Item"))}
        except ValueError as exc:
            raise PermanentError(f"SAP {path}/to_Item: {exc}") from None

    def apply_cancellations(self, oms_order_id: str, lines: tuple[LineCancellation, ...]) -> None:
        order_id = _order_keys(oms_order_id)["SalesOrder"]
        if not lines:
            return
        items = self._order_items(order_id)
        unknown = sorted({line.oms_line_id for line in lines} - set(items))
        if unknown:
            raise Rejected(f"SAP sales order {order_id} has no item(s) {', '.join(unknown)} to cancel")
        outcome: dict[str, int] = {"rejected": 0, "reduced": 0, "unchanged": 0}
        for line in lines:
            item = items[line.oms_line_id]
            change = self._cancellation_change(order_id, item, line)
            if not change:
                outcome["unchanged"] += 1
                continue
            path = ORDER_ITEM_SET + key_predicate({"SalesOrder": order_id, "SalesOrderItem": line.oms_line_id})
            # Items carry no concurrency token in the EDMX: no If-Match unless SAP sent an ETag anyway.
            self._orders.update(path, change, etag=entity_etag(item))
            outcome["rejected" if "SalesDocumentRjcnReason" in change else "reduced"] += 1
        log.info("sap.sales_order.cancellations_applied", sales_order=order_id, **outcome)

    def _cancellation_change(self, order_id: str, item: Mapping[str, Any], line: LineCancellation) -> dict[str, str]:
        if line.remaining_quantity < 0 or line.cancelled_quantity < 0:
            raise Rejected(f"cancellation of SAP item {order_id}/{line.oms_line_id}: negative quantity "
                           f"(cancelled {line.cancelled_quantity}, remaining {line.remaining_quantity})")
        if str(item.get("SalesDocumentRjcnReason") or ""):
            return {}  # already rejected: nothing more can be cancelled on it
        if line.remaining_quantity == 0:
            return {"SalesDocumentRjcnReason": self._cfg.rejection_reasons[line.reason.value]}
        try:
            current = parse_decimal(item.get("RequestedQuantity"))
        except ValueError as exc:
            raise PermanentError(f"SAP item {order_id}/{line.oms_line_id}: RequestedQuantity {exc}") from None
        if current is not None and current <= line.remaining_quantity:
            # Already reduced (a repeat), or SAP holds less than Amazon thinks remains: a cancellation
            # never raises a quantity.
            return {}
        return {"RequestedQuantity": format(line.remaining_quantity.normalize(), "f")}
