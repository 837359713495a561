"""OData V2 handling of the sandbox's API_MATERIAL_STOCK_SRV and API_MATERIAL_DOCUMENT_SRV, and their
admin API. Authentication and the CSRF handshake are the sales order service's (``app``): one SAP
system, one logon, one security session for every service.

Admin (``/_sandbox/...``, never authenticated):

* ``POST /_sandbox/stock`` ``{"items": [{"material", "plant", "storage_location", "quantity",
  "unit"?, "batch"?, "stock_type"?}]}`` sets stock; ``{"generate": {"count", "prefix", "plant",
  "storage_location", "quantity"?, "start"?, "width"?}}`` creates ``count`` materials
  ``<prefix><number>`` at once (the 100k benchmark catalogue).
* ``GET /_sandbox/stock?material=&plant=&storage_location=`` the rows of one material.
* ``GET /_sandbox/material-documents[?limit=n]`` the documents posted, newest first, with items.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from primebridge.sandbox.knobs import ADMIN_PREFIX
from primebridge.sandbox.sap import service
from primebridge.sandbox.sap.contracts import contracts_dir
from primebridge.sandbox.sap.errors import NOT_FOUND, ODataError, error_body
from primebridge.sandbox.sap.inventory import (
    DOCUMENT_HEADER,
    DOCUMENT_ITEM,
    DOCUMENT_TYPES,
    ITEM_NAV,
    STOCK_ROW,
    STOCK_TYPES,
    MaterialDocument,
    SapInventory,
)
from primebridge.sandbox.sap.query import (
    _tokenize,
    compile_filter,
    parse_resource_path,
    path_tree,
    resolve_keys,
    sort_rows,
)
from primebridge.sandbox.sap.schema import EntityType
from primebridge.sandbox.sap.serialize import entity_uri, json_date, render_value

STOCK_SERVICE_PATH = "/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV"
DOCUMENT_SERVICE_PATH = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
CONTRACTS = contracts_dir()
ODATA_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "MERGE", "DELETE"]
Row = dict[str, Any]


def odata_routes(endpoint: Callable[..., Any]) -> list[Route]:
    """The two services' routes, served by the app's authenticating OData ``endpoint``."""
    routes = []
    for path in (STOCK_SERVICE_PATH, DOCUMENT_SERVICE_PATH):
        routes += [Route(path, endpoint, methods=ODATA_METHODS),
                   Route(path + "/{rest:path}", endpoint, methods=ODATA_METHODS)]
    return routes


def handles(path: str) -> bool:
    return path.startswith((STOCK_SERVICE_PATH, DOCUMENT_SERVICE_PATH))


def dispatch(request: Request, inventory: SapInventory, stats: Any, method: str, rest: str, raw: bytes, *,
             user: str, page_size: int | None) -> Response:
    """One OData request to either service; errors carry that service's id in the SAP error body."""
    is_stock = request.url.path.startswith(STOCK_SERVICE_PATH)
    service_id = "API_MATERIAL_STOCK_SRV" if is_stock else "API_MATERIAL_DOCUMENT_SRV"
    base = f"{request.url.scheme}://{request.url.netloc}" + (STOCK_SERVICE_PATH if is_stock
                                                             else DOCUMENT_SERVICE_PATH)
    try:
        path = rest.strip("/")
        if path == "":
            if method not in ("GET", "HEAD"):
                raise ODataError(405, f"{method} is not allowed on the service root")
            types = STOCK_TYPES if is_stock else DOCUMENT_TYPES
            return JSONResponse({"d": {"EntitySets": sorted(types)}})
        if path == "$metadata":
            return service.metadata(CONTRACTS / f"{service_id}.edmx")
        if path == "$batch":
            raise ODataError(501, "$batch is not supported by the SAP sandbox")
        segments = parse_resource_path(path)
        types = STOCK_TYPES if is_stock else DOCUMENT_TYPES
        etype = types.get(segments[0].name)
        if etype is None:
            raise ODataError(404, f"Resource not found for segment '{segments[0].name}'", code=NOT_FOUND)
        stats[f"{method} {etype.set_name}"] += 1
        if method == "POST":
            if etype is not DOCUMENT_HEADER or len(segments) > 1 or segments[0].keys is not None:
                raise ODataError(405, f"Entity set {etype.set_name} is not creatable"
                                      + ("; post items by deep insert through A_MaterialDocumentHeader"
                                         if etype is DOCUMENT_ITEM else ""))
            return _post_document(request, inventory, raw, base, user)
        if method not in ("GET", "HEAD"):
            raise ODataError(405, f"Method {method} is not allowed: {etype.set_name} is not updatable or "
                                  f"deletable")
        return _get(request, inventory, segments, etype, base, page_size)
    except ODataError as exc:
        stats[f"http_{exc.status}"] += 1
        body = error_body(exc.code, exc.message, target=exc.target)
        application = body["error"]["innererror"]["application"]  # type: ignore[index]
        application.update({"component_id": "MM-IM-GF", "service_id": service_id})
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)


