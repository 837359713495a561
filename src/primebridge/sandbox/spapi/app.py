"""The SP-API sandbox as a Starlette app: LWA, FBA inventory summaries and the ``/_sandbox`` admin API.

Service:
``POST /auth/o2/token`` (``grant_type=refresh_token``, client id/secret in the form);
``GET /fba/inventory/v1/summaries`` (``x-amz-access-token``; ``details``, ``granularityType=Marketplace``,
``granularityId``, ``marketplaceIds``, ``sellerSkus`` ≤ 50, ``sellerSku``, ``nextToken``). Answers
as documented (reference §A1, §A2): ``pagination`` beside ``payload``, ``errors[]`` bodies,
``x-amzn-RateLimit-Limit`` on every answer, an enforced usage-plan bucket (429 ``QuotaExceeded``),
page tokens that expire (400 ``InvalidInput`` "Next token is invalid or expired").

Admin (never authenticated, faulted or throttled):
``GET /_sandbox/stats``, ``POST /_sandbox/reset``, ``GET|PUT /_sandbox/catalogue`` (``size``, ``seed``,
``prefix``, ``page_size``), ``POST /_sandbox/inventory`` (``[{sellerSku, fulfillableQuantity,
productName?, asin?, fnSku?}]``), ``GET|DELETE /_sandbox/inventory/{sku}``, ``PUT /_sandbox/rate-limit``
(``rate``, ``burst``), ``PUT /_sandbox/next-token`` (``ttl_seconds``), ``POST /_sandbox/next-token/expire``,
``PUT /_sandbox/lwa`` (``token_ttl_seconds``), ``POST /_sandbox/lwa/expire``, ``GET|PUT /_sandbox/knobs``.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from primebridge.sandbox.knobs import ADMIN_PREFIX, FaultInjector, FaultMiddleware, Knobs, knob_routes
from primebridge.sandbox.spapi.catalogue import Catalogue, Entry
from primebridge.sandbox.spapi.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_MARKETPLACE,
    DEFAULT_REFRESH_TOKEN,
    DEFAULT_SELLER,
    PageCursor,
    SandboxState,
)

OPERATION = "getInventorySummaries"
MAX_SKUS = 50
QUOTA_EXCEEDED = ("QuotaExceeded", "You exceeded your quota for the requested resource.")


def sp_errors(status: int, code: str, message: str, details: str = "", *,
              headers: dict[str, str] | None = None) -> JSONResponse:
    """SP-API's error envelope (reference §A1.5) with a request id, as every answer has."""
    return JSONResponse({"errors": [{"code": code, "message": message, "details": details}]}, status_code=status,
                        headers={"x-amzn-RequestId": secrets.token_hex(8), **(headers or {})})


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _summary(record: dict[str, Any], marketplace: str, details: bool) -> dict[str, Any]:
    quantity = record["quantity"]
    whole = quantity if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0 else 0
    summary: dict[str, Any] = {
        "asin": record["asin"], "fnSku": record["fnSku"], "sellerSku": record["sellerSku"],
        "condition": "NewItem", "lastUpdatedTime": record["lastUpdatedTime"],
        "productName": record["productName"], "totalQuantity": whole, "stores": [],
    }
    if details:
        summary["inventoryDetails"] = {
            "fulfillableQuantity": quantity,
            "inboundWorkingQuantity": 0, "inboundShippedQuantity": 0, "inboundReceivingQuantity": 0,
            "reservedQuantity": {"totalReservedQuantity": 0, "pendingCustomerOrderQuantity": 0,
                                 "pendingTransshipmentQuantity": 0, "fcProcessingQuantity": 0},
            "researchingQuantity": {"totalResearchingQuantity": 0, "researchingQuantityBreakdown": []},
            "unfulfillableQuantity": {"totalUnfulfillableQuantity": 0, "customerDamagedQuantity": 0,
                                      "warehouseDamagedQuantity": 0, "distributorDamagedQuantity": 0,
                                      "carrierDamagedQuantity": 0, "defectiveQuantity": 0, "expiredQuantity": 0},
        }
    return summary


