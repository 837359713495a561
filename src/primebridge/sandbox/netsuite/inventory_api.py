"""HTTP side of the NetSuite sandbox's inventory: the ``inventoryAdjustment`` record, the SuiteQL tables
``item`` and ``inventoryitemlocations``, and the admin API.

Service (authenticated and counted by the app's ``service`` wrapper):
``POST /services/rest/record/v1/inventoryAdjustment`` (204 + ``Location``),
``GET .../inventoryAdjustment/{id|eid:x}[?expandSubResources=true]``.

Admin (never authenticated): ``POST /_sandbox/inventory`` ``{"location": "7", "items": [{"item":
name, "quantity": n}], "generate": {"count", "prefix", "quantity"?, "start"?, "width"?}}`` creates
items (by name) and sets their quantity on hand at the location; ``GET /_sandbox/inventory?item=&location=``;
``GET /_sandbox/inventory-adjustments[?limit=n]`` newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from primebridge.sandbox.knobs import ADMIN_PREFIX
from primebridge.sandbox.netsuite.errors import not_found
from primebridge.sandbox.netsuite.inventory import Adjustment, InventoryBook, quantity
from primebridge.sandbox.netsuite.records import href, iso
from primebridge.sandbox.netsuite.state import SandboxState
from primebridge.sandbox.netsuite.suiteql import Row, Table, equal_values

RECORD = "/services/rest/record/v1"
RESOURCE_JSON = "application/vnd.oracle.resource+json; type=singular"
ITEM_COLUMNS = frozenset({"id", "itemid", "displayname", "itemtype", "isinactive", "externalid"})
LOCATION_COLUMNS = frozenset({"item", "location", "quantityonhand", "quantityavailable", "quantitycommitted",
                              "quantityonorder", "quantitybackordered", "quantityintransit"})


def _number(value: Any) -> int | float:
    return value if isinstance(value, int) else float(value)


def render_adjustment(adj: Adjustment, book: InventoryBook, base: str, *, expand: bool) -> dict[str, Any]:
    owner = href(base, "inventoryAdjustment", adj.id)

    def ref(kind: str, ref_id: str | None) -> dict[str, Any] | None:
        return None if ref_id is None else {"links": [{"rel": "self", "href": href(base, kind, ref_id)}],
                                            "id": ref_id}

    data: dict[str, Any] = {
        "links": [{"rel": "self", "href": owner}], "id": str(adj.id), "tranId": adj.tran_id,
        "externalId": adj.external_id, "memo": adj.memo, "account": ref("account", adj.account),
        "adjLocation": ref("location", adj.location), "subsidiary": ref("subsidiary", adj.subsidiary),
        "department": ref("department", adj.department), "class": ref("classification", adj.class_id),
        "tranDate": adj.tran_date.isoformat(), "createdDate": iso(adj.created), "lastModifiedDate": iso(adj.created),
    }
    links = [{"rel": "self", "href": f"{owner}/inventory"}]
    if expand:
        lines = [{"links": [], "line": line, "item": {**(ref("inventoryItem", str(item)) or {}),
                                                      "refName": book.names.get(item)},
                  "location": ref("location", location), "adjustQtyBy": _number(delta),
                  "quantityOnHand": _number(after), **({"memo": memo} if memo is not None else {})}
                 for line, item, location, delta, after, memo in adj.lines]
        data["inventory"] = {"links": links, "items": lines, "count": len(lines), "hasMore": False, "offset": 0,
                             "totalResults": len(lines)}
    else:
        data["inventory"] = {"links": links}
    return {k: v for k, v in data.items() if v is not None}


def _location_exists(state: SandboxState) -> Callable[[str], bool]:
    return lambda loc: state.locations.get(loc) is not None or loc in state.inventory.on_hand


def service_routes(state: SandboxState, service: Callable[..., Any]) -> list[Route]:
    """Registered before the app's generic ``/{rtype}`` routes, which know no ``inventoryAdjustment``."""

    async def create(request: Request, user: str) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        with state.lock:
            adj = state.inventory.adjust(body, new_id=state.new_transaction_id(), now=state.now(), user=user,
                                         location_exists=_location_exists(state))
        location = href(str(request.base_url).rstrip("/"), "inventoryAdjustment", adj.id)
        return Response(status_code=204, headers={"Location": location})

    async def read(request: Request, user: str) -> Response:
        expand = request.query_params.get("expandSubResources", "false").lower() == "true"
        with state.lock:
            adj = state.inventory.find(request.path_params["rid"])
            if adj is None:
                raise not_found()
            body = render_adjustment(adj, state.inventory, str(request.base_url).rstrip("/"), expand=expand)
        return JSONResponse(body, media_type=RESOURCE_JSON)

    routes = []
    for name in ("inventoryAdjustment", "inventoryadjustment"):
        routes += [Route(f"{RECORD}/{name}", service(state, "POST inventoryAdjustment", create), methods=["POST"]),
                   Route(f"{RECORD}/{name}/{{rid}}", service(state, "GET inventoryAdjustment", read),
                         methods=["GET"])]
    return routes


# -- SuiteQL -----------------------------------------------------------------------------------------

def _ints(values: Iterable[Any]) -> list[int]:
    out = []
    for value in values:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            out.append(int(text))
    return out


