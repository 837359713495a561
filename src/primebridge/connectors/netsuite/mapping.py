"""A NetSuite ``salesOrder`` (REST JSON, sublists expanded) as a canonical ``SalesOrder``.

Pure functions, so every mapping rule is testable without a server. Choices worth knowing:

* ``line_id`` is the sublist's ``line`` value, the key NetSuite uses to update a line in place and
  that an item fulfilment refers to as ``orderLine``; it is not the position and may have gaps.
* ``item`` is the item's name (the ``refName``, last segment of a ``Parent : Child`` path), because
  that is what merchants use as SKU and what ``routing.sku_map`` is written in; the internal id is
  used only when NetSuite sends no name. Lines that carry no goods (discount, subtotal, description,
  markup, payment, group start/end) are left out: they are not fulfilled by anyone.
* ``status`` is the read-only lifecycle ``status`` letter (A–H) when present, else ``orderStatus``
  (A/B): a closed or cancelled order then does not look "pending fulfilment" to the routing rules.
  Both letters are kept in ``extra``.
* ``on_hold`` is "pending approval" (``fields.pending_approval_status``) or the configured hold
  checkbox; a held order is created at Amazon but not released (``ExecutionState.NOT_STARTED``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.config import NetSuiteFieldsConfig
from primebridge.domain.errors import Rejected
from primebridge.domain.model import Address, Money, SalesOrder, SalesOrderLine

OMS_NAME = "netsuite"
NON_GOODS_LINE_TYPES = frozenset({
    "Discount", "Subtotal", "Description", "Markup", "Payment", "Group", "EndGroup",
})
TRUE_TEXT = frozenset({"t", "true", "yes", "y", "1"})


def _bad(order_id: str, what: str) -> Rejected:
    return Rejected(f"NetSuite salesOrder {order_id}: {what}", code="BadNetSuiteData")


def ref_id(value: Any) -> str | None:
    """``{"id": "5", "refName": ...}``, a bare enum letter (``simpleEnumFormat``) or a bare id."""
    if isinstance(value, dict):
        raw = value.get("id")
        return None if raw in (None, "") else str(raw)
    if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
        return str(value)
    return None


def ref_name(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("refName") not in (None, ""):
        return str(value["refName"])
    return None


def truthy(value: Any) -> bool:
    """Checkboxes are JSON booleans in REST but ``'T'``/``'F'`` in SuiteQL and some exports."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in TRUE_TEXT
    return False


def text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    result = str(value).strip()
    return result or None


