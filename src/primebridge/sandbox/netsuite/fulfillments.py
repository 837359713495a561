"""Item fulfillments in the NetSuite sandbox: the SO → itemFulfillment transform, PATCH, JSON shape,
and the admin inspect routes (``GET /_sandbox/item-fulfillments[/{id}]``).

What the transform checks mirrors what makes real NetSuite refuse one (reference §2.5): the order
must be approved and open (B/D/E), every ``orderLine`` must be an open line with quantity left, and a
line's ``quantity`` may not exceed what remains to fulfil. Lines the body does not mention are
fulfilled in full, as NetSuite's "default items to fulfilled" preference does [U]; a client that
wants only some lines sends ``itemReceive: false`` for the others. A second fulfillment with an
``externalId`` already in use is refused like a duplicate sales order (``DUP_RCRD``, code [U]).

The ``package`` sublist is treated as non-keyed (NetSuite documents no key for it [U]): PATCH
appends lines unless ``?replace=package``.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from primebridge.sandbox.knobs import ADMIN_PREFIX
from primebridge.sandbox.netsuite.errors import NsError, invalid_value, not_found
from primebridge.sandbox.netsuite.records import (
    NON_GOODS,
    FieldRules,
    _clean,
    canonical,
    enum_json,
    href,
    iso,
    parse_bool,
    parse_custom,
    parse_number,
    parse_ref,
    parse_text,
    ref_json,
)
from primebridge.sandbox.netsuite.state import (
    ORDER_STATUS_NAMES,
    SHIP_STATUS_NAMES,
    Fulfillment,
    SalesOrder,
    SandboxState,
)

IF_SETTABLE = ("shipStatus", "externalId", "memo", "item", "package")
IF_READ_ONLY = ("id", "tranId", "createdFrom", "entity", "status", "createdDate", "lastModifiedDate", "links")
TRANSFORM_LINE_FIELDS = ("orderLine", "itemReceive", "quantity", "location")
PACKAGE_TEXT = ("packageTrackingNumber", "packageDescr", "packageCartonNumber", "packageTrackingNumberReturn")
PACKAGE_FIELDS = (*PACKAGE_TEXT, "packageWeight")
FULFILLABLE_STATUSES = ("B", "D", "E")


def _body(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    return value


def _read_only(name: str | None, key: str) -> bool:
    """``True`` for ``links`` (clients send records back as read; ignored); any other read-only field is
    refused, as NetSuite does."""
    if name not in IF_READ_ONLY:
        return False
    if name == "links":
        return True
    raise NsError(400, "INVALID_CONTENT", f"The field {name} is read-only.", path=key)


def _ship_status(raw: Any, path: str) -> str:
    letter = raw.get("id") if isinstance(raw, dict) else raw
    if isinstance(raw, dict) and letter is None and raw.get("refName"):
        letter = next((k for k, v in SHIP_STATUS_NAMES.items() if v == raw["refName"]), None)
    if letter not in SHIP_STATUS_NAMES:
        raise invalid_value("shipStatus", letter, path)
    return str(letter)


def _sublist_rows(value: Any, name: str) -> list[dict[str, Any]] | None:
    """``{"items": [...]}``; ``None`` for ``null`` / ``{"items": null}`` (empties the sublist)."""
    if value is None or (isinstance(value, dict) and "items" in value and value["items"] is None):
        return None
    rows = value.get("items") if isinstance(value, dict) else None
    if not isinstance(rows, list):
        raise NsError(400, "INVALID_CONTENT", f"The {name} sublist must be {{\"items\": [...]}}.", path=name)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise NsError(400, "INVALID_CONTENT", "A sublist line must be an object.", path=f"{name}.items[{index}]")
    return rows


def _packages(value: Any, rules: FieldRules) -> list[dict[str, Any]]:
    rows = _sublist_rows(value, "package")
    packages = []
    for index, raw in enumerate(rows or []):
        package: dict[str, Any] = {}
        for key, item in raw.items():
            where = f"package.items[{index}].{key}"
            name = canonical(key, PACKAGE_FIELDS)
            if name == "packageWeight":
                weight = parse_number(item, name, where)
                if weight <= 0:
                    raise invalid_value(name, item, where)
                package[name] = float(weight)
            elif name is not None:
                package[name] = parse_text(item, name, where)
            elif key != "links":
                rules.unknown(key, where)
        packages.append(_clean(package))
    return packages


def _custom(target: dict[str, Any], key: str, raw: Any) -> None:
    value = parse_custom(raw, key, key)
    if value is None:
        target.pop(key.lower(), None)
    else:
        target[key.lower()] = value


def _check_external_id(state: SandboxState, ful: Fulfillment) -> None:
    if ful.external_id and any(f.external_id == ful.external_id and f.id != ful.id
                               for f in state.fulfillments.values()):
        raise NsError(400, "DUP_RCRD", f"A record with externalId {ful.external_id} already exists.",
                      path="externalId")


def _plan(state: SandboxState, so: SalesOrder, value: Any, rules: FieldRules,
          ) -> tuple[dict[int, Decimal], dict[int, Any]]:
    """Quantity per order line to fulfil, and the location given per line."""
    remaining = {ln.line: ln.quantity - ln.quantity_fulfilled for ln in so.lines
                 if not ln.is_closed and ln.item_type not in NON_GOODS and ln.quantity > ln.quantity_fulfilled}
    plan = dict(remaining)
    locations: dict[int, Any] = {}
    seen: set[int] = set()
    for index, raw in enumerate(_sublist_rows(value, "item") or []):
        path = f"item.items[{index}]"
        key = canonical("orderLine", raw)
        order_line = raw.get(key) if key else None
        if isinstance(order_line, bool) or not str(order_line).isdigit():
            raise invalid_value("orderLine", order_line, f"{path}.orderLine")
        number_value = int(order_line)
        so_line = so.line(number_value)
        if number_value not in remaining:
            why = ("does not exist" if so_line is None else "is closed" if so_line.is_closed
                   else "has nothing left to fulfil")
            raise NsError(400, "INVALID_CONTENT", f"Line {number_value} of sales order {so.id} {why}.",
                          path=f"{path}.orderLine")
        if number_value in seen:
            raise NsError(400, "INVALID_CONTENT", f"Order line {number_value} is listed twice.",
                          path=f"{path}.orderLine")
        seen.add(number_value)
        for field_key in raw:
            if canonical(field_key, TRANSFORM_LINE_FIELDS) is None and field_key != "links":
                rules.unknown(field_key, f"{path}.{field_key}")
        receive_key = canonical("itemReceive", raw)
        if receive_key is not None and not parse_bool(raw[receive_key], "itemReceive", f"{path}.itemReceive"):
            plan.pop(number_value)
            continue
        quantity_key = canonical("quantity", raw)
        if quantity_key is not None:
            quantity = parse_number(raw[quantity_key], "quantity", f"{path}.quantity")
            if quantity <= 0:
                raise invalid_value("quantity", raw[quantity_key], f"{path}.quantity")
            if quantity > remaining[number_value]:
                raise NsError(400, "INVALID_CONTENT",
                              f"You can fulfil at most {remaining[number_value].normalize():f} of line "
                              f"{number_value}; {quantity.normalize():f} was entered.", path=f"{path}.quantity")
            plan[number_value] = quantity
        location_key = canonical("location", raw)
        if location_key is not None and raw[location_key] is not None:
            locations[number_value] = parse_ref(state.locations, raw[location_key], "location",
                                                f"{path}.location")
    return plan, locations


def transform_to_fulfillment(state: SandboxState, so: SalesOrder, body: Any, *, rules: FieldRules,
                             user: str) -> Fulfillment:
    """SO → itemFulfillment; validated in full before the order's fulfilled quantities move."""
    body = _body(body)
    status = so.status()
    if status not in FULFILLABLE_STATUSES:
        raise NsError(400, "USER_ERROR", f"The sales order is {ORDER_STATUS_NAMES[status]} and cannot be "
                      "fulfilled.")
    item_value: Any = None
    ship_status, external_id, memo, packages = "C", None, None, []
    custom: dict[str, Any] = {}
    for key, raw in body.items():
        name = canonical(key, IF_SETTABLE + IF_READ_ONLY)
        if _read_only(name, key):
            continue
        if name == "shipStatus":
            ship_status = _ship_status(raw, key)
        elif name == "externalId":
            external_id = parse_text(raw, "externalId", key)
        elif name == "memo":
            memo = parse_text(raw, "memo", key)
        elif name == "item":
            item_value = raw
        elif name == "package":
            packages = _packages(raw, rules)
        elif rules.is_custom(key.lower(), "custbody"):
            _custom(custom, key, raw)
        else:
            rules.unknown(key, key)
    plan, locations = _plan(state, so, item_value, rules)
    if not plan:
        raise NsError(400, "USER_ERROR", "You must enter at least one line item for this transaction.")
    now = state.now()
    ful = Fulfillment(id=0, tran_id="", created_from=so.id, entity=so.entity, ship_status=ship_status,
                      created=now, last_modified=now, last_modified_by=user, packages=packages,
                      external_id=external_id, memo=memo, custom=custom)
    _check_external_id(state, ful)
    ful.id = state.new_transaction_id()
    ful.tran_id = f"IF{ful.id}"
    for position, (order_line, quantity) in enumerate(sorted(plan.items()), start=1):
        so_line = so.line(order_line)
        assert so_line is not None
        so_line.quantity_fulfilled += quantity
        location = locations.get(order_line, so_line.location)
        ful.lines.append(_clean({"line": position, "orderLine": order_line, "itemReceive": True,
                                 "item": {"id": so_line.item.id, "refName": so_line.item.name},
                                 "quantity": float(quantity),
                                 "location": {"id": location.id, "refName": location.name} if location else None}))
    state.fulfillments[ful.id] = ful
    so.last_modified = now
    so.last_modified_by = user
    return ful