def suiteql_tables(state: SandboxState) -> dict[str, Table]:
    """``item`` (the sandbox's sales-order items and stock items) and ``inventoryitemlocations``; both
    answer ``id``/``itemid``/``item`` equality and ``IN`` filters from an index, so 100k items stay fast."""
    book = state.inventory

    def item_row(item_id: int, name: str) -> Row:
        return {"id": item_id, "itemid": name, "displayname": name, "itemtype": "InvtPart", "isinactive": False,
                "cf:itemtype": "InvtPart", "df:itemtype": "Inventory Item"}

    def all_items() -> list[Row]:
        rows = {int(ref.id): item_row(int(ref.id), ref.name) for ref in state.items.by_id.values()
                if ref.id.isdigit()}
        rows.update({item_id: item_row(item_id, name) for item_id, name in book.names.items()})
        return list(rows.values())

    def narrow_items(where: Any, params: Sequence[Any]) -> list[Row] | None:
        names = equal_values(where, "itemid", params)
        if names is not None:
            found = []
            for name in {str(n) for n in names}:
                item_id = book.ids.get(name)
                ref = state.items.find(name) if item_id is None else None
                if item_id is not None or (ref is not None and ref.id.isdigit()):
                    found.append(item_row(item_id if item_id is not None else int(ref.id), name))  # type: ignore[union-attr]
            return found
        ids = equal_values(where, "id", params)
        if ids is not None:
            rows = []
            for item_id in set(_ints(ids)):
                name = book.names.get(item_id)
                ref = state.items.get(str(item_id)) if name is None else None
                if name is not None or ref is not None:
                    rows.append(item_row(item_id, name if name is not None else ref.name))  # type: ignore[union-attr]
            return rows
        return None

    def location_row(item_id: int, location: str, value: Any) -> Row:
        location_ref = state.locations.get(location)
        return {"item": item_id, "location": int(location), "quantityonhand": value, "quantityavailable": value,
                "quantitycommitted": 0, "quantityonorder": 0, "quantitybackordered": 0, "quantityintransit": 0,
                "df:item": book.names.get(item_id), "df:location": location_ref.name if location_ref else None}

    def all_locations() -> list[Row]:
        return [location_row(item_id, location, value) for location, table in book.on_hand.items()
                for item_id, value in table.items()]

    def narrow_locations(where: Any, params: Sequence[Any]) -> list[Row] | None:
        ids = equal_values(where, "item", params)
        if ids is None:
            return None
        wanted = set(_ints(ids))
        return [location_row(item_id, location, table[item_id]) for location, table in book.on_hand.items()
                for item_id in wanted if item_id in table]

    return {"item": Table("item", ITEM_COLUMNS, all_items, narrow=narrow_items),
            "inventoryitemlocations": Table("inventoryitemlocations", LOCATION_COLUMNS, all_locations,
                                            narrow=narrow_locations)}


# -- admin -------------------------------------------------------------------------------------------

def seed(state: SandboxState, payload: Any) -> int:
    if not isinstance(payload, dict) or not str(payload.get("location") or "").isdigit():
        raise ValueError("expected {\"location\": \"<id>\", \"items\": [...]} and/or \"generate\": {...}")
    location = str(payload["location"])
    state.locations.ensure({"id": location, "name": payload.get("location_name") or f"Location {location}"})
    book, count = state.inventory, 0

    def put(name: str, value: Any) -> None:
        if not name or len(name) > 250:
            raise ValueError(f"item name {name!r}")
        ref = state.items.find(name) if len(state.items.by_id) < 10_000 else None
        item_id = book.add_item(name, ref.id if ref is not None else None)
        book.set_quantity(item_id, location, quantity(Decimal(str(value))))

    for entry in payload.get("items") or []:
        put(str(entry["item"]), entry.get("quantity", 0))
        count += 1
    spec = payload.get("generate")
    if spec:
        start, width = int(spec.get("start", 1)), int(spec.get("width", 6))
        for number in range(start, start + int(spec["count"])):
            put(f"{spec['prefix']}{number:0{width}d}", spec.get("quantity", 10))
            count += 1
    return count


def admin_routes(state: SandboxState) -> list[Route]:
    def fail(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def post_inventory(request: Request) -> Response:
        try:
            payload = await request.json()
            with state.lock:
                count = seed(state, payload)
                total = len(state.inventory.names)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            return fail(f"bad inventory seed: {exc!r}")
        return JSONResponse({"set": count, "items": total}, status_code=201)

    async def get_inventory(request: Request) -> Response:
        name, location = request.query_params.get("item", ""), request.query_params.get("location", "")
        with state.lock:
            item_id = state.inventory.ids.get(name)
            value = None if item_id is None else state.inventory.quantity(item_id, location)
        return JSONResponse({"item": name, "id": item_id, "location": location,
                             "quantityOnHand": None if value is None else str(value)})

    async def list_adjustments(request: Request) -> Response:
        limit = request.query_params.get("limit", "")
        base = str(request.base_url).rstrip("/")
        with state.lock:
            records = sorted(state.inventory.adjustments.values(), key=lambda a: a.id, reverse=True)
            total = len(records)
            if limit.isdigit():
                records = records[:int(limit)]
            items = [render_adjustment(a, state.inventory, base, expand=True) for a in records]
        return JSONResponse({"count": total, "items": items})

    return [Route(f"{ADMIN_PREFIX}/inventory", post_inventory, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/inventory", get_inventory, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/inventory-adjustments", list_adjustments, methods=["GET"])]
