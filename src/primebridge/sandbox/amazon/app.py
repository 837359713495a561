"""The Buy with Prime sandbox as a Starlette app: ``/token``, ``/graphql`` and the ``/_sandbox`` admin API.

It answers the way BwP is documented to (reference §1, §2.8, §6): OAuth client-credentials tokens
that expire; a GraphQL endpoint that wants a bearer token (HTTP 401 otherwise), a target id header
(either spelling) and ``x-api-version``; errors as HTTP 200 with ``extensions.classification``,
including throttling. The schema is ``schema.graphql`` executed with graphql-core.

Events (reference §2.9, §3): the sandbox mutation ``updateOrderPackageInformation`` (packages.py),
auth profiles and subscriptions (subscriptions.py), delivery to webhooks with auth, optional
signing and fault knobs (delivery.py, signing.py; JWKS at ``GET /jwks.json``). Admin routes:

- ``POST /_sandbox/events`` ``{"eventType", "resources": [...], "data"?}``: publish any event
  (e.g. INVENTORY_CHANGED, which the real sandbox does not publish); resources without the
  ``businessProduct/…`` prefix get it. Answers 201 ``{"event", "deliveries"}``.
- ``GET /_sandbox/events``: every published event. ``GET /_sandbox/deliveries[?state=pending|
  in_flight|delivered|failed]``: the deliveries. ``POST /_sandbox/deliveries/drain?timeout=10``:
  waits (at most 60 s) until nothing is pending or in flight; 200 ``{"drained": true, ...}`` or
  504 with the counts.
- ``GET``/``PUT /_sandbox/delivery/knobs``; ``GET /_sandbox/subscriptions`` (secrets masked);
  ``POST /_sandbox/signing/rotate`` (new current key, the previous one stays in the JWKS).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from functools import cache
from importlib import resources
from typing import Any

import structlog
from graphql import GraphQLError, GraphQLSchema, build_schema, graphql_sync
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from primebridge.sandbox.amazon.delivery import DeliveryKnobs
from primebridge.sandbox.amazon.products import MAX_FIRST, inventory_item, products_page
from primebridge.sandbox.amazon.state import CatalogItem, SandboxState
from primebridge.sandbox.amazon.validation import SandboxFault
from primebridge.sandbox.knobs import ADMIN_PREFIX, FaultInjector, FaultMiddleware, Knobs, knob_routes

log = structlog.get_logger()

API_VERSION = "2024-11-01"
TARGET_ID_HEADERS = ("x-api-target-id", "x-omni-targetid")


@cache
def schema_sdl() -> str:
    return (resources.files(__package__) / "schema.graphql").read_text(encoding="utf-8")


@cache
def schema() -> GraphQLSchema:
    return build_schema(schema_sdl())


def graphql_error(type_: str, code: str, message: str, *, path: list[str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "extensions": {"classification": {"type": type_, "code": code}}}
    if path:
        error["path"] = path
    return error


def errors_response(*errors: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"data": None, "errors": list(errors)}, status_code=status, headers=headers)


class _Root:
    """Root value: graphql-core's default resolver calls these with ``(info, **arguments)``."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state

    def order(self, info: Any, orderIdentifier: dict[str, Any]) -> dict[str, Any]:
        return _guard(lambda: self._state.get_order(orderIdentifier))

    def products(self, info: Any, first: int = MAX_FIRST, after: str | None = None) -> dict[str, Any]:
        return _guard(lambda: products_page(self._state, first, after))

    def inventoryItem(self, info: Any, inventoryItemId: str) -> dict[str, Any]:
        return _guard(lambda: inventory_item(self._state, inventoryItemId))

    def createOrder(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return {"order": _guard(lambda: self._state.create_order(input))}

    def updateOrder(self, info: Any, orderIdentifier: dict[str, Any],
                    input: dict[str, Any]) -> dict[str, Any]:
        return {"order": _guard(lambda: self._state.update_order(orderIdentifier, input))}

    def updateOrderPackageInformation(self, info: Any, orderIdentifier: dict[str, Any],
                                      input: dict[str, Any]) -> dict[str, Any]:
        return {"order": _guard(lambda: self._state.update_package_information(orderIdentifier, input))}

    def packageTracker(self, info: Any, packageTrackerInput: dict[str, Any]) -> dict[str, Any]:
        return _guard(lambda: self._state.package_tracker(packageTrackerInput["packageTrackerIdentifier"]))

    def createAuthProfile(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return _guard(lambda: self._state.subscriptions.create_auth_profile(input))

    def updateAuthProfile(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return _guard(lambda: self._state.subscriptions.update_auth_profile(input))

    def createEventSubscription(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return _guard(lambda: self._state.subscriptions.create_subscription(input))

    def deleteEventSubscription(self, info: Any, subscriptionId: str) -> dict[str, Any]:
        return _guard(lambda: self._state.subscriptions.delete_subscription(subscriptionId))

    def eventSubscription(self, info: Any, subscriptionId: str) -> dict[str, Any]:
        return _guard(lambda: self._state.subscriptions.subscription(subscriptionId))

    def eventSubscriptions(self, info: Any) -> dict[str, Any]:
        return self._state.subscriptions.connection()


def _guard(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except SandboxFault as fault:
        raise GraphQLError(fault.message, extensions=fault.extensions()) from None


def _classified(error: GraphQLError) -> dict[str, Any]:
    """Every error gets a classification: our faults carry one, graphql-core's own parse, validation
    and coercion errors are ``ValidationError``s, anything else is a sandbox bug (InternalServerError)."""
    formatted = dict(error.formatted)
    if (formatted.get("extensions") or {}).get("classification"):
        return formatted
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        log.error("amazon_sandbox.resolver_failed", error=repr(original))
        formatted["extensions"] = {"classification": {"type": "InternalServerError", "code": "InternalFailure"}}
    else:
        formatted["extensions"] = {"classification": {"type": "ValidationError", "code": "InvalidRequest"}}
    return formatted


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = raw.partition(":")
    return client_id, secret


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


class _Handlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.root = _Root(state)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        client_id, secret = _basic_credentials(request)
        if client_id is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if form.get("grant_type") != "client_credentials":
            self.state.count("token.refused")
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "only grant_type=client_credentials is supported"},
                                status_code=400)
        if not self.state.credentials_match(_text(client_id), _text(secret)):
            self.state.count("token.refused")
            return JSONResponse({"error": "invalid_client"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="token"'})
        ttl = self.state.token_ttl_seconds
        return JSONResponse({"access_token": self.state.mint_token(), "token_type": "bearer",
                             "expires_in": int(ttl) if float(ttl).is_integer() else ttl})

    async def graphql(self, request: Request) -> Response:
        state = self.state
        if not state.token_valid(_bearer(request)):
            state.count("graphql.unauthorized")
            return JSONResponse({"message": "Unauthorized"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        version = request.headers.get("x-api-version")
        if version != API_VERSION:
            return errors_response(graphql_error(
                "ValidationError", "UnsupportedApiVersion",
                f"x-api-version {version!r} is not supported; use {API_VERSION}"), status=400)
        target = next((request.headers[h] for h in TARGET_ID_HEADERS if h in request.headers), None)
        if target != state.target_id:
            state.count("graphql.access_denied")
            return errors_response(graphql_error(
                "AccessDeniedError", "InvalidTargetId",
                "missing or unknown target id (x-api-target-id / X-Omni-TargetId)"))
        if state.api_access_key is not None and request.headers.get("x-api-access-key") != state.api_access_key:
            state.count("graphql.access_denied")
            return errors_response(graphql_error("AccessDeniedError", "InvalidAccessKey",
                                                 "missing or wrong x-api-access-key"))
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return errors_response(graphql_error("ValidationError", "InvalidRequest",
                                                 "the body must be a JSON object with a 'query' string"),
                                   status=400)
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return errors_response(graphql_error("ValidationError", "InvalidRequest",
                                                 "'variables' must be a JSON object"), status=400)
        result = await run_in_threadpool(
            graphql_sync, schema(), body["query"], self.root, variable_values=variables,
            operation_name=body.get("operationName"))
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_classified(error) for error in result.errors]
        return JSONResponse(payload)

    # -- admin ------------------------------------------------------------------------------------

    async def list_orders(self, request: Request) -> Response:
        return JSONResponse(self.state.list_orders())

    async def get_order(self, request: Request) -> Response:
        order = self.state.admin_order(request.path_params["order_id"])
        if order is None:
            return JSONResponse({"error": f"no order {request.path_params['order_id']}"}, status_code=404)
        return JSONResponse(order)

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})

    async def put_catalog(self, request: Request) -> Response:
        try:
            raw = await request.json()
            items = [CatalogItem.from_json(entry) for entry in (raw if isinstance(raw, list) else [raw])]
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"seeded": len(items), "catalog_size": self.state.seed_catalog(items)})

    async def get_catalog(self, request: Request) -> Response:
        return JSONResponse(self.state.catalog())

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats_snapshot())

    async def revoke_tokens(self, request: Request) -> Response:
        return JSONResponse({"revoked": self.state.revoke_tokens()})

    async def schema(self, request: Request) -> Response:
        return PlainTextResponse(schema_sdl())

    # -- events -----------------------------------------------------------------------------------

    async def emit_event(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("eventType"), str) or not body["eventType"]:
            return JSONResponse({"error": "the body must be a JSON object with an 'eventType' string"},
                                status_code=400)
        resources = body.get("resources", [])
        if not isinstance(resources, list) or not all(isinstance(r, str) and r.strip("/") for r in resources):
            return JSONResponse({"error": "'resources' must be a list of non-empty strings"}, status_code=400)
        data = body.get("data")
        data = {} if data is None else data
        if not isinstance(data, dict):
            return JSONResponse({"error": "'data' must be a JSON object"}, status_code=400)
        event, deliveries = self.state.emit(body["eventType"], resources, data)
        return JSONResponse({"event": event.to_json(), "deliveries": deliveries}, status_code=201)

    async def list_events(self, request: Request) -> Response:
        return JSONResponse(self.state.deliveries.events())

    async def list_deliveries(self, request: Request) -> Response:
        state = request.query_params.get("state")
        if state not in (None, "pending", "in_flight", "delivered", "failed"):
            return JSONResponse({"error": "state must be pending, in_flight, delivered or failed"}, status_code=400)
        return JSONResponse(self.state.deliveries.deliveries(state))

    async def drain(self, request: Request) -> Response:
        try:
            timeout = float(request.query_params.get("timeout", "10"))
        except ValueError:
            return JSONResponse({"error": "timeout must be a number of seconds"}, status_code=400)
        timeout = min(max(timeout, 0.0), 60.0)
        drained = await run_in_threadpool(self.state.deliveries.drain, timeout)
        return JSONResponse({"drained": drained, **self.state.deliveries.counts()},
                            status_code=200 if drained else 504)

    async def get_delivery_knobs(self, request: Request) -> Response:
        return JSONResponse(asdict(self.state.deliveries.knobs))

    async def put_delivery_knobs(self, request: Request) -> Response:
        try:
            self.state.deliveries.knobs.update(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(asdict(self.state.deliveries.knobs))

    async def list_subscriptions(self, request: Request) -> Response:
        return JSONResponse(self.state.subscriptions.admin_view())

    async def rotate_key(self, request: Request) -> Response:
        return JSONResponse({"kid": self.state.signer.rotate()})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.state.signer.jwks())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _fault_responder(state: SandboxState) -> Callable[[str, Knobs], ASGIApp]:
    """Knob faults the BwP way: throttling on /graphql is an HTTP 200 ``ThrottlingError``; the token
    endpoint (not GraphQL) gets a 429; injected server errors are 503 everywhere."""

    def on_fault(fault: str, knobs: Knobs) -> ASGIApp:
        async def respond(scope: Scope, receive: Receive, send: Send) -> None:
            retry = {"Retry-After": f"{knobs.retry_after_seconds:g}"}
            response: Response
            if fault != "throttle":
                state.count("fault.error")
                response = JSONResponse({"message": "Service Unavailable"}, status_code=503, headers=retry)
            elif scope["path"].endswith("/graphql"):
                state.count("graphql.throttled")
                response = errors_response(graphql_error("ThrottlingError", "TooManyRequests",
                                                         "Rate exceeded"), headers=retry)
            else:
                state.count("token.throttled")
                response = JSONResponse({"error": "slow_down"}, status_code=429, headers=retry)
            await response(scope, receive, send)

        return respond

    return on_fault


def create_app(*, client_id: str = "sandbox-client", client_secret: str = "sandbox-secret",
               target_id: str = "sandbox-target", token_ttl_seconds: float = 900, knobs: Knobs | None = None,
               accept_unknown_skus: bool = False, catalog: Iterable[dict[str, Any]] = (),
               api_access_key: str | None = None, clock: Callable[[], float] = time.monotonic,
               carrier_code: str = "ups", delivery_knobs: DeliveryKnobs | None = None) -> Starlette:
    """The sandbox app; ``app.state.sandbox`` is its ``SandboxState`` for in-process inspection.

    ``catalog`` seeds SKUs (``[{sku, title, price}]``, kept across ``/_sandbox/reset``);
    ``api_access_key`` makes ``x-api-access-key`` mandatory; ``clock`` drives token expiry;
    ``carrier_code`` is the carrier of shipped packages' trackers; ``delivery_knobs`` the initial
    event-delivery knobs (``app.state.sandbox.deliveries.knobs`` at run time).
    """
    state = SandboxState(client_id=client_id, client_secret=client_secret, target_id=target_id,
                         token_ttl_seconds=token_ttl_seconds, accept_unknown_skus=accept_unknown_skus,
                         catalog=[CatalogItem.from_json(item) for item in catalog],
                         api_access_key=api_access_key, clock=clock, carrier_code=carrier_code,
                         delivery_knobs=delivery_knobs)
    injector = FaultInjector(knobs)
    handlers = _Handlers(state)
    admin = ADMIN_PREFIX
    routes = [
        Route("/token", handlers.token, methods=["POST"]),
        Route("/graphql", handlers.graphql, methods=["POST"]),
        Route(f"{admin}/orders", handlers.list_orders, methods=["GET"]),
        Route(f"{admin}/orders/{{order_id}}", handlers.get_order, methods=["GET"]),
        Route(f"{admin}/reset", handlers.reset, methods=["POST"]),
        Route(f"{admin}/catalog", handlers.put_catalog, methods=["POST"]),
        Route(f"{admin}/catalog", handlers.get_catalog, methods=["GET"]),
        Route(f"{admin}/stats", handlers.stats, methods=["GET"]),
        Route(f"{admin}/tokens/revoke", handlers.revoke_tokens, methods=["POST"]),
        Route(f"{admin}/schema", handlers.schema, methods=["GET"]),
        Route("/jwks.json", handlers.jwks, methods=["GET"]),
        Route(f"{admin}/events", handlers.emit_event, methods=["POST"]),
        Route(f"{admin}/events", handlers.list_events, methods=["GET"]),
        Route(f"{admin}/deliveries", handlers.list_deliveries, methods=["GET"]),
        Route(f"{admin}/deliveries/drain", handlers.drain, methods=["POST"]),
        Route(f"{admin}/delivery/knobs", handlers.get_delivery_knobs, methods=["GET"]),
        Route(f"{admin}/delivery/knobs", handlers.put_delivery_knobs, methods=["PUT"]),
        Route(f"{admin}/subscriptions", handlers.list_subscriptions, methods=["GET"]),
        Route(f"{admin}/signing/rotate", handlers.rotate_key, methods=["POST"]),
        *knob_routes(injector),
    ]
    app = Starlette(routes=routes, middleware=[
        Middleware(FaultMiddleware, injector=injector, on_fault=_fault_responder(state))])
    app.state.sandbox = state
    app.state.knobs = injector.knobs
    return app


__all__ = ["API_VERSION", "create_app", "schema", "schema_sdl"]