def patch_fulfillment(state: SandboxState, ful: Fulfillment, body: Any, *, replace: set[str],
                      rules: FieldRules, user: str) -> Fulfillment:
    """Ship status, memo, externalId, custom body fields and packages; lines are not editable here."""
    body = _body(body)
    unknown = replace - {"package"}
    if unknown:
        raise NsError(400, "INVALID_REQUEST", f"replace names unknown sublists: {', '.join(sorted(unknown))}")
    draft = copy.deepcopy(ful)
    for key, raw in body.items():
        name = canonical(key, IF_SETTABLE + IF_READ_ONLY)
        if _read_only(name, key):
            continue
        if name == "shipStatus":
            draft.ship_status = _ship_status(raw, key)
        elif name == "externalId":
            draft.external_id = parse_text(raw, "externalId", key)
        elif name == "memo":
            draft.memo = parse_text(raw, "memo", key)
        elif name == "item":
            raise NsError(400, "INVALID_REQUEST", "The sandbox does not change the lines of an item fulfillment.",
                          path=key)
        elif name == "package":
            packages = _packages(raw, rules)
            draft.packages = packages if "package" in replace or raw is None else draft.packages + packages
        elif rules.is_custom(key.lower(), "custbody"):
            _custom(draft.custom, key, raw)
        else:
            rules.unknown(key, key)
    _check_external_id(state, draft)
    draft.last_modified = state.now()
    draft.last_modified_by = user
    state.fulfillments[draft.id] = draft
    return draft