# -- reading -----------------------------------------------------------------------------------------

def equal_values(text: str | None, prop: str) -> set[str] | None:
    """The values ``prop`` must equal for a row to match ``text``, when the filter says so plainly: a
    top-level ``and`` term that is ``prop eq 'v'`` or a parenthesised ``or`` of such comparisons.
    ``None`` means "cannot tell" (scan everything). Only narrows: the full filter still runs."""
    if not text:
        return None
    tokens = _tokenize(text)
    terms: list[list[tuple[str, str]]] = [[]]
    depth = 0
    for token in tokens:
        if token == ("punct", "("):
            depth += 1
        elif token == ("punct", ")"):
            depth -= 1
        if depth == 0 and token == ("word", "and"):
            terms.append([])
        else:
            terms[-1].append(token)
    for term in terms:
        if term and term[0] == ("punct", "(") and term[-1] == ("punct", ")"):
            term = term[1:-1]
        values: set[str] = set()
        parts = _split_terms(term)
        for part in parts:
            if len(part) == 3 and part[0] == ("word", prop) and part[1] == ("word", "eq") and part[2][0] == "string":
                values.add(part[2][1][1:-1].replace("''", "'"))
            else:
                break
        else:
            if parts:
                return values
    return None


def _split_terms(term: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    parts: list[list[tuple[str, str]]] = [[]]
    for token in term:
        if token == ("word", "or"):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _rows(inventory: SapInventory, etype: EntityType, text: str | None) -> list[Row]:
    if etype is STOCK_ROW:
        return inventory.stock_rows(_upper(equal_values(text, "Material")))
    if etype is DOCUMENT_ITEM:
        return inventory.items_with_texts(equal_values(text, "MaterialDocumentItemText"))
    if etype is DOCUMENT_HEADER:
        return [inventory.header_row(doc) for doc in inventory.documents.values()]
    return inventory.material_rows(_upper(equal_values(text, "Material")))


def _upper(values: set[str] | None) -> set[str] | None:
    return None if values is None else {v.upper() for v in values}


def _get(request: Request, inventory: SapInventory, segments: list[Any], etype: EntityType, base: str,
         page_size: int | None) -> Response:
    params = request.query_params
    for name in params:
        if name.startswith("$") and name not in service.KNOWN_OPTIONS:
            raise ODataError(400, f"System query option '{name}' is not supported")
    if params.get("$format") not in (None, "json") or (
            params.get("$format") is None and "json" not in request.headers.get("accept", "").lower()):
        raise ODataError(406, "The SAP sandbox only serves JSON: send 'Accept: application/json' or $format=json")
    select = path_tree(params.get("$select"))
    expand = path_tree(params.get("$expand"))
    for name in expand:
        if etype is not DOCUMENT_HEADER or name != ITEM_NAV or expand[name]:
            raise ODataError(400, f"Navigation property '{name}' not found in type '{etype.qualified_type}' "
                                  f"(or not modelled by the sandbox)")
    for name in select:
        if name != "*" and name not in etype.props and not (name == ITEM_NAV and ITEM_NAV in expand):
            raise ODataError(400, f"Property '{name}' not found in type '{etype.qualified_type}'")
    first = segments[0]
    if first.keys is not None:
        keys = resolve_keys(etype, first.keys)
        document = _document_of(inventory, etype, keys)
        if len(segments) == 2 and etype is DOCUMENT_HEADER and segments[1].name == ITEM_NAV:
            rows = inventory.item_rows(document)
            return _collection(request, rows, DOCUMENT_ITEM, base, select, {}, page_size)
        if len(segments) > 1:
            raise ODataError(404, f"Resource not found for segment '{segments[1].name}'", code=NOT_FOUND)
        if etype is DOCUMENT_HEADER:
            row = inventory.header_row(document)
        else:
            row = inventory.item_rows(document, [int(keys["MaterialDocumentItem"])])[0]
        return JSONResponse({"d": _render(inventory, etype, row, base, select, expand)})
    if len(segments) > 1:
        raise ODataError(400, f"Segment '{segments[1].name}' must follow a single entity")
    text = params.get("$filter")
    rows = _rows(inventory, etype, text)
    if text:
        predicate = compile_filter(text, etype)
        rows = [row for row in rows if predicate(row)]
    return _collection(request, rows, etype, base, select, expand, page_size, inventory=inventory)


def _document_of(inventory: SapInventory, etype: EntityType, keys: dict[str, str]) -> MaterialDocument:
    if etype not in (DOCUMENT_HEADER, DOCUMENT_ITEM):
        raise ODataError(501, f"Reading a single {etype.set_name} by key is not supported by the sandbox")
    document = inventory.documents.get((keys["MaterialDocumentYear"], keys["MaterialDocument"]))
    item = keys.get("MaterialDocumentItem")
    if document is None or (item is not None and not (item.isdigit() and 1 <= int(item) <= len(document.items))):
        raise ODataError(404, f"Resource not found for segment '{etype.type_name}'", code=NOT_FOUND)
    return document


def _collection(request: Request, rows: list[Row], etype: EntityType, base: str, select: dict[str, Any],
                expand: dict[str, Any], page_size: int | None, inventory: SapInventory | None = None) -> Response:
    params = request.query_params
    total = len(rows)
    rows = sorted(rows, key=lambda r: tuple(str(r[k]) for k in etype.keys))
    if params.get("$orderby"):
        rows = sort_rows(rows, params["$orderby"], etype)
    skip, top, token = (_int(params, "$skip") or 0), _int(params, "$top"), (_int(params, "$skiptoken") or 0)
    window = rows[skip:] if top is None else rows[skip:skip + top]
    page = window[token:token + page_size] if page_size else window[token:]
    data: dict[str, Any] = {"results": [_render(inventory, etype, row, base, select, expand) for row in page]}
    if params.get("$inlinecount") == "allpages":
        data["__count"] = str(total)
    if page_size and token + page_size < len(window):
        kept = [p for p in request.url.query.split("&") if p and not p.startswith(("$skiptoken=", "%24skiptoken="))]
        data["__next"] = f"{request.url.scheme}://{request.url.netloc}{request.url.path}?" + "&".join(
            [*kept, f"$skiptoken={token + page_size}"])
    return JSONResponse({"d": data})


def _int(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        raise ODataError(400, f"Invalid value '{raw}' for system query option {name}")
    return int(raw)


def _render(inventory: SapInventory | None, etype: EntityType, row: Row, base: str, select: dict[str, Any],
            expand: dict[str, Any]) -> Row:
    uri = entity_uri(base, etype, row)
    out: Row = {"__metadata": {"id": uri, "uri": uri, "type": etype.qualified_type}}
    every = not select or "*" in select
    for name, prop in etype.props.items():
        if every or name in select:
            out[name] = render_value(prop, row.get(name))
    if etype is DOCUMENT_HEADER and (not select or ITEM_NAV in select):
        if ITEM_NAV in expand and inventory is not None:
            document = inventory.documents[(row["MaterialDocumentYear"], row["MaterialDocument"])]
            out[ITEM_NAV] = {"results": [_render(None, DOCUMENT_ITEM, item, base, {}, {})
                                         for item in inventory.item_rows(document)]}
        else:
            out[ITEM_NAV] = {"__deferred": {"uri": f"{uri}/{ITEM_NAV}"}}
    return out


# -- posting -----------------------------------------------------------------------------------------

def _post_document(request: Request, inventory: SapInventory, raw: bytes, base: str, user: str) -> Response:
    body = service._json_body(raw)
    document = inventory.post(body, user=user)
    row = inventory.header_row(document)
    rendered = _render(inventory, DOCUMENT_HEADER, row, base, {}, {ITEM_NAV: {}})
    return JSONResponse({"d": rendered}, status_code=201,
                        headers={"Location": entity_uri(base, DOCUMENT_HEADER, row)})


# -- admin -------------------------------------------------------------------------------------------

def admin_routes(inventory: SapInventory, lock: Any) -> list[Route]:
    def fail(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def seed(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return fail(f"body is not JSON: {exc}")
        if not isinstance(body, dict) or not ({"items", "generate"} & set(body)):
            return fail("expected {\"items\": [...]} or {\"generate\": {...}}")
        try:
            with lock:
                count = _seed(inventory, body)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            return fail(f"bad stock entry: {exc!r}")
        return JSONResponse({"materials": len(inventory.units), "set": count}, status_code=201)

    async def show(request: Request) -> Response:
        material = request.query_params.get("material", "").upper()
        plant, sloc = request.query_params.get("plant"), request.query_params.get("storage_location")
        with lock:
            rows = [r for r in inventory.stock_rows({material})
                    if (plant is None or r["Plant"] == plant) and (sloc is None or r["StorageLocation"] == sloc)]
        return JSONResponse({"rows": [{**r, "MatlWrhsStkQtyInMatlBaseUnit": str(r["MatlWrhsStkQtyInMatlBaseUnit"])}
                                      for r in rows]})

    async def documents(request: Request) -> Response:
        limit = request.query_params.get("limit", "")
        with lock:
            docs = list(inventory.documents.values())[::-1]
            if limit.isdigit():
                docs = docs[:int(limit)]
            out = [{**{k: (json_date(v, offset=False) if hasattr(v, "tzinfo") else v)
                       for k, v in inventory.header_row(d).items()},
                    "items": [{k: (str(v) if k.startswith("Quantity") else v) for k, v in item.items()}
                              for item in inventory.item_rows(d)]} for d in docs]
            total = len(inventory.documents)
        return JSONResponse({"count": total, "documents": out})

    return [Route(f"{ADMIN_PREFIX}/stock", seed, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/stock", show, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/material-documents", documents, methods=["GET"])]


_MATERIAL = re.compile(r"^[A-Za-z0-9_\-./]{1,40}$")


def _seed(inventory: SapInventory, body: dict[str, Any]) -> int:
    count = 0
    for entry in body.get("items") or []:
        material = str(entry["material"])
        if not _MATERIAL.match(material):
            raise ValueError(f"material {material!r}")
        inventory.set_stock(material, str(entry["plant"]), str(entry["storage_location"]), entry["quantity"],
                            unit=entry.get("unit"), batch=str(entry.get("batch") or ""),
                            stock_type=str(entry.get("stock_type") or "01"))
        count += 1
    spec = body.get("generate")
    if spec:
        start, width = int(spec.get("start", 1)), int(spec.get("width", 6))
        plant, sloc, qty = str(spec["plant"]), str(spec["storage_location"]), spec.get("quantity", 10)
        for number in range(start, start + int(spec["count"])):
            inventory.set_stock(f"{spec['prefix']}{number:0{width}d}", plant, sloc, qty)
            count += 1
    return count


__all__ = ["DOCUMENT_SERVICE_PATH", "STOCK_SERVICE_PATH", "admin_routes", "dispatch", "handles", "odata_routes"]