def decimal(value: Any, order_id: str, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _bad(order_id, f"{what} is a boolean, not a number")
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise _bad(order_id, f"{what} {value!r} is not a number") from exc
    if not result.is_finite():  # NaN/Infinity parse, then fail later with a bare InvalidOperation
        raise _bad(order_id, f"{what} {value!r} is not a finite number")
    return result


def parse_datetime(value: Any, order_id: str, what: str) -> datetime | None:
    """REST datetimes are ISO 8601 in UTC (``2017-07-21T17:32:28Z``); an offset is accepted too."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(order_id, f"{what} {value!r} is not an ISO 8601 datetime") from exc
    if parsed.tzinfo is None:
        raise _bad(order_id, f"{what} {value!r} has no time zone")
    return parsed


def ship_to(record: dict[str, Any], order_id: str) -> Address | None:
    """The ``shippingAddress`` subrecord; ``None`` when there is none or it holds no address.

    ``addr1`` and ``addr2`` are joined with ", " into the single canonical street line.
    """
    address = record.get("shippingAddress")
    if not isinstance(address, dict):
        return None
    street = ", ".join(p for p in (text(address.get("addr1")), text(address.get("addr2"))) if p)
    city = text(address.get("city"))
    postal = text(address.get("zip"))
    country = ref_id(address.get("country"))
    if not (street or city or postal):
        return None
    name = (text(address.get("addressee")) or text(address.get("attention"))
            or ref_name(record.get("entity")) or "")
    return Address(
        name=name,
        street=street,
        city=city or "",
        postal_code=postal or "",
        country_code=(country or "").upper(),
        region=text(address.get("state")),
        phone=text(address.get("addrPhone")),
    )


def item_name(value: Any) -> str | None:
    name = ref_name(value)
    if name is not None:
        return name.rsplit(" : ", 1)[-1].strip() or None
    return ref_id(value)


def line_items(record: dict[str, Any], order_id: str) -> list[dict[str, Any]]:
    sublist = record.get("item")
    if sublist is None:
        return []
    if not isinstance(sublist, dict):
        raise _bad(order_id, "the item sublist is not an object")
    if "items" not in sublist:
        raise _bad(order_id, "the item sublist was not expanded (expandSubResources=true is needed)")
    items = sublist["items"] or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _bad(order_id, "item.items is not a list of lines")
    return items


def map_line(raw: dict[str, Any], order_id: str, currency: str,
             fields: NetSuiteFieldsConfig) -> SalesOrderLine | None:
    if ref_id(raw.get("itemType")) in NON_GOODS_LINE_TYPES:
        return None
    line_no = raw.get("line")
    if line_no in (None, "") or isinstance(line_no, bool):
        raise _bad(order_id, f"an item line has no line number: {sorted(raw)}")
    line_id = str(line_no)
    item = item_name(raw.get("item"))
    if item is None:
        raise _bad(order_id, f"line {line_id} has no item")
    quantity = decimal(raw.get("quantity"), order_id, f"line {line_id} quantity")
    if quantity is None:
        return None
    quantity = abs(quantity)
    if quantity == quantity.to_integral_value():
        quantity = quantity.quantize(Decimal(1))  # REST sends 2.0 for two pieces
    rate = decimal(raw.get("rate"), order_id, f"line {line_id} rate")
    if rate is None:
        amount = decimal(raw.get("amount"), order_id, f"line {line_id} amount")
        rate = amount / quantity if amount is not None and quantity else None
    return SalesOrderLine(
        line_id=line_id,
        item=item,
        quantity=quantity,
        title=text(raw.get("description")),
        unit_price=Money(rate, currency) if rate is not None else None,
        location=ref_id(raw.get("location")),
        amazon_flag=truthy(raw.get(fields.amazon_flag_field)),
        delivery_preview_id=text(raw.get(fields.delivery_preview_field)),
        delivery_offer_id=text(raw.get(fields.delivery_offer_field)),
        amazon_line_id=text(raw.get(fields.amazon_line_field)),
        cancelled=truthy(raw.get("isClosed")),
    )


def to_sales_order(record: dict[str, Any], *, currency: str, fields: NetSuiteFieldsConfig) -> SalesOrder:
    """``currency`` is the ISO code, resolved by the caller (NetSuite sends only a reference)."""
    order_id = ref_id(record.get("id"))
    if order_id is None:
        raise Rejected("NetSuite salesOrder without an id", code="BadNetSuiteData")
    status_letter = ref_id(record.get("status"))
    order_status = ref_id(record.get("orderStatus"))
    status = status_letter or order_status
    on_hold = (status == fields.pending_approval_status or order_status == fields.pending_approval_status
               or (fields.hold_field is not None and truthy(record.get(fields.hold_field))))
    lines = [line for raw in line_items(record, order_id)
             if (line := map_line(raw, order_id, currency, fields)) is not None]
    total = decimal(record.get("total"), order_id, "total")
    tax_total = decimal(record.get("taxTotal"), order_id, "taxTotal")
    changed = parse_datetime(record.get("lastModifiedDate"), order_id, "lastModifiedDate")
    entity = record.get("entity")
    extra = {key: value for key, value in {
        "tranId": text(record.get("tranId")),
        "externalId": text(record.get("externalId")),
        "status": status_letter,
        "orderStatus": order_status,
        "entityId": ref_id(entity),
        "currencyId": ref_id(record.get("currency")),
        "shipMethodName": ref_name(record.get("shipMethod")),
    }.items() if value is not None}
    return SalesOrder(
        oms=OMS_NAME,
        order_id=order_id,
        lines=tuple(lines),
        currency=currency,
        ship_to=ship_to(record, order_id),
        customer_name=ref_name(entity),
        customer_email=text(record.get("email")),
        customer_id=ref_id(entity),
        status=status,
        on_hold=on_hold,
        shipping_method=ref_id(record.get("shipMethod")),
        shopper_identity_token=text(record.get(fields.shopper_token_field)),
        total=Money(total, currency) if total is not None else None,
        tax_total=Money(tax_total, currency) if tax_total is not None else None,
        amazon_order_id=text(record.get(fields.amazon_order_field)),
        changed_at=changed,
        version=text(record.get("lastModifiedDate")),
        extra=extra,
    )
