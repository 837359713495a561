"""What primebridge writes to NetSuite for Amazon packages, as pure functions over REST JSON.

* ``transform_body``: the ``!transform/itemFulfillment`` body for one package — exactly the package's
  lines and quantities (``itemReceive: true``), every other line still open for fulfilment sent as
  ``itemReceive: false`` (whether an unmentioned line is fulfilled by default depends on an account
  preference [U], so nothing is left to it), the package tracking number, ship status, the Amazon
  package id in a body custom field and, when configured, in ``externalId``.
* ``tracking_changes`` / ``delivered_changes`` / ``failure_changes``: the PATCH body that brings an
  existing item fulfillment up to date, or ``{}`` when it already is, so a repeated event writes
  nothing.
* ``cancellation_lines``: the ``item`` sublist lines of a sales-order PATCH that close fully
  cancelled lines and lower partly cancelled ones to what Amazon left ordered.

Every check that can be made before NetSuite sees the request is made here, so the operator reads
"line 2 has 1 left to fulfil, package P ships 3" rather than NetSuite's "Invalid Field Value".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.config import NetSuiteShipmentsConfig
from primebridge.connectors.netsuite import mapping
from primebridge.domain.errors import Rejected
from primebridge.domain.packages import LineCancellation, Milestone, Shipment, Tracker

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # the characters NetSuite allows in externalId (§2.4)
FULFILLABLE_STATUSES = frozenset({"B", "D", "E"})
STATUS_NAMES = {"A": "pending approval", "C": "cancelled", "F": "fully fulfilled (pending billing)",
                "G": "billed", "H": "closed"}


def iso_utc(moment: datetime) -> str:
    """Times go to text fields as ISO 8601 UTC, second precision: sortable and zone-free."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime cannot be written to NetSuite")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_number(value: Decimal) -> int | float:
    """NetSuite quantities are JSON numbers; whole ones are sent without a fraction."""
    return int(value) if value == value.to_integral_value() else float(value)


def external_id(package_id: str, cfg: NetSuiteShipmentsConfig) -> str | None:
    """``<prefix><package id>``, or ``None`` when disabled or the id has characters NetSuite refuses."""
    if not cfg.use_external_id:
        return None
    value = cfg.external_id_prefix + package_id
    return value if EXTERNAL_ID.match(value) else None


@dataclass(frozen=True, slots=True)
class OrderLine:
    """The parts of a sales-order ``item`` line that fulfilment and cancellation decisions need."""

    line: str
    quantity: Decimal
    fulfilled: Decimal
    closed: bool
    goods: bool
    custom: dict[str, Any]

    @property
    def open_quantity(self) -> Decimal:
        return Decimal(0) if self.closed or not self.goods else max(self.quantity - self.fulfilled, Decimal(0))


def _quantity(value: Any, order_id: str, what: str) -> Decimal:
    quantity = mapping.decimal(value, order_id, what)
    return abs(quantity) if quantity is not None else Decimal(0)


def order_lines(record: dict[str, Any]) -> dict[str, OrderLine]:
    """The lines of a sales order read with ``expandSubResources=true``, by ``line``."""
    order_id = mapping.ref_id(record.get("id")) or "?"
    lines: dict[str, OrderLine] = {}
    for raw in mapping.line_items(record, order_id):
        number = raw.get("line")
        if number in (None, "") or isinstance(number, bool):
            raise Rejected(f"NetSuite salesOrder {order_id}: an item line has no line number",
                           code="BadNetSuiteData")
        line_id = str(number)
        lines[line_id] = OrderLine(
            line=line_id,
            quantity=_quantity(raw.get("quantity"), order_id, f"line {line_id} quantity"),
            fulfilled=_quantity(raw.get("quantityFulfilled"), order_id, f"line {line_id} quantityFulfilled"),
            closed=mapping.truthy(raw.get("isClosed")),
            goods=mapping.ref_id(raw.get("itemType")) not in mapping.NON_GOODS_LINE_TYPES,
            custom={k: v for k, v in raw.items() if k.lower().startswith("custcol")},
        )
    return lines


def _line_ref(line_id: str) -> int | str:
    return int(line_id) if line_id.isdigit() else line_id


def _set(body: dict[str, Any], field: str | None, value: Any) -> None:
    if field is not None and value is not None:
        body[field] = value


def _package_quantities(shipment: Shipment) -> dict[str, Decimal]:
    wanted: dict[str, Decimal] = {}
    for line in shipment.lines:
        if line.quantity <= 0:
            raise Rejected(f"Amazon package {shipment.package_id} has quantity {line.quantity} on NetSuite line "
                           f"{line.oms_line_id}; only positive quantities can be fulfilled", code="BadPackage")
        wanted[line.oms_line_id] = wanted.get(line.oms_line_id, Decimal(0)) + line.quantity
    if not wanted:
        raise Rejected(f"Amazon package {shipment.package_id} has no lines to fulfil", code="BadPackage")
    return wanted


