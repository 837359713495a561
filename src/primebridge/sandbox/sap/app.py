"""The SAP S/4HANA sandbox: API_SALES_ORDER_SRV over OData V2 JSON, as SAP Gateway behaves.

What a client must get right is enforced, not just accepted: Basic auth (or a bearer token from the
sandbox's OAuth endpoint), the CSRF handshake bound to a session cookie, ETag preconditions on the
order header, SAP's JSON error shape. ``$metadata`` is served from the EDMX contract file when it
exists on the machine (it is reference data and is never copied into the repository).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from primebridge.sandbox.knobs import FaultInjector, FaultMiddleware, Knobs, knob_routes
from primebridge.sandbox.sap import inventory_service, service
from primebridge.sandbox.sap.admin import admin_routes
from primebridge.sandbox.sap.contracts import edmx
from primebridge.sandbox.sap.deliveries import (
    DEFAULT_DELIVERY_EDMX,
    DELIVERY_SERVICE_PATH,
    DeliveryStore,
    delivery_admin_routes,
)
from primebridge.sandbox.sap.deliveries import dispatch as delivery_dispatch
from primebridge.sandbox.sap.errors import ODataError, error_body, error_response
from primebridge.sandbox.sap.state import SapStore, Settings

DEFAULT_SERVICE_PATH = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
DEFAULT_EDMX = edmx("API_SALES_ORDER_SRV")
TOKEN_PATH = "/sap/bc/sec/oauth2/token"
SESSION_COOKIE = "SAP_SESSIONID_SBX_100"
MODIFYING = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})
ODATA_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "MERGE", "DELETE"]


def _sap_fault(fault: str, knobs: Knobs) -> Response:
    if fault == "throttle":
        return JSONResponse(error_body("SY/530", "Too many requests; try again later"), status_code=429,
                            headers={"Retry-After": f"{knobs.retry_after_seconds:g}"})
    return JSONResponse(error_body("/IWFND/CM_BEC/076", "Service unavailable (sandbox fault knob)"),
                        status_code=503)


class _Gate:
    """Authentication and the CSRF handshake, in front of every OData request."""

    def __init__(self, store: SapStore, username: str, password: str, oauth_clients: dict[str, str],
                 token_ttl: float) -> None:
        self.store = store
        self.username = username
        self.password = password
        self.oauth_clients = oauth_clients
        self.token_ttl = token_ttl

    def authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return secrets.compare_digest(user.upper(), self.username.upper()) and secrets.compare_digest(
                password, self.password)
        if scheme.lower() == "bearer":
            expiry = self.store.oauth_tokens.get(value.strip())
            return expiry is not None and expiry > time.monotonic()
        return False

    @staticmethod
    def unauthorized() -> Response:
        realm = 'Basic realm="SAP NetWeaver Application Server [SBX/100]"'
        return PlainTextResponse("Logon failed: user, password or token is wrong", status_code=401,
                                 headers={"WWW-Authenticate": realm})

    def csrf_fetch(self, request: Request) -> tuple[str, str | None]:
        """The session's token (new session when the cookie is unknown) and a new cookie, if any."""
        sid = request.cookies.get(SESSION_COOKIE)
        new_cookie = None
        if not sid or sid not in self.store.sessions:
            sid = new_cookie = secrets.token_urlsafe(24)
            self.store.sessions[sid] = None
        token = self.store.sessions[sid] or secrets.token_urlsafe(18)
        self.store.sessions[sid] = token
        self.store.stats["csrf_fetches"] += 1
        return token, new_cookie

    def csrf_valid(self, request: Request) -> bool:
        sid = request.cookies.get(SESSION_COOKIE)
        sent = request.headers.get("x-csrf-token", "")
        expected = self.store.sessions.get(sid) if sid else None
        return bool(expected) and secrets.compare_digest(sent, expected or "")

    def issue_token(self, request: Request, raw: bytes) -> Response:
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = secret = None
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "only client_credentials is supported"},
                                status_code=400)
        known = self.oauth_clients.get(client_id or "")
        if known is None or not secrets.compare_digest(known, secret or ""):
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "client authentication failed"}, status_code=401)
        token = secrets.token_urlsafe(32)
        with self.store.lock:
            self.store.oauth_tokens[token] = time.monotonic() + self.token_ttl
            self.store.stats["tokens_issued"] += 1
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl),
                             "scope": "API_SALES_ORDER_SRV_0001"})


