"""The OData V2 resource handling of the sandbox: GET/POST/PATCH/MERGE/PUT/DELETE on the entity sets.

Auth and CSRF are checked before this runs (see ``app``); here live the resource path, the system
query options, server-driven paging and the ETag preconditions (428 without ``If-Match``, 412 on a
stale one, ``*`` accepted) on entity types that carry a concurrency token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from primebridge.sandbox.sap.errors import NOT_FOUND, ODataError
from primebridge.sandbox.sap.query import (
    Row,
    compile_filter,
    parse_resource_path,
    path_tree,
    resolve_keys,
    sort_rows,
    validate_expand,
    validate_select,
)
from primebridge.sandbox.sap.schema import ENTITY_TYPES, EntityType, Nav
from primebridge.sandbox.sap.serialize import entity_uri, render_entity, sort_key
from primebridge.sandbox.sap.state import SapStore

KNOWN_OPTIONS = {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$skiptoken", "$inlinecount",
                 "$format"}


@dataclass
class Target:
    etype: EntityType
    row: Row | None = None
    rows: list[Row] | None = None
    parent: Row | None = None
    nav: Nav | None = None
    count: bool = False


def resolve(store: SapStore, path: str) -> Target:
    segments = parse_resource_path(path)
    first = segments[0]
    etype = ENTITY_TYPES.get(first.name)
    if etype is None:
        raise ODataError(404, f"Resource not found for segment '{first.name}' (entity set unknown or not "
                              f"modelled by the sandbox)", code=NOT_FOUND)
    if first.keys is not None:
        target = Target(etype, row=store.require(etype, resolve_keys(etype, first.keys)))
    else:
        target = Target(etype, rows=list(store.tables[etype.set_name].values()))
    for seg in segments[1:]:
        if seg.name == "$count" and target.rows is not None:
            target.count = True
            continue
        if target.row is None or target.count:
            raise ODataError(400, f"Segment '{seg.name}' must follow a single entity")
        nav = target.etype.navs.get(seg.name)
        if nav is None:
            raise ODataError(404, f"Resource not found for segment '{seg.name}' of "
                                  f"'{target.etype.type_name}'", code=NOT_FOUND)
        child_type = ENTITY_TYPES[nav.target]
        children = store.follow(nav, target.row)
        if seg.keys is not None:
            keys = resolve_keys(child_type, seg.keys)
            wanted = tuple(keys[k] for k in child_type.keys)
            match = [r for r in children if store.key_of(child_type, r) == wanted]
            if not match:
                raise ODataError(404, f"Resource not found for segment '{child_type.type_name}'",
                                 code=NOT_FOUND)
            target = Target(child_type, row=match[0])
        elif nav.many:
            target = Target(child_type, rows=children, parent=target.row, nav=nav)
        else:
            if not children:
                raise ODataError(404, f"Resource not found for segment '{child_type.type_name}'",
                                 code=NOT_FOUND)
            target = Target(child_type, row=children[0])
    return target


def _int_option(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ODataError(400, f"Invalid value '{raw}' for system query option {name}")
    return int(raw)


def _check_options(request: Request) -> None:
    for name in request.query_params:
        if name.startswith("$") and name not in KNOWN_OPTIONS:
            raise ODataError(400, f"System query option '{name}' is not supported")
    fmt = request.query_params.get("$format")
    if fmt is not None and fmt != "json":
        raise ODataError(400, f"$format={fmt}: the SAP sandbox only serves JSON")
    accept = request.headers.get("accept", "")
    if fmt is None and "json" not in accept.lower():
        raise ODataError(406, "The SAP sandbox only serves JSON: send 'Accept: application/json' or "
                              "$format=json (SAP itself would answer with Atom XML)")


def service_base(request: Request, service_path: str) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{service_path}"


def _next_link(request: Request, token: int) -> str:
    parts = [p for p in request.url.query.split("&")
             if p and not p.startswith(("$skiptoken=", "%24skiptoken="))]
    parts.append(f"$skiptoken={token}")
    return f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{'&'.join(parts)}"


def get(request: Request, store: SapStore, service_path: str, target: Target) -> Response:
    _check_options(request)
    base = service_base(request, service_path)
    expand = path_tree(request.query_params.get("$expand"))
    select = path_tree(request.query_params.get("$select"))
    validate_expand(expand, target.etype)
    validate_select(select, target.etype, expand)
    if target.row is not None:
        body = render_entity(store, target.etype, target.row, base, expand=expand, select=select)
        etag = store.etag(target.etype, target.row)
        return JSONResponse({"d": body}, headers={"ETag": etag} if etag else None)
    rows = list(target.rows or [])
    text = request.query_params.get("$filter")
    if text:
        predicate = compile_filter(text, target.etype)
        rows = [row for row in rows if predicate(row)]
    if target.count:
        return PlainTextResponse(str(len(rows)))
    total = len(rows)
    orderby = request.query_params.get("$orderby")
    rows = sorted(rows, key=lambda r: sort_key(store.key_of(target.etype, r)))
    if orderby:
        rows = sort_rows(rows, orderby, target.etype)
    skip = _int_option(request, "$skip") or 0
    top = _int_option(request, "$top")
    window = rows[skip:] if top is None else rows[skip:skip + top]
    token = _int_option(request, "$skiptoken") or 0
    page_size = store.settings.server_page_size
    page = window[token:token + page_size] if page_size else window[token:]
    data: dict[str, Any] = {"results": [
        render_entity(store, target.etype, row, base, expand=expand, select=select) for row in page]}
    inline = request.query_params.get("$inlinecount")
    if inline not in (None, "allpages", "none"):
        raise ODataError(400, f"Invalid value '{inline}' for $inlinecount")
    if inline == "allpages":
        data["__count"] = str(total)
    if page_size and token + page_size < len(window):
        data["__next"] = _next_link(request, token + page_size)
    return JSONResponse({"d": data})


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise ODataError(400, f"The request body is not valid JSON: {exc}") from None
    if isinstance(body, dict) and isinstance(body.get("d"), dict):
        body = body["d"]
    if not isinstance(body, dict):
        raise ODataError(400, "The request body must be a JSON object")
    return body


def post(request: Request, store: SapStore, service_path: str, target: Target, raw: bytes) -> Response:
    if target.row is not None or target.count:
        raise ODataError(405, f"POST is not allowed on a single {target.etype.type_name}; use PATCH or MERGE")
    body = _json_body(raw)
    row = store.create(target.etype, body, parent=target.parent, nav=target.nav)
    store.stats["creates"] += 1
    base = service_base(request, service_path)
    expand = {name: {} for name in target.etype.navs if name in body}
    if "to_Item" in body and target.etype.set_name == "A_SalesOrder":
        expand["to_Item"] = {"to_Text": {}}
    if "to_Partner" in body and target.etype.set_name == "A_SalesOrder":
        expand["to_Partner"] = {"to_Address": {}}
    rendered = render_entity(store, target.etype, row, base, expand=expand)
    headers = {"Location": entity_uri(base, target.etype, row)}
    etag = store.etag(target.etype, row)
    if etag:
        headers["ETag"] = etag
    return JSONResponse({"d": rendered}, status_code=201, headers=headers)


def _weak(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def check_precondition(request: Request, store: SapStore, target: Target) -> None:
    assert target.row is not None
    current = store.etag(target.etype, target.row)
    if current is None:
        return  # no concurrency token on this entity type: If-Match is not evaluated
    sent = request.headers.get("if-match")
    if not sent:
        if store.settings.require_if_match:
            store.stats["precondition_required"] += 1
            raise ODataError(428, f"Precondition required: send If-Match with the ETag of "
                                  f"{target.etype.type_name}")
        return
    candidates = [_weak(t) for t in sent.split(",")]
    if "*" in candidates or _weak(current) in candidates:
        return
    store.stats["precondition_failed"] += 1
    raise ODataError(412, f"{target.etype.type_name} was changed in the meantime (ETag mismatch); read it "
                          f"again")


def modify(request: Request, store: SapStore, target: Target, method: str, raw: bytes) -> Response:
    if target.row is None:
        raise ODataError(405, f"{method} needs a single entity, not the collection {target.etype.set_name}")
    check_precondition(request, store, target)
    if method == "DELETE":
        store.delete(target.etype, target.row)
        store.stats["deletes"] += 1
    else:
        store.update(target.etype, target.row, _json_body(raw), replace=method == "PUT")
        store.stats["updates"] += 1
    return Response(status_code=204)


def service_document() -> JSONResponse:
    return JSONResponse({"d": {"EntitySets": sorted(ENTITY_TYPES)}})


def metadata(path: Path | None) -> Response:
    if path is None or not path.is_file():
        raise ODataError(404, "$metadata is not available: the EDMX contract file is absent on this machine",
                         code=NOT_FOUND)
    return Response(path.read_bytes(), media_type="application/xml")
