"""Admin API of the SAP sandbox (``/_sandbox/...``): seed and change orders like an SAP user would.

Seeding takes a short JSON instead of SAP's deep-insert body so tests and demos stay readable::

    {"type": "OR", "delivery_block": "", "shipping_condition": "01", "currency": "USD",
     "sold_to": {"customer": "1000001", "name": "Ann", "street": "Main St", "house_number": "1",
                 "city": "Seattle", "postal_code": "98101", "region": "WA", "country": "US",
                 "phone": "555", "email": "ann@example.com"},
     "ship_to": {...} | null,
     "items": [{"material": "SKU-1", "qty": "2", "plant": "1010", "price": "19.99", "tax": "3.20",
                "title": "Widget", "rejection_reason": "", "texts": {"Z004": "preview-1"}}],
     "texts": {"Z003": "X"}}

``PATCH /_sandbox/sales-orders/{id}`` takes the same header keys plus ``texts`` (value ``null``
deletes), ``items`` ([{"id": "10", "qty": ..., "rejection_reason": ..., "texts": {...}}]), ``ship_to``
and ``last_change`` (an ISO timestamp the header's LastChangeDateTime is set to exactly).

A partner address may name its ``function`` (default ``SP`` sold-to / ``SH`` ship-to, the English
external codes; internal ``AG``/``WE`` are derived).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from primebridge.connectors.sap.values import parse_datetime
from primebridge.sandbox.knobs import ADMIN_PREFIX
from primebridge.sandbox.sap.errors import ODataError
from primebridge.sandbox.sap.schema import ENTITY_TYPES
from primebridge.sandbox.sap.state import CHANGED, PRICE, SapStore, Settings

HEADER_FIELDS = {
    "type": "SalesOrderType", "delivery_block": "DeliveryBlockReason",
    "shipping_condition": "ShippingCondition", "currency": "TransactionCurrency",
    "sales_org": "SalesOrganization", "distribution_channel": "DistributionChannel",
    "division": "OrganizationDivision", "sold_to_party": "SoldToParty",
    "purchase_order": "PurchaseOrderByCustomer", "billing_block": "HeaderBillingBlockReason",
}
ITEM_FIELDS = {
    "id": "SalesOrderItem", "material": "Material", "qty": "RequestedQuantity",
    "unit": "RequestedQuantityUnit",
    "plant": "ProductionPlant", "tax": "TaxAmount", "title": "SalesOrderItemText",
    "rejection_reason": "SalesDocumentRjcnReason", "storage_location": "StorageLocation",
}
ADDRESS_FIELDS = {
    "name": "AddresseeFullName", "organization": "OrganizationName1", "street": "StreetName",
    "house_number": "HouseNumber", "city": "CityName", "postal_code": "PostalCode", "region": "Region",
    "country": "Country", "phone": "PhoneNumber", "mobile": "MobileNumber", "email": "EmailAddress",
}


class AdminError(ValueError):
    pass


def _map(source: dict[str, Any], names: dict[str, str], what: str) -> dict[str, Any]:
    unknown = set(source) - set(names) - {"texts", "function", "customer", "price", "language"}
    if unknown:
        raise AdminError(f"{what}: unknown field(s) {', '.join(sorted(unknown))}")
    return {sap: str(source[key]) for key, sap in names.items() if source.get(key) is not None}


def _texts(texts: Any, language: str, what: str) -> list[dict[str, str]]:
    if texts is None:
        return []
    if not isinstance(texts, dict):
        raise AdminError(f"{what}.texts must be an object {{text id: text}}")
    return [{"Language": language, "LongTextID": str(tid), "LongText": str(text)}
            for tid, text in texts.items() if text is not None]


def _partner(address: Any, default_function: str, language: str) -> dict[str, Any]:
    if not isinstance(address, dict):
        raise AdminError("sold_to/ship_to must be an object or null")
    fields = _map(address, ADDRESS_FIELDS, "address")
    return {"PartnerFunction": str(address.get("function") or default_function),
            "Customer": str(address.get("customer") or "17100001"),
            "to_Address": [{"AddressRepresentationCode": "", "CorrespondenceLanguage": language, **fields}]}


def seed_body(spec: dict[str, Any]) -> dict[str, Any]:
    """The admin seed format → an SAP deep-insert body (plus the sandbox's hidden item prices)."""
    language = str(spec.get("language") or "EN")
    allowed = set(HEADER_FIELDS) | {"id", "sold_to", "ship_to", "items", "texts", "language"}
    unknown = set(spec) - allowed
    if unknown:
        raise AdminError(f"unknown field(s) {', '.join(sorted(unknown))}")
    body: dict[str, Any] = {"SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
                            "OrganizationDivision": "00", "TransactionCurrency": "USD",
                            "SoldToParty": "17100001"}
    body.update(_map({k: v for k, v in spec.items() if k in HEADER_FIELDS}, HEADER_FIELDS, "order"))
    if spec.get("id"):
        body["SalesOrder"] = str(spec["id"])
    partners = []
    if spec.get("sold_to") is not None:
        partners.append(_partner(spec["sold_to"], "SP", language))
        body["SoldToParty"] = partners[-1]["Customer"]
    if spec.get("ship_to") is not None:
        partners.append(_partner(spec["ship_to"], "SH", language))
    body["to_Partner"] = partners
    items = spec.get("items") or []
    if not isinstance(items, list):
        raise AdminError("items must be a list")
    body["to_Item"] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise AdminError(f"items[{index}] must be an object")
        row = _map(item, ITEM_FIELDS, f"items[{index}]")
        if item.get("price") is not None:
            row[PRICE] = str(item["price"])
        row["to_Text"] = _texts(item.get("texts"), language, f"items[{index}]")
        body["to_Item"].append(row)
    body["to_Text"] = _texts(spec.get("texts"), language, "order")
    return body


def apply_patch(store: SapStore, order_id: str, spec: dict[str, Any]) -> None:
    """A user's change in SAP: header fields, texts, item fields/texts, ship-to address."""
    header = store.header(order_id)
    if header is None:
        raise AdminError(f"sales order {order_id} does not exist")
    language = str(spec.get("language") or "EN")
    allowed = set(HEADER_FIELDS) | {"items", "texts", "language", "ship_to", "last_change"}
    unknown = set(spec) - allowed
    if unknown:
        raise AdminError(f"unknown field(s) {', '.join(sorted(unknown))}")
    so = ENTITY_TYPES["A_SalesOrder"]
    changes = _map({k: v for k, v in spec.items() if k in HEADER_FIELDS}, HEADER_FIELDS, "order")
    if changes:
        store.update(so, header, changes, admin=True)
    _patch_texts(store, "A_SalesOrderText", {"SalesOrder": order_id}, spec.get("texts"), language)
    for index, item_spec in enumerate(spec.get("items") or []):
        if not isinstance(item_spec, dict) or not item_spec.get("id"):
            raise AdminError(f"items[{index}] needs the item id")
        item = store.tables["A_SalesOrderItem"].get((order_id, str(item_spec["id"])))
        if item is None:
            raise AdminError(f"sales order {order_id} has no item {item_spec['id']}")
        fields = _map({k: v for k, v in item_spec.items() if k != "id"}, ITEM_FIELDS, f"items[{index}]")
        if item_spec.get("price") is not None:
            item[PRICE] = Decimal(str(item_spec["price"]))
        if fields or item_spec.get("price") is not None:
            store.update(ENTITY_TYPES["A_SalesOrderItem"], item, fields, admin=True)
        item_keys = {"SalesOrder": order_id, "SalesOrderItem": str(item_spec["id"])}
        _patch_texts(store, "A_SalesOrderItemText", item_keys, item_spec.get("texts"), language)
    if "ship_to" in spec:
        _patch_ship_to(store, order_id, spec["ship_to"], language)
    if spec.get("last_change") is not None:
        # Back-dates the change time exactly (e.g. onto a millisecond boundary) to test watermarks.
        try:
            stamp = parse_datetime(spec["last_change"])
        except ValueError as exc:
            raise AdminError(f"last_change: {exc}") from None
        header["LastChangeDateTime"] = header[CHANGED] = stamp


def _patch_texts(store: SapStore, set_name: str, keys: dict[str, str], texts: Any, language: str) -> None:
    if texts is None:
        return
    if not isinstance(texts, dict):
        raise AdminError("texts must be an object {text id: text or null}")
    etype = ENTITY_TYPES[set_name]
    for text_id, value in texts.items():
        full = {**keys, "Language": language, "LongTextID": str(text_id)}
        row = store.get(etype, full)
        if value is None:
            if row is not None:
                store.delete(etype, row)
        elif row is None:
            store.create(etype, {**full, "LongText": str(value)}, admin=True)
        else:
            store.update(etype, row, {"LongText": str(value)}, admin=True)


def _patch_ship_to(store: SapStore, order_id: str, address: Any, language: str) -> None:
    partner_type = ENTITY_TYPES["A_SalesOrderHeaderPartner"]
    for row in store.rows_of(partner_type.set_name, order_id):
        if row.get("PartnerFunctionInternalCode") == "WE":
            store.delete(partner_type, row)
    if address is not None:
        store.create(partner_type, {"SalesOrder": order_id, **_partner(address, "SH", language)}, admin=True)
    else:
        store.touch(order_id)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def order_view(store: SapStore, order_id: str) -> dict[str, Any] | None:
    header = store.header(order_id)
    if header is None:
        return None
    so = ENTITY_TYPES["A_SalesOrder"]

    def plain(row: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(v) for k, v in row.items() if not k.startswith("_")}

    items = []
    for item in store.follow(so.navs["to_Item"], header):
        texts = store.follow(ENTITY_TYPES["A_SalesOrderItem"].navs["to_Text"], item)
        items.append({**plain(item), "UnitPrice": str(item.get(PRICE)), "texts": [plain(t) for t in texts]})
    partners = []
    for partner in store.follow(so.navs["to_Partner"], header):
        addresses = store.follow(ENTITY_TYPES["A_SalesOrderHeaderPartner"].navs["to_Address"], partner)
        partners.append({**plain(partner), "addresses": [plain(a) for a in addresses]})
    return {**plain(header), "etag": store.etag(so, header), "items": items,
            "texts": [plain(t) for t in store.follow(so.navs["to_Text"], header)], "partners": partners}


def admin_routes(store: SapStore) -> list[Route]:
    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise AdminError(f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise AdminError("body must be a JSON object")
        return body

    def fail(exc: Exception, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status)

    async def seed(request: Request) -> Response:
        try:
            body = seed_body(await body_of(request))
            with store.lock:
                row = store.create(ENTITY_TYPES["A_SalesOrder"], body, admin=True)
                order_id = str(row["SalesOrder"])
                return JSONResponse({"id": order_id, "etag": store.etag(ENTITY_TYPES["A_SalesOrder"], row)},
                                    status_code=201)
        except AdminError as exc:
            return fail(exc)
        except ODataError as exc:
            return fail(exc, 400)

    async def patch(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        try:
            spec = await body_of(request)
            with store.lock:
                if store.header(order_id) is None:
                    return fail(AdminError(f"sales order {order_id} does not exist"), 404)
                apply_patch(store, order_id, spec)
                return JSONResponse(order_view(store, order_id))
        except (AdminError, ODataError) as exc:
            return fail(exc)

    async def get_one(request: Request) -> Response:
        with store.lock:
            view = order_view(store, request.path_params["order_id"])
        if view is None:
            return fail(AdminError(f"sales order {request.path_params['order_id']} does not exist"), 404)
        return JSONResponse(view)

    async def list_all(request: Request) -> Response:
        so = ENTITY_TYPES["A_SalesOrder"]
        with store.lock:
            rows = [{"id": h["SalesOrder"], "last_change": _plain(h["LastChangeDateTime"]),
                     "etag": store.etag(so, h)} for h in store.tables["A_SalesOrder"].values()]
        return JSONResponse({"orders": rows})

    async def reset(request: Request) -> Response:
        store.reset()
        return JSONResponse({"reset": True})

    async def stats(request: Request) -> Response:
        with store.lock:
            data = dict(store.stats)
            data["orders"] = len(store.tables["A_SalesOrder"])
            data["sessions"] = len(store.sessions)
        return JSONResponse(data)

    async def expire_csrf(request: Request) -> Response:
        """Simulates the security session timing out: every CSRF token becomes invalid."""
        with store.lock:
            for sid in store.sessions:
                store.sessions[sid] = None
        return JSONResponse({"expired": True})

    async def revoke_tokens(request: Request) -> Response:
        with store.lock:
            store.oauth_tokens.clear()
        return JSONResponse({"revoked": True})

    async def get_settings(request: Request) -> Response:
        return JSONResponse(asdict(store.settings))

    async def put_settings(request: Request) -> Response:
        try:
            body = await body_of(request)
            unknown = set(body) - set(asdict(store.settings))
            if unknown:
                raise AdminError(f"unknown settings: {', '.join(sorted(unknown))}")
            merged = {**asdict(store.settings), **body}
            size = merged["server_page_size"]
            if size is not None and (not isinstance(size, int) or size < 1):
                raise AdminError("server_page_size must be a positive integer or null")
            store.settings = Settings(**merged)
        except (AdminError, TypeError) as exc:
            return fail(exc)
        return JSONResponse(asdict(store.settings))

    prefix = f"{ADMIN_PREFIX}/sales-orders"
    return [
        Route(prefix, seed, methods=["POST"]),
        Route(prefix, list_all, methods=["GET"]),
        Route(prefix + "/{order_id}", get_one, methods=["GET"]),
        Route(prefix + "/{order_id}", patch, methods=["PATCH"]),
        Route(f"{ADMIN_PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/stats", stats, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/csrf/expire", expire_csrf, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/oauth/revoke", revoke_tokens, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/settings", get_settings, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/settings", put_settings, methods=["PUT"]),
    ]
