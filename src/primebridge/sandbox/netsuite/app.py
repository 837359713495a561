"""The NetSuite sandbox as a Starlette app: REST record service, SuiteQL, OAuth 2.0 token endpoint,
NetSuite's concurrency governance, fault knobs and the ``/_sandbox`` admin API.

Service (every call needs a valid TBA header or a bearer token from the token endpoint):
``GET|PATCH /services/rest/record/v1/salesOrder/{id|eid:x}``, ``POST .../salesOrder`` (204 +
``Location``), ``POST .../salesOrder/{id}/!transform/itemFulfillment``, ``GET|PATCH .../itemFulfillment/{id|eid:x}``,
``GET`` of ``currency``, ``customer``, ``inventoryItem``, ``location``, ``shipItem``, ``employee``;
``POST /services/rest/query/v1/suiteql``; ``GET /services/rest/system/v1/governanceLimits``;
``POST /services/rest/auth/oauth2/v1/token``.

Admin (never authenticated, never faulted or throttled):
``POST /_sandbox/sales-orders`` (seed, see ``admin``), ``GET /_sandbox/sales-orders[/{id}]``,
``PATCH /_sandbox/sales-orders/{id}`` (a user's change), ``POST /_sandbox/reset``, ``GET /_sandbox/stats``,
``GET /_sandbox/item-fulfillments[/{id}]`` (``?sales_order=``),
``GET /_sandbox/login-audit``, ``PUT /_sandbox/clock`` (``{"now": iso|null}`` / ``{"advance_seconds": n}``),
``PUT /_sandbox/governance`` (``concurrency_limit``, ``gate_closed``, ``token_ttl_seconds``),
``POST /_sandbox/oauth2/certificates`` (``client_id``, ``public_key`` PEM, optional ``certificate_id``,
``user_id``), ``POST /_sandbox/oauth2/expire-tokens``, ``GET|PUT /_sandbox/knobs``.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from primebridge.sandbox.knobs import ADMIN_PREFIX, FaultInjector, FaultMiddleware, Knobs, knob_routes
from primebridge.sandbox.netsuite import admin, auth, fulfillments, inventory_api, records
from primebridge.sandbox.netsuite.errors import NsError, error_response
from primebridge.sandbox.netsuite.state import SandboxState, TbaCredentials
from primebridge.sandbox.netsuite.suiteql import SuiteQLError, execute

RESOURCE_JSON = "application/vnd.oracle.resource+json; type=singular"
COLLECTION_JSON = "application/vnd.oracle.resource+json; type=collection"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
MAX_SUITEQL_LIMIT = 1000
RECORD_TYPES = {name.lower(): name for name in (
    "salesOrder", "itemFulfillment", "currency", "customer", "inventoryItem", "location", "shipItem", "employee")}


class GovernanceMiddleware:
    """NetSuite's account concurrency limit: a request beyond ``concurrency_limit`` in flight gets
    429 ``CONCURRENCY_LIMIT_EXCEEDED`` at once. It also records the most requests ever in flight and,
    while the admin "gate" is closed, holds admitted requests so tests can observe a fixed number of
    them in flight without relying on timing."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        state = self.state
        with state.lock:
            admitted = state.in_flight < state.concurrency_limit
            if admitted:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            else:
                state.throttled += 1
        if not admitted:
            response = error_response(429, "CONCURRENCY_LIMIT_EXCEEDED",
                                      "Concurrent request limit exceeded. Request blocked.")
            await response(scope, receive, send)
            return
        try:
            while state.gate_closed:
                await asyncio.sleep(0.005)
            await self.app(scope, receive, send)
        finally:
            with state.lock:
                state.in_flight -= 1