def transform_body(shipment: Shipment, record: dict[str, Any], cfg: NetSuiteShipmentsConfig) -> dict[str, Any]:
    """The transform body; ``Rejected`` when the order cannot hold this package's quantities."""
    order_id = shipment.oms_order_id
    status = mapping.ref_id(record.get("status")) or mapping.ref_id(record.get("orderStatus"))
    if status not in FULFILLABLE_STATUSES:
        raise Rejected(f"NetSuite salesOrder {order_id} is {STATUS_NAMES.get(status or '', status)} and cannot be "
                       f"fulfilled for Amazon package {shipment.package_id}", code="OrderNotFulfillable")
    lines = order_lines(record)
    wanted = _package_quantities(shipment)
    problems = []
    for line_id, quantity in sorted(wanted.items()):
        line = lines.get(line_id)
        if line is None:
            problems.append(f"line {line_id} does not exist")
        elif line.open_quantity < quantity:
            state = "is closed" if line.closed else f"has {line.open_quantity.normalize():f} left to fulfil"
            problems.append(f"line {line_id} {state}, the package ships {quantity.normalize():f}")
    if problems:
        raise Rejected(f"NetSuite salesOrder {order_id} cannot take Amazon package {shipment.package_id}: "
                       + "; ".join(problems), code="PackageDoesNotFit")
    items: list[dict[str, Any]] = []
    for line_id, line in lines.items():
        if line.open_quantity <= 0:
            continue  # NetSuite lists only lines with something left to fulfil on the new record
        if line_id in wanted:
            items.append({"orderLine": _line_ref(line_id), "itemReceive": True,
                          "quantity": json_number(wanted[line_id])})
        else:
            items.append({"orderLine": _line_ref(line_id), "itemReceive": False})
    body: dict[str, Any] = {"shipStatus": {"id": cfg.ship_status}, cfg.package_id_field: shipment.package_id,
                            "item": {"items": items}}
    _set(body, "externalId", external_id(shipment.package_id, cfg))
    if shipment.tracking_number:
        package: dict[str, Any] = {"packageTrackingNumber": shipment.tracking_number}
        if cfg.package_weight_lb is not None:
            package["packageWeight"] = cfg.package_weight_lb
        body["package"] = {"items": [package]}
    _set(body, cfg.carrier_field, shipment.carrier_code)
    _set(body, cfg.tracking_url_field, shipment.tracking_url)
    if shipment.estimated_delivery is not None:
        _set(body, cfg.estimated_delivery_field, iso_utc(shipment.estimated_delivery))
    return body


# -- updates of an existing item fulfillment ---------------------------------------------------------


def _text(value: Any) -> str | None:
    """A stored custom value as text (select-type fields come back as references [U])."""
    if isinstance(value, dict):
        value = value.get("refName") or value.get("id")
    return mapping.text(value)


def _changed(record: dict[str, Any], values: dict[str | None, str | None]) -> dict[str, Any]:
    return {field: value for field, value in values.items()
            if field is not None and value is not None and _text(record.get(field)) != value}


def _stored_time(record: dict[str, Any], field: str | None) -> datetime | None:
    if field is None:
        return None
    try:
        stored = datetime.fromisoformat((_text(record.get(field)) or "").replace("Z", "+00:00"))
    except ValueError:
        return None  # unreadable or empty: a fresh value will replace it
    return stored if stored.tzinfo else stored.replace(tzinfo=UTC)


def milestone_location(milestone: Milestone) -> str | None:
    return ", ".join(p for p in (milestone.locality, milestone.region, milestone.country) if p) or None


def package_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    sublist = record.get("package")
    rows = sublist.get("items") if isinstance(sublist, dict) else None
    return [r for r in rows or [] if isinstance(r, dict)]


