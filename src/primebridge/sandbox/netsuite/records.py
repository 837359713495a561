"""The record service's behaviour: JSON shapes on read, PATCH / create / transform on write.

Shapes follow reference §2.3: string ids, references as ``{"links", "id", "refName"}``, enums as
``{"id", "refName"}`` (bare with ``simpleEnumFormat=true``), sublists and subrecords only as links
unless ``expandSubResources=true``, datetimes in UTC ``...Z``, empty fields left out. Input field
names are matched case-insensitively and output is always camelCase. A write is validated as a
whole on a copy of the record, so a rejected PATCH changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.sandbox.netsuite.errors import NsError, invalid_value, not_found
from primebridge.sandbox.netsuite.state import (
    COUNTRY_NAMES,
    ITEM_TYPE_NAMES,
    ORDER_STATUS_NAMES,
    SHIP_STATUS_NAMES,
    Catalog,
    Line,
    Ref,
    SalesOrder,
    SandboxState,
)
from primebridge.sandbox.netsuite.suiteql import Row, Table

RECORD_ROOT = "/services/rest/record/v1"
ADDRESS_FIELDS = ("addressee", "attention", "addr1", "addr2", "addr3", "city", "state", "zip", "country",
                  "addrPhone")
SO_SETTABLE = ("orderStatus", "entity", "email", "memo", "externalId", "shipMethod", "shippingAddress",
               "tranDate", "currency", "item")
SO_READ_ONLY = ("id", "tranId", "status", "createdDate", "lastModifiedDate", "total", "subtotal", "links",
                "shipAddress")
LINE_SETTABLE = ("line", "item", "quantity", "rate", "description", "location", "isClosed")
LINE_READ_ONLY = ("amount", "itemType", "quantityFulfilled", "links")
NON_GOODS = ("Description", "Subtotal", "Discount", "Markup", "EndGroup", "Group")


class FieldRules:
    """How unknown property names are treated: ``X-NetSuite-PropertyNameValidation`` (default
    ``warning``: ignored and reported in a header) and which custom field ids exist (``None``: any
    ``custbody_``/``custcol_`` id is taken to exist)."""

    def __init__(self, validation: str = "warning", custom_fields: frozenset[str] | None = None) -> None:
        if validation not in ("ignore", "warning", "error"):
            raise NsError(400, "INVALID_REQUEST", f"X-NetSuite-PropertyNameValidation must be ignore, warning "
                          f"or error, not {validation!r}")
        self.validation = validation
        self.custom_fields = custom_fields
        self.warnings: list[str] = []

    def is_custom(self, name: str, prefix: str) -> bool:
        if not name.startswith(prefix):
            return False
        return self.custom_fields is None or name in self.custom_fields

    def unknown(self, name: str, path: str) -> None:
        message = f"Invalid property name '{name}' at {path}: the field does not exist on the record."
        if self.validation == "error":
            raise NsError(400, "INVALID_CONTENT", message, path=path)
        if self.validation == "warning":
            self.warnings.append(message)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def href(base: str, kind: str, ref_id: str | int) -> str:
    return f"{base}{RECORD_ROOT}/{kind}/{ref_id}"


def ref_json(ref: Ref, base: str, kind: str) -> dict[str, Any]:
    return {"links": [{"rel": "self", "href": href(base, kind, ref.id)}], "id": ref.id, "refName": ref.name}


def enum_json(letter: str, names: dict[str, str], simple: bool) -> Any:
    return letter if simple else {"id": letter, "refName": names.get(letter, letter)}


def number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def address_json(address: dict[str, Any] | None, base: str, owner: str) -> dict[str, Any] | None:
    if not address:
        return None
    country = address.get("country")
    out = {k: address.get(k) for k in ADDRESS_FIELDS if k != "country"}
    out["country"] = {"id": country, "refName": COUNTRY_NAMES.get(country, country)} if country else None
    out["links"] = [{"rel": "self", "href": f"{owner}/shippingAddress"}]
    return _clean(out)


def address_text(address: dict[str, Any] | None) -> str | None:
    if not address:
        return None
    city_line = " ".join(p for p in (address.get("city"), address.get("state"), address.get("zip")) if p)
    parts = [address.get("addressee"), address.get("addr1"), address.get("addr2"), city_line,
             COUNTRY_NAMES.get(address.get("country") or "", address.get("country"))]
    return "\n".join(p for p in parts if p) or None


def line_json(line: Line, so: SalesOrder, base: str, simple: bool) -> dict[str, Any]:
    owner = href(base, "salesOrder", so.id)
    data: dict[str, Any] = {
        "links": [{"rel": "self", "href": f"{owner}/item/{line.line}"}],
        "line": line.line,
        "item": ref_json(line.item, base, "inventoryItem"),
        "itemType": enum_json(line.item_type, ITEM_TYPE_NAMES, simple),
        "quantity": number(line.quantity),
        "rate": number(line.rate),
        "amount": number(line.amount),
        "description": line.description,
        "location": ref_json(line.location, base, "location") if line.location else None,
        "isClosed": line.is_closed,
        "quantityFulfilled": number(line.quantity_fulfilled),
    }
    data.update(line.custom)
    return _clean(data)


def order_total(so: SalesOrder) -> Decimal:
    return sum((ln.amount or Decimal(0) for ln in so.lines if not ln.is_closed), Decimal(0))


def render_sales_order(so: SalesOrder, base: str, *, expand: bool, simple_enum: bool = False,
                       fields: Iterable[str] | None = None) -> dict[str, Any]:
    owner = href(base, "salesOrder", so.id)
    total = number(order_total(so))
    data: dict[str, Any] = {
        "links": [{"rel": "self", "href": owner}],
        "id": str(so.id),
        "tranId": so.tran_id,
        "externalId": so.external_id,
        "entity": ref_json(so.entity, base, "customer"),
        "email": so.email,
        "tranDate": so.tran_date.isoformat(),
        "orderStatus": enum_json(so.order_status, ORDER_STATUS_NAMES, simple_enum),
        "status": enum_json(so.status(), ORDER_STATUS_NAMES, simple_enum),
        "currency": ref_json(so.currency, base, "currency"),
        "shipMethod": ref_json(so.ship_method, base, "shipItem") if so.ship_method else None,
        "shipAddress": address_text(so.shipping_address),
        "shippingAddress": (address_json(so.shipping_address, base, owner) if expand
                            else {"links": [{"rel": "self", "href": f"{owner}/shippingAddress"}]}),
        "memo": so.memo,
        "subtotal": total,
        "total": total,
        "createdDate": iso(so.created),
        "lastModifiedDate": iso(so.last_modified),
    }
    data.update(so.custom)
    sublist_links = [{"rel": "self", "href": f"{owner}/item"}]
    if expand:
        items = [line_json(line, so, base, simple_enum) for line in so.lines]
        data["item"] = {"links": sublist_links, "count": len(items), "hasMore": False, "offset": 0,
                        "totalResults": len(items), "items": items}
    else:
        data["item"] = {"links": sublist_links}
    if fields is not None:
        wanted = {f.lower() for f in fields}
        data = {k: v for k, v in data.items() if k == "links" or k.lower() in wanted}
    return _clean(data)


def render_reference(kind: str, ref: Ref, base: str) -> dict[str, Any]:
    data: dict[str, Any] = {"links": [{"rel": "self", "href": href(base, kind, ref.id)}], "id": ref.id}
    if kind == "currency":
        data.update(name=ref.name, symbol=ref.extra.get("symbol"), isInactive=False)
    elif kind in ("inventoryItem", "shipItem"):
        data.update(itemId=ref.name, displayName=ref.name)
    elif kind == "customer":
        data.update(entityId=ref.name, companyName=ref.name, email=ref.extra.get("email"))
    else:
        data.update(name=ref.name)
    return _clean(data)


# -- parsing request values ---------------------------------------------------------------------------


def canonical(name: str, known: Iterable[str]) -> str | None:
    lowered = name.lower()
    return next((k for k in known if k.lower() == lowered), None)


def parse_number(value: Any, field: str, path: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise invalid_value(field, value, path)
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise invalid_value(field, value, path) from exc
    if not result.is_finite():
        raise invalid_value(field, value, path)
    return result


def parse_text(value: Any, field: str, path: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list | bool):
        raise invalid_value(field, value, path)
    return str(value)


def parse_ref(catalog: Catalog, value: Any, field: str, path: str) -> Ref:
    """Writes reference existing records by ``{"id": ...}`` (a bare id is tolerated)."""
    ref_id = value.get("id") if isinstance(value, dict) else value
    if isinstance(ref_id, bool) or ref_id in (None, ""):
        raise invalid_value(field, value, path)
    ref = catalog.get(str(ref_id))
    if ref is None:
        raise invalid_value(field, ref_id, path)
    return ref


def parse_order_status(value: Any, path: str = "orderStatus") -> str:
    letter = value.get("id") if isinstance(value, dict) else value
    if isinstance(value, dict) and letter is None and value.get("refName"):
        letter = next((k for k, v in ORDER_STATUS_NAMES.items() if v == value["refName"]), None)
    if letter not in ("A", "B"):
        raise invalid_value("orderStatus", letter, path)
    return str(letter)


def parse_bool(value: Any, field: str, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_value(field, value, path)
    return value


def parse_custom(value: Any, field: str, path: str) -> Any:
    if isinstance(value, dict) and "id" in value:
        return {"id": str(value["id"])}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise invalid_value(field, value, path)


def parse_address(current: dict[str, Any] | None, value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_value("shippingAddress", value, path)
    address = dict(current or {})
    for key, raw in value.items():
        name = canonical(key, ADDRESS_FIELDS)
        if name is None:
            if key == "links":
                continue
            raise NsError(400, "INVALID_CONTENT", f"Invalid property name '{key}' in shippingAddress",
                          path=f"{path}.{key}")
        if name == "country":
            code = raw.get("id") if isinstance(raw, dict) else raw
            if not isinstance(code, str) or len(code) != 2:
                raise invalid_value("country", code, f"{path}.country")
            address["country"] = code.upper()
        else:
            address[name] = parse_text(raw, name, f"{path}.{name}")
    return {k: v for k, v in address.items() if v not in (None, "")}


def parse_date(value: Any, field: str, path: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise invalid_value(field, value, path) from exc


# -- writes ------------------------------------------------------------------------------------------


def _apply_line(state: SandboxState, line: Line, values: dict[str, Any], path: str, rules: FieldRules) -> None:
    for key, raw in values.items():
        name = canonical(key, LINE_SETTABLE + LINE_READ_ONLY)
        where = f"{path}.{key}"
        if name == "line":
            continue
        if name in LINE_READ_ONLY:
            if name == "links":
                continue
            raise NsError(400, "INVALID_CONTENT", f"The field {name} is read-only.", path=where)
        if name == "item":
            line.item = parse_ref(state.items, raw, "item", where)
        elif name == "quantity":
            quantity = parse_number(raw, "quantity", where)
            if quantity <= 0:
                raise invalid_value("quantity", raw, where)
            line.quantity = quantity
        elif name == "rate":
            line.rate = None if raw is None else parse_number(raw, "rate", where)
        elif name == "description":
            line.description = parse_text(raw, "description", where)
        elif name == "location":
            line.location = None if raw is None else parse_ref(state.locations, raw, "location", where)
        elif name == "isClosed":
            line.is_closed = parse_bool(raw, "isClosed", where)
        elif rules.is_custom(key.lower(), "custcol"):
            value = parse_custom(raw, key, where)
            if value is None:
                line.custom.pop(key.lower(), None)
            else:
                line.custom[key.lower()] = value
        else:
            rules.unknown(key, where)


def _apply_items(state: SandboxState, so: SalesOrder, value: Any, replace: bool, rules: FieldRules) -> None:
    if value is None or (isinstance(value, dict) and "items" in value and value["items"] is None):
        so.lines = []
        return
    if not isinstance(value, dict) or not isinstance(value.get("items"), list):
        raise NsError(400, "INVALID_CONTENT", "The item sublist must be {\"items\": [...]}.", path="item")
    kept: set[int] = set()
    for index, raw in enumerate(value["items"]):
        path = f"item.items[{index}]"
        if not isinstance(raw, dict):
            raise NsError(400, "INVALID_CONTENT", "A sublist line must be an object.", path=path)
        key = canonical("line", raw)
        if key is not None:
            number_value = raw[key]
            if isinstance(number_value, bool) or not str(number_value).isdigit():
                raise invalid_value("line", number_value, f"{path}.line")
            line = so.line(int(number_value))
            if line is None:
                raise invalid_value("line", number_value, f"{path}.line")
            _apply_line(state, line, raw, path, rules)
        else:
            item_key, qty_key = canonical("item", raw), canonical("quantity", raw)
            if item_key is None or qty_key is None:
                raise NsError(400, "USER_ERROR", "Please enter value(s) for: Item, Quantity", path=path)
            line = so.add_line(item=parse_ref(state.items, raw[item_key], "item", f"{path}.item"),
                               quantity=Decimal(1))
            _apply_line(state, line, raw, path, rules)
        kept.add(line.line)
    if replace:
        so.lines = [ln for ln in so.lines if ln.line in kept]


def _apply_body(state: SandboxState, so: SalesOrder, body: dict[str, Any], replace: set[str],
                rules: FieldRules, *, creating: bool) -> None:
    items_value: Any = ...
    for key, raw in body.items():
        name = canonical(key, SO_SETTABLE + SO_READ_ONLY)
        if name in SO_READ_ONLY:
            if name in ("links",) or (creating and name == "id"):
                continue
            raise NsError(400, "INVALID_CONTENT", f"The field {name} is read-only.", path=key)
        if name == "orderStatus":
            so.order_status = parse_order_status(raw, key)
        elif name == "entity":
            so.entity = parse_ref(state.customers, raw, "entity", key)
        elif name == "email":
            so.email = parse_text(raw, "email", key)
        elif name == "memo":
            so.memo = parse_text(raw, "memo", key)
        elif name == "externalId":
            so.external_id = parse_text(raw, "externalId", key)
        elif name == "shipMethod":
            so.ship_method = None if raw is None else parse_ref(state.ship_items, raw, "shipMethod", key)
        elif name == "shippingAddress":
            so.shipping_address = parse_address(so.shipping_address, raw, key)
        elif name == "tranDate":
            so.tran_date = parse_date(raw, "tranDate", key)
        elif name == "currency":
            if not creating:
                raise NsError(400, "INVALID_CONTENT", "The currency of an existing order cannot be changed.",
                              path=key)
            so.currency = parse_ref(state.currencies, raw, "currency", key)
        elif name == "item":
            items_value = raw
        elif rules.is_custom(key.lower(), "custbody"):
            value = parse_custom(raw, key, key)
            if value is None:
                so.custom.pop(key.lower(), None)
            else:
                so.custom[key.lower()] = value
        else:
            rules.unknown(key, key)
    if items_value is not ...:
        _apply_items(state, so, items_value, "item" in replace, rules)


def _check_external_id(state: SandboxState, so: SalesOrder) -> None:
    """A second order with the same ``externalId`` is refused; the real code is unconfirmed [U]."""
    if so.external_id and any(o.external_id == so.external_id and o.id != so.id for o in state.orders.values()):
        raise NsError(400, "DUP_RCRD", f"A record with externalId {so.external_id} already exists.",
                      path="externalId")


def _line_path(body: dict[str, Any], line: int, default: str) -> str:
    """The ``o:errorPath`` of the body line that addresses sales-order line ``line``."""
    sublist = body.get(canonical("item", body) or "item")
    rows = sublist.get("items") if isinstance(sublist, dict) else None
    for index, raw in enumerate(rows or []):
        key = canonical("line", raw) if isinstance(raw, dict) else None
        if key is not None and str(raw[key]) == str(line):
            return f"item.items[{index}]"
    return default


def _check_fulfilled_quantities(before: SalesOrder, after: SalesOrder, body: dict[str, Any]) -> None:
    """A line's quantity cannot drop below what was fulfilled already, and a line with fulfilments
    cannot be removed; closing such a line is allowed (NetSuite's exact wording is [U])."""
    kept = {ln.line for ln in after.lines}
    for line in before.lines:
        if line.quantity_fulfilled > 0 and line.line not in kept:
            raise NsError(400, "USER_ERROR", f"Line {line.line} has been fulfilled and cannot be removed.",
                          path="item")
    for line in after.lines:
        if line.quantity < line.quantity_fulfilled:
            raise NsError(400, "USER_ERROR",
                          f"You cannot lower the quantity of line {line.line} to {line.quantity.normalize():f}: "
                          f"{line.quantity_fulfilled.normalize():f} have been fulfilled already.",
                          path=_line_path(body, line.line, "item") + ".quantity")


def patch_sales_order(state: SandboxState, so: SalesOrder, body: Any, *, replace: set[str],
                      rules: FieldRules, user: str) -> SalesOrder:
    if not isinstance(body, dict):
        raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    unknown = replace - {"item"}
    if unknown:
        raise NsError(400, "INVALID_REQUEST", f"replace names unknown sublists: {', '.join(sorted(unknown))}")
    draft = copy.deepcopy(so)
    _apply_body(state, draft, body, replace, rules, creating=False)
    _check_fulfilled_quantities(so, draft, body)
    _check_external_id(state, draft)
    draft.last_modified = state.now()
    draft.last_modified_by = user
    state.orders[draft.id] = draft
    return draft


def create_sales_order(state: SandboxState, body: Any, *, rules: FieldRules, user: str) -> SalesOrder:
    if not isinstance(body, dict):
        raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    entity_key = canonical("entity", body)
    if entity_key is None:
        raise NsError(400, "USER_ERROR", "Please enter value(s) for: Customer", path="entity")
    entity = parse_ref(state.customers, body[entity_key], "entity", "entity")
    now = state.now()
    new_id = state.new_transaction_id()
    currency = state.currency_for_code(entity.extra.get("currency", "USD"))
    so = SalesOrder(id=new_id, tran_id=f"SO{new_id}", entity=entity, currency=currency, order_status="A",
                    created=now, last_modified=now, last_modified_by=user, tran_date=now.date(),
                    email=entity.extra.get("email"))
    _apply_body(state, so, body, set(), rules, creating=True)
    if not so.lines:
        raise NsError(400, "USER_ERROR", "You must enter at least one line item for this transaction.",
                      path="item")
    _check_external_id(state, so)
    state.orders[so.id] = so
    return so


def find_order(state: SandboxState, record_id: str) -> SalesOrder:
    if record_id.lower().startswith("eid:"):
        external = record_id[4:]
        found = next((o for o in state.orders.values() if o.external_id == external), None)
    else:
        found = state.orders.get(int(record_id)) if record_id.isdigit() else None
    if found is None:
        raise not_found()
    return found


# -- SuiteQL tables ----------------------------------------------------------------------------------

TRANSACTION_COLUMNS = frozenset({
    "id", "tranid", "type", "recordtype", "status", "entity", "trandate", "createddate", "lastmodifieddate",
    "lastmodifiedby", "externalid", "memo", "currency", "foreigntotal", "total", "email", "shipmethod",
    "createdfrom",
})


def _custom_value(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def transaction_rows(state: SandboxState) -> list[Row]:
    rows: list[Row] = []
    for so in state.orders.values():
        status = so.status()
        total = order_total(so)
        row: Row = {
            "id": so.id, "tranid": so.tran_id, "type": "SalesOrd", "recordtype": "salesorder", "status": status,
            "cf:status": f"SalesOrd:{status}", "df:status": ORDER_STATUS_NAMES[status],
            "entity": int(so.entity.id), "df:entity": so.entity.name,
            "trandate": datetime.combine(so.tran_date, datetime.min.time(), tzinfo=UTC),
            "createddate": so.created, "lastmodifieddate": so.last_modified,
            "lastmodifiedby": int(so.last_modified_by),
            "df:lastmodifiedby": (state.employees.get(so.last_modified_by) or Ref("", so.last_modified_by)).name,
            "externalid": so.external_id, "memo": so.memo, "currency": int(so.currency.id),
            "df:currency": so.currency.name, "foreigntotal": total, "total": total, "email": so.email,
            "shipmethod": int(so.ship_method.id) if so.ship_method else None,
            "df:shipmethod": so.ship_method.name if so.ship_method else None,
        }
        row.update({k: _custom_value(v) for k, v in so.custom.items()})
        rows.append(row)
    for ful in state.fulfillments.values():
        rows.append({
            "id": ful.id, "tranid": ful.tran_id, "type": "ItemShip", "recordtype": "itemfulfillment",
            "status": ful.ship_status, "cf:status": f"ItemShip:{ful.ship_status}",
            "df:status": SHIP_STATUS_NAMES[ful.ship_status], "entity": int(ful.entity.id),
            "df:entity": ful.entity.name, "createddate": ful.created, "lastmodifieddate": ful.last_modified,
            "lastmodifiedby": int(ful.last_modified_by), "externalid": ful.external_id, "memo": ful.memo,
            "createdfrom": ful.created_from,
            "trandate": datetime.combine(ful.created.date(), datetime.min.time(), tzinfo=UTC),
            **{k: _custom_value(v) for k, v in ful.custom.items()},
        })
    return rows


def suiteql_tables(state: SandboxState) -> dict[str, Table]:
    """Rows are built when the query runs, under the state lock held by the caller."""
    return {"transaction": Table("transaction", TRANSACTION_COLUMNS, lambda: transaction_rows(state),
                                 open_prefixes=("custbody",))}