def _on_fault(fault: str, knobs: Knobs) -> Response:
    if fault == "throttle":
        return error_response(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded. "
                              "Request blocked.", headers={"Retry-After": f"{knobs.retry_after_seconds:g}"})
    return error_response(500, "UNEXPECTED_ERROR",
                          f"An unexpected error occurred. Error ID: {secrets.token_hex(8)}")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _flag(request: Request, name: str) -> bool:
    value = next((v for k, v in request.query_params.multi_items() if k.lower() == name.lower()), "false")
    return value.lower() == "true"


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return await request.json()
    except ValueError as exc:
        raise NsError(400, "INVALID_CONTENT", f"The request body is not valid JSON: {exc}") from exc


Handler = Callable[[Request, str], Awaitable[Response]]


def service(state: SandboxState, operation: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate (TBA or bearer), count the operation, turn ``NsError`` into NetSuite's error body."""

    async def endpoint(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scope = request.scope
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        uri = auth.base_string_uri(scope.get("scheme", "http"), request.headers.get("host", ""),
                                   scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0])
        with state.lock:
            try:
                if header[:7].lower() == "bearer ":
                    user = auth.verify_bearer(state, header[7:].strip())
                else:
                    if not header:
                        raise auth.LoginFailed("MissingTokenPassportRequiredFields", "no Authorization header")
                    user = auth.verify_tba(state, method=request.method, uri=uri, query=query, header=header)
            except auth.LoginFailed as failure:
                return auth.login_error(state, failure).response()
            given = request.path_params.get("rtype", "")
            state.operations[operation.replace("{type}", RECORD_TYPES.get(given.lower(), given))] += 1
        try:
            return await handler(request, user)
        except NsError as err:
            return err.response()

    return endpoint


def _record_type(request: Request) -> str:
    """Record type path segments look case-insensitive in Oracle's examples (reference §2.1)."""
    given = request.path_params["rtype"]
    kind = RECORD_TYPES.get(given.lower())
    if kind is None:
        raise NsError(404, "NONEXISTENT_ID", f"Record type '{given}' does not exist.")
    return kind


def _rules(request: Request, custom_fields: frozenset[str] | None) -> records.FieldRules:
    return records.FieldRules(request.headers.get("x-netsuite-propertynamevalidation", "warning").lower(),
                              custom_fields)


def _no_content(location: str, rules: records.FieldRules) -> Response:
    headers = {"Location": location}
    if rules.warnings:
        headers["X-NetSuite-Warning"] = " | ".join(rules.warnings)[:2000]
    return Response(status_code=204, headers=headers)


def service_routes(state: SandboxState, custom_fields: frozenset[str] | None) -> list[Route]:
    async def get_record(request: Request, user: str) -> Response:
        kind = _record_type(request)
        record_id = request.path_params["rid"]
        expand = _flag(request, "expandSubResources")
        simple = _flag(request, "simpleEnumFormat")
        fields = request.query_params.get("fields")
        with state.lock:
            if kind == "salesOrder":
                body = records.render_sales_order(records.find_order(state, record_id), _base(request),
                                                  expand=expand, simple_enum=simple,
                                                  fields=fields.split(",") if fields else None)
            elif kind == "itemFulfillment":
                body = fulfillments.render_fulfillment(fulfillments.find_fulfillment(state, record_id),
                                                       _base(request), expand=expand, simple_enum=simple)
            else:
                catalog = {"currency": state.currencies, "customer": state.customers,
                           "inventoryItem": state.items, "location": state.locations,
                           "shipItem": state.ship_items, "employee": state.employees}[kind]
                ref = catalog.get(record_id)
                if ref is None:
                    raise records.not_found()
                body = records.render_reference(kind, ref, _base(request))
        return JSONResponse(body, media_type=RESOURCE_JSON)

    async def patch_record(request: Request, user: str) -> Response:
        kind = _record_type(request)
        if kind not in ("salesOrder", "itemFulfillment"):
            raise NsError(405, "INVALID_REQUEST", f"The sandbox does not update {kind} records.")
        body = await _json_body(request)
        rules = _rules(request, custom_fields)
        replace = {p.strip() for p in request.query_params.get("replace", "").split(",") if p.strip()}
        if kind == "itemFulfillment":
            with state.lock:
                ful = fulfillments.find_fulfillment(state, request.path_params["rid"])
                ful = fulfillments.patch_fulfillment(state, ful, body, replace=replace, rules=rules, user=user)
            return _no_content(records.href(_base(request), kind, ful.id), rules)
        with state.lock:
            so = records.find_order(state, request.path_params["rid"])
            so = records.patch_sales_order(state, so, body, replace=replace, rules=rules, user=user)
        return _no_content(records.href(_base(request), "salesOrder", so.id), rules)

    async def create_record(request: Request, user: str) -> Response:
        kind = _record_type(request)
        if kind != "salesOrder":
            raise NsError(405, "INVALID_REQUEST", f"The sandbox does not create {kind} records.")
        body = await _json_body(request)
        rules = _rules(request, custom_fields)
        with state.lock:
            so = records.create_sales_order(state, body, rules=rules, user=user)
        return _no_content(records.href(_base(request), "salesOrder", so.id), rules)

    async def transform(request: Request, user: str) -> Response:
        kind = _record_type(request)
        target = request.path_params["target"]
        if kind != "salesOrder" or target.lower() != "itemfulfillment":
            raise NsError(400, "INVALID_REQUEST",
                          f"The sandbox supports only salesOrder → itemFulfillment, not {kind} → {target}.")
        body = await _json_body(request)
        rules = _rules(request, custom_fields)
        with state.lock:
            so = records.find_order(state, request.path_params["rid"])
            ful = fulfillments.transform_to_fulfillment(state, so, body, rules=rules, user=user)
        return _no_content(records.href(_base(request), "itemFulfillment", ful.id), rules)

    async def suiteql(request: Request, user: str) -> Response:
        if "transient" not in request.headers.get("prefer", "").lower():
            raise NsError(400, "INVALID_REQUEST", "SuiteQL requests need the header 'Prefer: transient'.")
        try:
            limit = int(request.query_params.get("limit", MAX_SUITEQL_LIMIT))
            offset = int(request.query_params.get("offset", 0))
        except ValueError:
            raise NsError(400, "INVALID_PARAMETER", "limit and offset must be whole numbers.") from None
        if not 1 <= limit <= MAX_SUITEQL_LIMIT or offset < 0:
            raise NsError(400, "INVALID_PARAMETER", f"limit must be 1..{MAX_SUITEQL_LIMIT} and offset >= 0.")
        if offset % limit:
            # Rule of the record collections; assumed for SuiteQL too (reference §3.1, [U]).
            raise NsError(400, "INVALID_PARAMETER", "The offset must be a multiple of the limit.")
        body = await _json_body(request)
        query = body.get("q") if isinstance(body, dict) else None
        params = body.get("params", []) if isinstance(body, dict) else []
        if not isinstance(query, str) or not query.strip():
            raise NsError(400, "INVALID_CONTENT", "The body must be {\"q\": \"<SuiteQL query>\"}.", path="q")
        if not isinstance(params, list):
            raise NsError(400, "INVALID_CONTENT", "params must be a list.", path="params")
        with state.lock:
            try:
                tables = {**records.suiteql_tables(state), **inventory_api.suiteql_tables(state)}
                rows = execute(query, tables, params, now=state.now())
            except SuiteQLError as exc:
                raise NsError(400, "INVALID_PARAMETER", "Invalid search query. Detailed unprocessed description "
                              f"follows. {exc}") from exc
        page = rows[offset:offset + limit]
        total = len(rows)
        has_more = offset + len(page) < total

        def link(rel: str, at: int) -> dict[str, str]:
            return {"rel": rel, "href": f"{_base(request)}{SUITEQL_PATH}?{urlencode({'limit': limit, 'offset': at})}"}

        last = max(0, (total - 1) // limit * limit)
        links = [link("self", offset), link("first", 0)]
        if offset > 0:
            links.append(link("prev", max(0, offset - limit)))
        if has_more:
            links.append(link("next", offset + limit))
        links.append(link("last", last))
        return JSONResponse({"links": links, "count": len(page), "hasMore": has_more, "offset": offset,
                             "totalResults": total, "items": [{"links": [], **row} for row in page]},
                            media_type=COLLECTION_JSON)

    async def governance(request: Request, user: str) -> Response:
        with state.lock:
            limit = state.concurrency_limit
        return JSONResponse({"accountConcurrencyLimit": limit, "accountUnallocatedConcurrencyLimit": limit,
                             "integrationConcurrencyLimit": limit, "integrationLimitType": "accountLimit"})

    record = "/services/rest/record/v1/{rtype}"
    return [
        Route(record + "/{rid}/!transform/{target}", service(state, "transform {type}", transform),
              methods=["POST"]),
        Route(record + "/{rid}", service(state, "GET {type}", get_record), methods=["GET"]),
        Route(record + "/{rid}", service(state, "PATCH {type}", patch_record), methods=["PATCH"]),
        Route(record, service(state, "POST {type}", create_record), methods=["POST"]),
        Route(SUITEQL_PATH, service(state, "SuiteQL", suiteql), methods=["POST"]),
        Route("/services/rest/system/v1/governanceLimits", service(state, "governanceLimits", governance),
              methods=["GET"]),
    ]


def token_route(state: SandboxState) -> Route:
    async def token(request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "use application/x-www-form-urlencoded"}, status_code=400)
        form = {k: str(v) for k, v in (await request.form()).items()}
        with state.lock:
            state.operations["OAuth2 token"] += 1
            try:
                return JSONResponse(auth.issue_token(state, form))
            except auth.TokenError as err:
                state.audit_login("failure", err.error, err.description)
                return JSONResponse(err.body(), status_code=err.status)

    return Route(auth.TOKEN_PATH, token, methods=["POST"])


def admin_routes(state: SandboxState, injector: FaultInjector) -> list[Route]:
    def bad(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def view(request: Request, so: Any) -> dict[str, Any]:
        body = records.render_sales_order(so, _base(request), expand=True)
        body["_sandbox"] = {"lastModifiedBy": so.last_modified_by}
        return body

    async def seed(request: Request) -> Response:
        try:
            payload = await request.json()
            with state.lock:
                so = admin.seed_sales_order(state, payload)
                return JSONResponse({"id": str(so.id), "tranId": so.tran_id, "record": view(request, so)},
                                    status_code=201)
        except ValueError as exc:
            return bad(str(exc))

    async def list_orders(request: Request) -> Response:
        with state.lock:
            return JSONResponse({"items": [view(request, so) for so in state.orders.values()]})

    async def get_order(request: Request) -> Response:
        raw = request.path_params["id"]
        with state.lock:
            so = state.orders.get(int(raw)) if raw.isdigit() else None
            return bad(f"no sales order {raw}", 404) if so is None else JSONResponse(view(request, so))

    async def change_order(request: Request) -> Response:
        raw = request.path_params["id"]
        try:
            payload = await request.json()
            with state.lock:
                so = state.orders.get(int(raw)) if raw.isdigit() else None
                if so is None:
                    return bad(f"no sales order {raw}", 404)
                draft = admin.change_sales_order(state, copy.deepcopy(so), payload)
                state.orders[draft.id] = draft
                return JSONResponse(view(request, draft))
        except ValueError as exc:
            return bad(str(exc))

    async def reset(request: Request) -> Response:
        with state.lock:
            state.reset()
        return JSONResponse({"reset": True})

    async def stats(request: Request) -> Response:
        with state.lock:
            return JSONResponse(state.stats())

    async def login_audit(request: Request) -> Response:
        with state.lock:
            return JSONResponse({"items": list(state.login_audit)})

    async def clock(request: Request) -> Response:
        try:
            payload = await request.json()
            with state.lock:
                if payload.get("now") is not None:
                    state.frozen_now = admin._moment(payload["now"], "now")
                elif "now" in payload:
                    state.frozen_now = None
                if payload.get("advance_seconds"):
                    state.frozen_now = state.now() + timedelta(seconds=float(payload["advance_seconds"]))
                now = state.now()
        except (ValueError, TypeError, AttributeError) as exc:
            return bad(f"expected {{\"now\": iso|null, \"advance_seconds\": n}}: {exc}")
        return JSONResponse({"now": records.iso(now), "frozen": state.frozen_now is not None})

    async def governance(request: Request) -> Response:
        try:
            payload = await request.json()
            with state.lock:
                if "concurrency_limit" in payload:
                    limit = int(payload["concurrency_limit"])
                    if limit < 1:
                        raise ValueError("concurrency_limit must be at least 1")
                    state.concurrency_limit = limit
                if "gate_closed" in payload:
                    state.gate_closed = bool(payload["gate_closed"])
                if "token_ttl_seconds" in payload:
                    state.token_ttl_seconds = float(payload["token_ttl_seconds"])
                return JSONResponse({"concurrency_limit": state.concurrency_limit, "gate_closed": state.gate_closed,
                                     "token_ttl_seconds": state.token_ttl_seconds})
        except (ValueError, TypeError, AttributeError) as exc:
            return bad(str(exc))

    async def certificates(request: Request) -> Response:
        try:
            payload = await request.json()
            with state.lock:
                cert = auth.register_certificate(state, payload)
        except ValueError as exc:
            return bad(str(exc))
        return JSONResponse({"certificate_id": cert.certificate_id, "client_id": cert.client_id,
                             "user_id": cert.user_id}, status_code=201)

    async def expire_tokens(request: Request) -> Response:
        with state.lock:
            for issued in state.tokens.values():
                issued.expires_at = 0.0
            count = len(state.tokens)
        return JSONResponse({"expired": count})

    p = ADMIN_PREFIX
    return [
        Route(f"{p}/sales-orders", seed, methods=["POST"]),
        Route(f"{p}/sales-orders", list_orders, methods=["GET"]),
        Route(f"{p}/sales-orders/{{id}}", get_order, methods=["GET"]),
        Route(f"{p}/sales-orders/{{id}}", change_order, methods=["PATCH"]),
        Route(f"{p}/reset", reset, methods=["POST"]),
        Route(f"{p}/stats", stats, methods=["GET"]),
        Route(f"{p}/login-audit", login_audit, methods=["GET"]),
        Route(f"{p}/clock", clock, methods=["PUT"]),
        Route(f"{p}/governance", governance, methods=["PUT"]),
        Route(f"{p}/oauth2/certificates", certificates, methods=["POST"]),
        Route(f"{p}/oauth2/expire-tokens", expire_tokens, methods=["POST"]),
        *knob_routes(injector),
    ]


def create_app(
    *,
    account_id: str = "TSTDRV1234567",
    consumer_key: str = "sandbox-ck",
    consumer_secret: str = "sandbox-cs",
    token_id: str = "sandbox-tid",
    token_secret: str = "sandbox-ts",
    knobs: Knobs | None = None,
    integration_user_id: str = "7",
    concurrency_limit: int = 5,
    custom_fields: Iterable[str] | None = None,
) -> Starlette:
    """``custom_fields``: the custbody_/custcol_ ids that exist; ``None`` accepts any such id."""
    state = SandboxState(
        account_id=account_id,
        credentials=TbaCredentials(consumer_key, consumer_secret, token_id, token_secret, integration_user_id),
        concurrency_limit=concurrency_limit,
    )
    injector = FaultInjector(knobs)
    fields = None if custom_fields is None else frozenset(f.lower() for f in custom_fields)
    app = Starlette(
        routes=[*admin_routes(state, injector), *fulfillments.admin_routes(state), *inventory_api.admin_routes(state),
                token_route(state), *inventory_api.service_routes(state, service), *service_routes(state, fields)],
        middleware=[Middleware(GovernanceMiddleware, state=state),
                    Middleware(FaultMiddleware, injector=injector, on_fault=_on_fault)],
    )
    app.state.sandbox = state
    app.state.injector = injector
    return app