def create_app(*, username: str = "sandbox", password: str = "sandbox", knobs: Knobs | None = None,
               service_path: str = DEFAULT_SERVICE_PATH, metadata_path: Path | None = DEFAULT_EDMX,
               oauth_clients: dict[str, str] | None = None, token_ttl_seconds: float = 3600.0,
               server_page_size: int | None = None, subentity_etags: bool = False,
               delivery_service_path: str = DELIVERY_SERVICE_PATH,
               delivery_metadata_path: Path | None = DEFAULT_DELIVERY_EDMX) -> Starlette:
    """``server_page_size`` caps every collection page (``__next`` beyond it); ``subentity_etags``
    gives items/texts/partners ETags too, for the [U] case that SAP enforces If-Match on them.
    The outbound delivery service (``sandbox/sap/deliveries.py``) is served at ``delivery_service_path``
    behind the same gate, on the same sales orders."""
    service_path = "/" + service_path.strip("/")
    delivery_service_path = "/" + delivery_service_path.strip("/")
    store = SapStore(username=username, settings=Settings(server_page_size=server_page_size,
                                                          subentity_etags=subentity_etags))
    deliveries = DeliveryStore(store)
    gate = _Gate(store, username, password, dict(oauth_clients or {}), token_ttl_seconds)
    injector = FaultInjector(knobs)

    def sales_orders(request: Request, method: str, rest: str, raw: bytes) -> Response:
        return _dispatch(request, store, service_path, metadata_path, method, rest, raw)

    def outbound_deliveries(request: Request, method: str, rest: str, raw: bytes) -> Response:
        return delivery_dispatch(request, deliveries, delivery_service_path, delivery_metadata_path, method, rest,
                                 raw)

    async def odata(request: Request) -> Response:
        dispatch = outbound_deliveries if request.url.path.startswith(delivery_service_path) else sales_orders
        raw = await request.body()
        method = request.method.upper()
        if method == "POST" and request.headers.get("x-http-method"):
            method = request.headers["x-http-method"].upper()  # tunnelled MERGE/PATCH/PUT/DELETE
        rest = request.path_params.get("rest", "")
        with store.lock:
            store.stats["requests"] += 1
            if not gate.authenticated(request):
                store.stats["auth_failures"] += 1
                return gate.unauthorized()
            fetch = request.headers.get("x-csrf-token", "").lower() == "fetch" and method in ("GET", "HEAD")
            token, cookie = gate.csrf_fetch(request) if fetch else (None, None)
            if method in MODIFYING and not gate.csrf_valid(request):
                store.stats["csrf_rejections"] += 1
                return PlainTextResponse("CSRF token validation failed", status_code=403,
                                         headers={"x-csrf-token": "Required"})
            try:
                if inventory_service.handles(request.url.path):
                    response = inventory_service.dispatch(request, store.inventory, store.stats, method, rest, raw,
                                                          user=store.username,
                                                          page_size=store.settings.server_page_size)
                else:
                    response = dispatch(request, method, rest, raw)
            except ODataError as exc:
                store.stats[f"http_{exc.status}"] += 1
                response = error_response(exc)
        if token is not None:
            response.headers["x-csrf-token"] = token
        if cookie is not None:
            response.set_cookie(SESSION_COOKIE, cookie, httponly=True, path="/")
        return response

    async def token_endpoint(request: Request) -> Response:
        return gate.issue_token(request, await request.body())

    routes = [
        Route(service_path, odata, methods=ODATA_METHODS),
        Route(service_path + "/{rest:path}", odata, methods=ODATA_METHODS),
        Route(delivery_service_path, odata, methods=ODATA_METHODS),
        Route(delivery_service_path + "/{rest:path}", odata, methods=ODATA_METHODS),
        Route(TOKEN_PATH, token_endpoint, methods=["POST"]),
        *inventory_service.odata_routes(odata),
        *admin_routes(store),
        *delivery_admin_routes(deliveries),
        *inventory_service.admin_routes(store.inventory, store.lock),
        *knob_routes(injector),
    ]
    faults = Middleware(FaultMiddleware, injector=injector, on_fault=_sap_fault)
    app = Starlette(routes=routes, middleware=[faults])
    app.state.sandbox = store
    app.state.deliveries = deliveries
    app.state.injector = injector
    return app


def _dispatch(request: Request, store: SapStore, service_path: str, metadata_path: Path | None, method: str,
              rest: str, raw: bytes) -> Response:
    path = rest.strip("/")
    if path == "":
        if method not in ("GET", "HEAD"):
            raise ODataError(405, f"{method} is not allowed on the service root")
        return service.service_document()
    if path == "$metadata":
        return service.metadata(metadata_path)
    if path == "$batch":
        raise ODataError(501, "$batch is not supported by the SAP sandbox")
    target = service.resolve(store, path)
    store.stats[f"{method} {target.etype.set_name}"] += 1
    if method in ("GET", "HEAD"):
        return service.get(request, store, service_path, target)
    if method == "POST":
        return service.post(request, store, service_path, target, raw)
    if method in ("PATCH", "MERGE", "PUT", "DELETE"):
        return service.modify(request, store, target, method, raw)
    raise ODataError(405, f"Method {method} is not allowed")


def sandbox_state(app: Any) -> SapStore:
    """Typed access to ``app.state.sandbox`` for tests."""
    store: SapStore = app.state.sandbox
    return store
