"""The admin API's seeding and "a user changed the order" helpers (``/_sandbox/sales-orders``).

Seed payloads use plain names instead of NetSuite ids (``"item": "SKU-1"``, ``"location": "AMZ-US"``,
``"currency": "USD"``); the sandbox creates the reference records on first use, or with a given id
when the value is ``{"id": ..., "name": ...}``. Bad seed input raises ``ValueError`` (→ 400).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.sandbox.netsuite.state import (
    AMAZON_FLAG_FIELD,
    AMAZON_LINE_FIELD,
    AMAZON_ORDER_FIELD,
    HOLD_FIELD,
    OFFER_FIELD,
    PREVIEW_FIELD,
    SHOPPER_TOKEN_FIELD,
    UI_USER_ID,
    SalesOrder,
    SandboxState,
)

ADDRESS_KEYS = {"addressee": "addressee", "name": "addressee", "attention": "attention", "addr1": "addr1",
                "street": "addr1", "addr2": "addr2", "addr3": "addr3", "city": "city", "state": "state",
                "region": "state", "zip": "zip", "postal_code": "zip", "country": "country",
                "phone": "addrPhone", "addrPhone": "addrPhone"}
LINE_CUSTOM = {"amazon": AMAZON_FLAG_FIELD, "delivery_preview_id": PREVIEW_FIELD,
               "delivery_offer_id": OFFER_FIELD, "amazon_line_id": AMAZON_LINE_FIELD}
BODY_CUSTOM = {"hold": HOLD_FIELD, "shopper_token": SHOPPER_TOKEN_FIELD, "amazon_order_id": AMAZON_ORDER_FIELD}


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{what} must be a number, not {value!r}") from exc


def _moment(value: Any, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{what} must be an ISO 8601 datetime, not {value!r}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)


def _address(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("shipping_address must be an object or null")
    unknown = set(value) - set(ADDRESS_KEYS)
    if unknown:
        raise ValueError(f"shipping_address has unknown keys {sorted(unknown)}")
    address = {ADDRESS_KEYS[k]: (str(v) if v is not None else None) for k, v in value.items()}
    if address.get("country"):
        address["country"] = address["country"].upper()
    return {k: v for k, v in address.items() if v not in (None, "")}


def _set_custom(target: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        target.pop(name, None)
    else:
        target[name] = value


def _apply_line(state: SandboxState, so: SalesOrder, raw: Any, index: int, *, creating: bool) -> None:
    if not isinstance(raw, dict):
        raise ValueError(f"lines[{index}] must be an object")
    if creating or raw.get("line") is None:
        if "item" not in raw:
            raise ValueError(f"lines[{index}] needs an item")
        line = so.add_line(item=state.items.ensure(raw["item"]), quantity=Decimal(1))
    else:
        found = so.line(int(raw["line"]))
        if found is None:
            raise ValueError(f"sales order {so.id} has no line {raw['line']}")
        line = found
    for key, value in raw.items():
        if key in ("line",):
            continue
        if key == "item":
            line.item = state.items.ensure(value)
        elif key == "quantity":
            line.quantity = _decimal(value, f"lines[{index}].quantity")
        elif key == "rate":
            line.rate = None if value is None else _decimal(value, f"lines[{index}].rate")
        elif key == "location":
            line.location = None if value is None else state.locations.ensure(value)
        elif key == "closed":
            line.is_closed = bool(value)
        elif key == "description":
            line.description = None if value is None else str(value)
        elif key == "item_type":
            line.item_type = str(value)
        elif key in LINE_CUSTOM:
            _set_custom(line.custom, LINE_CUSTOM[key], value)
        elif key == "custom":
            if not isinstance(value, dict) or not all(k.startswith("custcol") for k in value):
                raise ValueError(f"lines[{index}].custom must map custcol_* ids to values")
            for name, custom in value.items():
                _set_custom(line.custom, name.lower(), custom)
        else:
            raise ValueError(f"lines[{index}] has an unknown key {key!r}")


def _apply_body(state: SandboxState, so: SalesOrder, payload: dict[str, Any]) -> None:
    for key, value in payload.items():
        if key in ("customer", "lines", "last_modified", "user_id", "currency", "id", "tran_id"):
            continue
        if key == "status":
            if value not in ("A", "B"):
                raise ValueError("status must be 'A' (pending approval) or 'B' (pending fulfillment)")
            so.order_status = value
        elif key == "ship_method":
            so.ship_method = None if value is None else state.ship_items.ensure(value)
        elif key == "shipping_address":
            so.shipping_address = _address(value)
        elif key in ("email", "memo", "external_id"):
            setattr(so, key, None if value is None else str(value))
        elif key in BODY_CUSTOM:
            _set_custom(so.custom, BODY_CUSTOM[key], value)
        elif key == "custom":
            if not isinstance(value, dict) or not all(k.startswith("custbody") for k in value):
                raise ValueError("custom must map custbody_* ids to values")
            for name, custom in value.items():
                _set_custom(so.custom, name.lower(), custom)
        else:
            raise ValueError(f"unknown key {key!r}")


def seed_sales_order(state: SandboxState, payload: Any) -> SalesOrder:
    if not isinstance(payload, dict):
        raise ValueError("the seed must be a JSON object")
    customer = payload.get("customer") or payload.get("entity")
    if customer is None:
        raise ValueError("customer is required (a name or {name, email})")
    email = customer.get("email") if isinstance(customer, dict) else None
    entity = state.customers.ensure(customer, email=email)
    lines = payload.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ValueError("lines must be a non-empty list")
    now = _moment(payload["last_modified"], "last_modified") if payload.get("last_modified") else state.now()
    if payload.get("id") is not None:
        new_id = int(payload["id"])
        if new_id in state.orders:
            raise ValueError(f"sales order {new_id} exists already")
        state.next_transaction_id = max(state.next_transaction_id, new_id + 1)
    else:
        new_id = state.new_transaction_id()
    so = SalesOrder(
        id=new_id, tran_id=str(payload.get("tran_id") or f"SO{new_id}"), entity=entity,
        currency=state.currency_for_code(str(payload.get("currency") or "USD")), order_status="B",
        created=now, last_modified=now, last_modified_by=str(payload.get("user_id") or UI_USER_ID),
        tran_date=now.date(), email=email,
    )
    _apply_body(state, so, payload)
    for index, raw in enumerate(lines):
        _apply_line(state, so, raw, index, creating=True)
    state.orders[so.id] = so
    return so


def change_sales_order(state: SandboxState, so: SalesOrder, payload: Any) -> SalesOrder:
    """What a user does in the UI: any body/line change, stamped with a non-integration user."""
    if not isinstance(payload, dict):
        raise ValueError("the change must be a JSON object")
    if "customer" in payload or "currency" in payload:
        raise ValueError("customer and currency cannot be changed")
    _apply_body(state, so, payload)
    lines = payload.get("lines") or []
    if not isinstance(lines, list):
        raise ValueError("lines must be a list")
    for index, raw in enumerate(lines):
        _apply_line(state, so, raw, index, creating=False)
    so.last_modified = (_moment(payload["last_modified"], "last_modified") if payload.get("last_modified")
                        else state.now())
    so.last_modified_by = str(payload.get("user_id") or UI_USER_ID)
    if state.employees.get(so.last_modified_by) is None:
        state.employees.add(f"Employee {so.last_modified_by}", so.last_modified_by)
    return so