class _Handlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _limit_header(self) -> dict[str, str]:
        return {"x-amzn-RateLimit-Limit": f"{self.state.rate:g}"}

    async def token(self, request: Request) -> Response:
        form = await request.form()
        state = self.state
        if form.get("grant_type") != "refresh_token":
            state.count("lwa.refused")
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "only grant_type=refresh_token is supported"}, status_code=400)
        if not state.client_matches(_text(form.get("client_id")), _text(form.get("client_secret"))):
            state.count("lwa.refused")
            return JSONResponse({"error": "invalid_client", "error_description": "Client authentication failed"},
                                status_code=401)
        refresh = _text(form.get("refresh_token")) or ""
        token = state.mint(refresh)
        if token is None:
            state.count("lwa.refused")
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "The request has an invalid grant parameter : refresh_token"},
                                status_code=400)
        ttl = state.token_ttl
        return JSONResponse({"access_token": token, "refresh_token": refresh, "token_type": "bearer",
                             "expires_in": int(ttl) if float(ttl).is_integer() else ttl})

    async def summaries(self, request: Request) -> Response:
        state = self.state
        seller = state.seller_for(request.headers.get("x-amz-access-token"))
        if seller is None:
            state.count("unauthorized")
            return sp_errors(403, "Unauthorized", "Access to requested resource is denied.",
                             "The access token you provided has expired." if request.headers.get(
                                 "x-amz-access-token") else "The access token is missing.")
        if not state.admit(seller, OPERATION):
            return sp_errors(429, *QUOTA_EXCEEDED, headers=self._limit_header())
        try:
            body = self._page(request)
        except BadRequest as exc:
            return sp_errors(400, "InvalidInput", exc.message, headers=self._limit_header())
        return JSONResponse(body, headers={**self._limit_header(), "x-amzn-RequestId": secrets.token_hex(8)})

    def _page(self, request: Request) -> dict[str, Any]:
        state = self.state
        params = request.query_params
        if params.get("granularityType") != "Marketplace":
            raise BadRequest("granularityType must be Marketplace")
        marketplaces = [m for value in params.getlist("marketplaceIds") for m in value.split(",") if m]
        if len(marketplaces) != 1:
            raise BadRequest("marketplaceIds must hold exactly one marketplace id")
        marketplace = marketplaces[0]
        if params.get("granularityId") != marketplace or marketplace != state.marketplace_id:
            raise BadRequest(f"Invalid marketplace id {marketplace}; granularityId must be the same id")
        details = params.get("details", "false").lower() == "true"
        skus = [s for value in params.getlist("sellerSkus") for s in value.split(",") if s]
        if not skus and params.get("sellerSku"):
            skus = [params["sellerSku"]]
        if len(skus) > MAX_SKUS:
            raise BadRequest(f"sellerSkus may hold at most {MAX_SKUS} SKUs, not {len(skus)}")
        query = ",".join(sorted(set(skus)))
        after: str | None = None
        if params.get("nextToken"):
            cursor = state.read_next_token(params["nextToken"])
            if cursor is None or cursor.query != query:
                state.count("next_token.expired")
                raise BadRequest("Next token is invalid or expired")
            after = cursor.after
        with state.lock:
            catalogue = state.catalogue
            if skus:
                stream = iter([s for s in sorted(set(skus)) if (after is None or s > after) and catalogue.exists(s)])
            else:
                stream = catalogue.after(after)
            chosen = list(itertools.islice(stream, state.page_size + 1))
            more = len(chosen) > state.page_size
            chosen = chosen[:state.page_size]
            records = [catalogue.record(sku) for sku in chosen]
        state.count("pages")
        body: dict[str, Any] = {"payload": {
            "granularity": {"granularityType": "Marketplace", "granularityId": marketplace},
            "inventorySummaries": [_summary(r, marketplace, details) for r in records if r is not None]}}
        if more:
            body["pagination"] = {"nextToken": state.issue_next_token(PageCursor(after=chosen[-1], query=query))}
        return body

    # -- admin ------------------------------------------------------------------------------------

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})

    async def get_catalogue(self, request: Request) -> Response:
        with self.state.lock:
            c = self.state.catalogue
            return JSONResponse({"size": c.size, "seed": c.seed, "prefix": c.prefix, "count": c.count(),
                                 "page_size": self.state.page_size, "extras": len(c.extras),
                                 "changed": len(c.entries), "deleted": len(c.deleted)})

    async def put_catalogue(self, request: Request) -> Response:
        raw = await _object(request)
        if isinstance(raw, Response):
            return raw
        state = self.state
        try:
            unknown = set(raw) - {"size", "seed", "prefix", "page_size"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            with state.lock:
                old = state.catalogue
                page_size = int(raw.get("page_size", state.page_size))
                if page_size < 1:
                    raise ValueError("page_size must be >= 1")
                if {"size", "seed", "prefix"} & set(raw):
                    state.catalogue = Catalogue(size=int(raw.get("size", old.size)),
                                                seed=int(raw.get("seed", old.seed)),
                                                prefix=str(raw.get("prefix", old.prefix)))
                state.page_size = page_size
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await self.get_catalogue(request)

    async def put_inventory(self, request: Request) -> Response:
        try:
            raw = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        items = raw if isinstance(raw, list) else [raw]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entries = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("sellerSku"), str) or not item["sellerSku"]:
                return JSONResponse({"error": f"{item!r} needs a non-empty sellerSku"}, status_code=400)
            unknown = set(item) - {"sellerSku", "fulfillableQuantity", "productName", "asin", "fnSku",
                                   "lastUpdatedTime"}
            if unknown:
                return JSONResponse({"error": f"{item['sellerSku']}: unknown keys {sorted(unknown)}"},
                                    status_code=400)
            entries.append((item["sellerSku"], Entry(
                quantity=item.get("fulfillableQuantity", 0), updated=str(item.get("lastUpdatedTime") or now),
                product_name=item.get("productName"), asin=item.get("asin"), fn_sku=item.get("fnSku"))))
        with self.state.lock:
            for sku, entry in entries:
                self.state.catalogue.put(sku, entry)
        return JSONResponse({"updated": len(entries)})

    async def get_inventory(self, request: Request) -> Response:
        sku = request.path_params["sku"]
        with self.state.lock:
            record = self.state.catalogue.record(sku)
        if record is None:
            return JSONResponse({"error": f"no SKU {sku}"}, status_code=404)
        return JSONResponse(_summary(record, self.state.marketplace_id, True))

    async def delete_inventory(self, request: Request) -> Response:
        sku = request.path_params["sku"]
        with self.state.lock:
            deleted = self.state.catalogue.delete(sku)
        return JSONResponse({"deleted": deleted}, status_code=200 if deleted else 404)

    async def put_rate_limit(self, request: Request) -> Response:
        raw = await _object(request)
        if isinstance(raw, Response):
            return raw
        try:
            self.state.set_rate_limit(float(raw.get("rate", self.state.rate)), int(raw.get("burst", self.state.burst)))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"rate": self.state.rate, "burst": self.state.burst})

    async def put_next_token(self, request: Request) -> Response:
        raw = await _object(request)
        if isinstance(raw, Response):
            return raw
        try:
            ttl = float(raw["ttl_seconds"])
        except (KeyError, TypeError, ValueError):
            return JSONResponse({"error": "ttl_seconds (a number) is required"}, status_code=400)
        self.state.next_token_ttl = ttl
        return JSONResponse({"ttl_seconds": ttl})

    async def expire_next_tokens(self, request: Request) -> Response:
        self.state.expire_next_tokens()
        return JSONResponse({"expired": True})

    async def put_lwa(self, request: Request) -> Response:
        raw = await _object(request)
        if isinstance(raw, Response):
            return raw
        try:
            self.state.token_ttl = float(raw["token_ttl_seconds"])
        except (KeyError, TypeError, ValueError):
            return JSONResponse({"error": "token_ttl_seconds (a number) is required"}, status_code=400)
        return JSONResponse({"token_ttl_seconds": self.state.token_ttl})

    async def expire_lwa(self, request: Request) -> Response:
        return JSONResponse({"expired": self.state.expire_access_tokens()})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def _object(request: Request) -> dict[str, Any] | Response:
    try:
        raw = await request.json()
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
    return raw