def find_fulfillment(state: SandboxState, record_id: str) -> Fulfillment:
    if record_id.lower().startswith("eid:"):
        found = next((f for f in state.fulfillments.values() if f.external_id == record_id[4:]), None)
    else:
        found = state.fulfillments.get(int(record_id)) if record_id.isdigit() else None
    if found is None:
        raise not_found()
    return found


def render_fulfillment(ful: Fulfillment, base: str, *, expand: bool, simple_enum: bool = False) -> dict[str, Any]:
    owner = href(base, "itemFulfillment", ful.id)
    data: dict[str, Any] = {
        "links": [{"rel": "self", "href": owner}],
        "id": str(ful.id),
        "tranId": ful.tran_id,
        "externalId": ful.external_id,
        "createdFrom": {"links": [{"rel": "self", "href": href(base, "salesOrder", ful.created_from)}],
                        "id": str(ful.created_from)},
        "entity": ref_json(ful.entity, base, "customer"),
        "shipStatus": enum_json(ful.ship_status, SHIP_STATUS_NAMES, simple_enum),
        "tranDate": ful.created.date().isoformat(),
        "memo": ful.memo,
        "createdDate": iso(ful.created),
        "lastModifiedDate": iso(ful.last_modified),
    }
    data.update(ful.custom)
    for name, rows in (("item", ful.lines), ("package", ful.packages)):
        links = [{"rel": "self", "href": f"{owner}/{name}"}]
        data[name] = {"links": links, "items": rows, "count": len(rows), "hasMore": False, "offset": 0,
                      "totalResults": len(rows)} if expand else {"links": links}
    return _clean(data)


def admin_routes(state: SandboxState) -> list[Route]:
    """``GET /_sandbox/item-fulfillments[?sales_order=ID]`` and ``GET /_sandbox/item-fulfillments/{id}``:
    what a tester checks after a flow ran (never authenticated, never faulted)."""

    def view(request: Request, ful: Fulfillment) -> dict[str, Any]:
        body = render_fulfillment(ful, str(request.base_url).rstrip("/"), expand=True)
        body["_sandbox"] = {"lastModifiedBy": ful.last_modified_by}
        return body

    async def list_fulfillments(request: Request) -> Response:
        order = request.query_params.get("sales_order")
        with state.lock:
            items = [view(request, f) for f in sorted(state.fulfillments.values(), key=lambda f: f.id)
                     if order is None or str(f.created_from) == order]
        return JSONResponse({"items": items})

    async def get_fulfillment(request: Request) -> Response:
        raw = request.path_params["id"]
        with state.lock:
            ful = state.fulfillments.get(int(raw)) if raw.isdigit() else None
            if ful is None:
                return JSONResponse({"error": f"no item fulfillment {raw}"}, status_code=404)
            return JSONResponse(view(request, ful))

    return [
        Route(f"{ADMIN_PREFIX}/item-fulfillments", list_fulfillments, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/item-fulfillments/{{id}}", get_fulfillment, methods=["GET"]),
    ]