def tracking_changes(record: dict[str, Any], tracker: Tracker,
                     cfg: NetSuiteShipmentsConfig) -> tuple[dict[str, Any], bool]:
    """``(body, replace_packages)``. A milestone older than the one stored is not written back, so a
    delayed, out-of-order event cannot roll the fulfillment back to an earlier state."""
    values: dict[str | None, str | None] = {cfg.carrier_field: tracker.carrier_code or None,
                                            cfg.tracking_url_field: tracker.tracking_url}
    estimate = tracker.estimated_delivery_latest or tracker.estimated_delivery_earliest
    if estimate is not None:
        values[cfg.estimated_delivery_field] = iso_utc(estimate)
    milestone = tracker.latest_milestone
    if milestone is not None:
        stored = _stored_time(record, cfg.milestone_time_field)
        stale = stored is not None and milestone.occurred_at is not None and milestone.occurred_at < stored
        if not stale:
            values[cfg.milestone_code_field] = milestone.code
            if milestone.occurred_at is not None:
                values[cfg.milestone_time_field] = iso_utc(milestone.occurred_at)
            values[cfg.milestone_location_field] = milestone_location(milestone)
    body = _changed(record, values)
    rows = package_rows(record)
    numbers = [_text(r.get("packageTrackingNumber")) for r in rows]
    if tracker.tracking_number and tracker.tracking_number not in numbers:
        # One package per fulfillment: the carrier's current label replaces the first line, keeping
        # the weight and description someone may have entered (the sublist has no key to merge on).
        first = rows[0] if rows else {}
        package = {k: v for k, v in first.items() if k in ("packageWeight", "packageDescr", "packageCartonNumber")}
        package["packageTrackingNumber"] = tracker.tracking_number
        if "packageWeight" not in package and cfg.package_weight_lb is not None:
            package["packageWeight"] = cfg.package_weight_lb
        keep = [{k: v for k, v in r.items() if k != "links"} for r in rows[1:]]
        body["package"] = {"items": [package, *keep]}
        return body, True
    return body, False


def delivered_changes(record: dict[str, Any], delivered_at: datetime,
                      cfg: NetSuiteShipmentsConfig) -> dict[str, Any]:
    """Delivery time, and ship status Shipped if the fulfillment was created as picked or packed."""
    body = _changed(record, {cfg.delivered_time_field: iso_utc(delivered_at)})
    if mapping.ref_id(record.get("shipStatus")) != "C":
        body["shipStatus"] = {"id": "C"}
    return body


def failure_changes(record: dict[str, Any], reason: str, occurred_at: datetime | None,
                    cfg: NetSuiteShipmentsConfig) -> dict[str, Any]:
    return _changed(record, {cfg.delivery_failure_field: reason,
                             cfg.delivery_failure_time_field: iso_utc(occurred_at) if occurred_at else None})


# -- cancellations -----------------------------------------------------------------------------------


def _stored_decimal(value: Any) -> Decimal | None:
    text = _text(value)
    try:
        return Decimal(text) if text is not None else None
    except InvalidOperation:
        return None


def cancellation_lines(order_id: str, record: dict[str, Any], cancellations: Iterable[LineCancellation],
                       cfg: NetSuiteShipmentsConfig) -> list[dict[str, Any]]:
    """Sales-order ``item`` lines to PATCH (merged by ``line``); ``[]`` when all are applied already.

    ``remaining_quantity`` is a total, so the target is absolute: 0 closes the line (its quantity is
    kept, as NetSuite does for closed lines), more lowers the quantity to it. A line is never raised:
    when it is already below the target someone lowered it by hand, and that is left alone.
    """
    lines = order_lines(record)
    out: list[dict[str, Any]] = []
    for cancel in cancellations:
        line = lines.get(cancel.oms_line_id)
        if line is None:
            raise Rejected(f"NetSuite salesOrder {order_id} has no line {cancel.oms_line_id} to cancel",
                           code="UnknownLine")
        target = cancel.remaining_quantity
        if target < 0 or cancel.cancelled_quantity < 0:
            raise Rejected(f"Amazon cancellation of NetSuite salesOrder {order_id} line {line.line} has negative "
                           f"quantities (cancelled {cancel.cancelled_quantity}, remaining {target})",
                           code="BadCancellation")
        if target < line.fulfilled:
            raise Rejected(f"NetSuite salesOrder {order_id} line {line.line}: Amazon leaves "
                           f"{target.normalize():f} ordered but {line.fulfilled.normalize():f} are fulfilled already",
                           code="CancellationBelowFulfilled")
        change: dict[str, Any] = {}
        if target == 0:
            if not line.closed:
                change["isClosed"] = True
        elif target < line.quantity:
            change["quantity"] = json_number(target)
        if cancel.cancelled_quantity > 0 and cfg.cancelled_quantity_field is not None:
            stored = _stored_decimal(line.custom.get(cfg.cancelled_quantity_field))
            if stored != cancel.cancelled_quantity:
                change[cfg.cancelled_quantity_field] = json_number(cancel.cancelled_quantity)
        if (cancel.cancelled_quantity > 0 and cfg.cancel_reason_field is not None
                and _text(line.custom.get(cfg.cancel_reason_field)) != cancel.reason):
            change[cfg.cancel_reason_field] = str(cancel.reason)
        if change:
            out.append({"line": _line_ref(line.line), **change})
    return out