def _fault_responder(state: SandboxState) -> Callable[[str, Knobs], Response]:
    """Knob faults in SP-API's shapes: 429 ``QuotaExceeded`` or 503 ``ServiceUnavailable``."""

    def on_fault(fault: str, knobs: Knobs) -> Response:
        retry = {"Retry-After": f"{knobs.retry_after_seconds:g}"}
        if fault == "throttle":
            state.count("throttled")
            return sp_errors(429, *QUOTA_EXCEEDED, headers={**retry, "x-amzn-RateLimit-Limit": f"{state.rate:g}"})
        state.count("faults")
        return sp_errors(503, "ServiceUnavailable", "Service temporarily unavailable.", headers=retry)

    return on_fault


def create_app(*, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
               sellers: dict[str, str] | None = None, marketplace_id: str = DEFAULT_MARKETPLACE,
               catalogue_size: int = 1000, seed: int = 0, prefix: str = "SKU-", page_size: int = 50,
               rate: float = 2.0, burst: int = 2, next_token_ttl_seconds: float = 30.0,
               token_ttl_seconds: float = 3600.0, knobs: Knobs | None = None,
               clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The sandbox app; ``app.state.sandbox`` is its ``SandboxState`` for in-process inspection.

    ``sellers`` maps refresh tokens to seller ids (default: one sandbox seller); ``clock`` drives the
    buckets and both token lifetimes.
    """
    state = SandboxState(
        client_id=client_id, client_secret=client_secret,
        sellers=sellers or {DEFAULT_REFRESH_TOKEN: DEFAULT_SELLER}, marketplace_id=marketplace_id,
        catalogue=Catalogue(size=catalogue_size, seed=seed, prefix=prefix), page_size=page_size, rate=rate,
        burst=burst, next_token_ttl=next_token_ttl_seconds, token_ttl=token_ttl_seconds, clock=clock)
    injector = FaultInjector(knobs)
    h = _Handlers(state)
    admin = ADMIN_PREFIX
    routes: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/auth/o2/token", h.token, ["POST"]),
        ("/fba/inventory/v1/summaries", h.summaries, ["GET"]),
        (f"{admin}/stats", h.stats, ["GET"]),
        (f"{admin}/reset", h.reset, ["POST"]),
        (f"{admin}/catalogue", h.get_catalogue, ["GET"]),
        (f"{admin}/catalogue", h.put_catalogue, ["PUT"]),
        (f"{admin}/inventory", h.put_inventory, ["POST"]),
        (f"{admin}/inventory/{{sku:path}}", h.get_inventory, ["GET"]),
        (f"{admin}/inventory/{{sku:path}}", h.delete_inventory, ["DELETE"]),
        (f"{admin}/rate-limit", h.put_rate_limit, ["PUT"]),
        (f"{admin}/next-token", h.put_next_token, ["PUT"]),
        (f"{admin}/next-token/expire", h.expire_next_tokens, ["POST"]),
        (f"{admin}/lwa", h.put_lwa, ["PUT"]),
        (f"{admin}/lwa/expire", h.expire_lwa, ["POST"]),
    ]
    app = Starlette(routes=[Route(path, fn, methods=methods) for path, fn, methods in routes] + knob_routes(injector),
                    middleware=[Middleware(FaultMiddleware, injector=injector, on_fault=_fault_responder(state))])
    app.state.sandbox = state
    app.state.knobs = injector.knobs
    return app
