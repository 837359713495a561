"""``InventorySource`` over SP-API ``getInventorySummaries`` (FBA Inventory v1, reference §A1).

A full scan pages through every summary of one marketplace with ``nextToken``; a targeted call
asks for up to 50 seller SKUs. Both go through one request path that

- waits for a token of the (seller, operation) bucket before every call, so a scan runs at the
  usage plan's rate and meets no 429 in normal operation (``rate_limit.py``);
- follows ``x-amzn-RateLimit-Limit`` and, on 429/503, drains the bucket and backs off with jitter,
  honouring ``Retry-After``; back-offs are capped well below the token's 30 s life;
- renews the LWA token once when a 403 says it expired early.

A ``nextToken`` that expired (the consumer was slow, or Amazon's 30 s ran out, reference §A1.7)
restarts the scan from the first page. The SKUs already yielded are remembered (one set of
strings, about 9 MB per 100k SKUs) and skipped, so a restart neither repeats nor loses an item,
whatever order Amazon returns them in.

Summary fields are all optional in the model and have been seen malformed, so a quantity is passed
through as received (``None`` when missing) and judged by ``domain/inventory_rules.valid_quantity``,
which reports it rather than failing the page.
"""

from __future__ import annotations

import platform
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import structlog

from primebridge import __version__
from primebridge.connectors.http import retry_after_seconds
from primebridge.connectors.spapi.errors import (
    NextTokenExpired,
    ServerError,
    SpApiError,
    Throttled,
    UnexpectedResponse,
    error_for,
    is_expired_access_token,
    parse_errors,
)
from primebridge.connectors.spapi.lwa import LwaTokens
from primebridge.connectors.spapi.rate_limit import RateLimiter
from primebridge.domain.inventory import InventorySummary
from primebridge.runtime.backoff import retry_delay

log = structlog.get_logger()

OPERATION = "getInventorySummaries"
PATH = "/fba/inventory/v1/summaries"
MAX_SKUS_PER_CALL = 50  # model: sellerSkus maxItems 50
RATE_LIMIT_HEADER = "x-amzn-ratelimit-limit"
USER_AGENT = (f"primebridge/{__version__} (Language=Python/{platform.python_version()}; "
              f"Platform={platform.system()})")


class SpApiInventory:
    """Amazon's FBA inventory of one seller in one marketplace. Thread-safe; build it once per process
    so every worker shares its rate limiter."""

    def __init__(self, http: httpx.Client, tokens: LwaTokens, limiter: RateLimiter, *, seller_id: str,
                 marketplace_id: str, sku_batch_size: int = MAX_SKUS_PER_CALL, max_retries: int = 5,
                 backoff_base: float = 0.5, backoff_max: float = 8.0, max_scan_restarts: int = 3,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        if not 1 <= sku_batch_size <= MAX_SKUS_PER_CALL:
            raise ValueError(f"sku_batch_size must be 1..{MAX_SKUS_PER_CALL}, not {sku_batch_size}")
        self._http = http
        self._tokens = tokens
        self._limiter = limiter
        self._seller = seller_id
        self._marketplace = marketplace_id
        self._batch = sku_batch_size
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_restarts = max_scan_restarts
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._base_params = {"details": "true", "granularityType": "Marketplace",
                             "granularityId": marketplace_id, "marketplaceIds": marketplace_id}

    def close(self) -> None:
        self._http.close()

    # -- InventorySource ----------------------------------------------------------------------------

    def scan(self) -> Iterator[list[InventorySummary]]:
        yielded: set[str] = set()
        restarts = 0
        while True:
            next_token: str | None = None
            try:
                while True:
                    payload = self._call({"nextToken": next_token} if next_token else {})
                    page = [s for s in _summaries(payload) if s.seller_sku not in yielded]
                    yielded.update(s.seller_sku for s in page)
                    if page:
                        yield page
                    next_token = _next_token(payload)
                    if not next_token:
                        return
            except NextTokenExpired:
                restarts += 1
                if restarts > self._max_restarts:
                    raise
                log.warning("spapi.inventory.scan_restart", restarts=restarts, already_yielded=len(yielded))

    def summaries(self, seller_skus: list[str]) -> list[InventorySummary]:
        """Any number of SKUs, asked ``sku_batch_size`` (≤ 50) at a time; SKUs Amazon does not know are
        simply absent from the result."""
        wanted = list(dict.fromkeys(seller_skus))
        found: dict[str, InventorySummary] = {}
        for start in range(0, len(wanted), self._batch):
            chunk = wanted[start:start + self._batch]
            params = {"sellerSkus": ",".join(chunk)}
            while True:
                payload = self._call(params)
                for summary in _summaries(payload):
                    found.setdefault(summary.seller_sku, summary)
                token = _next_token(payload)
                if not token:
                    break
                params = {"sellerSkus": params["sellerSkus"], "nextToken": token}
        return list(found.values())

    # -- transport ----------------------------------------------------------------------------------

    def _call(self, extra: dict[str, str]) -> dict[str, Any]:
        """One logical call: rate-limited, retried on 429/5xx/network errors, the JSON body on 200."""
        params = {**self._base_params, **extra}
        sent_token = "nextToken" in extra
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._tokens.token()
            ticket = self._limiter.acquire(self._seller, OPERATION)
            try:
                response = self._http.get(PATH, params=params, headers={
                    "x-amz-access-token": token, "user-agent": USER_AGENT, "accept": "application/json",
                    "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")})
            except httpx.HTTPError as exc:
                self._limiter.settle(self._seller, OPERATION, ticket)
                error: SpApiError = ServerError(f"SP-API {OPERATION}: {type(exc).__name__}: {exc}")
                error._attach(OPERATION, None, ())
            else:
                self._limiter.settle(self._seller, OPERATION, ticket)
                self._limiter.observe(self._seller, OPERATION, response.headers.get(RATE_LIMIT_HEADER))
                payload = _json(response)
                if response.status_code == 200:
                    if not isinstance(payload, dict) or not isinstance(payload.get("payload"), dict):
                        raise _unexpected("HTTP 200 without a JSON object holding 'payload'")
                    if errors := parse_errors(payload):
                        # A 200 that also lists errors: the page is still valid; say so in the log.
                        log.warning("spapi.inventory.errors_on_200", errors=[e.describe() for e in errors])
                    return payload
                if response.status_code == 403 and not renewed and is_expired_access_token(parse_errors(payload)):
                    renewed = True
                    self._tokens.invalidate(token)
                    attempt -= 1
                    continue
                error = error_for(OPERATION, response.status_code, payload,
                                  retry_after=retry_after_seconds(response), next_token_sent=sent_token)
            if not isinstance(error, Throttled | ServerError) or attempt > self._max_retries:
                raise error
            if isinstance(error, Throttled):
                self._limiter.throttled(self._seller, OPERATION)
            delay = retry_delay(attempt, base=self._backoff_base, cap=self._backoff_max,
                                retry_after=error.retry_after, rng=self._rng)
            log.info("spapi.inventory.retry", status=error.status, code=error.code, attempt=attempt,
                     delay=round(delay, 3))
            self._sleep(delay)


def _summaries(payload: dict[str, Any]) -> list[InventorySummary]:
    raw = payload["payload"].get("inventorySummaries")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _unexpected(f"payload.inventorySummaries is a {type(raw).__name__}, not a list")
    out = []
    for entry in raw:
        sku = entry.get("sellerSku") if isinstance(entry, dict) else None
        if not isinstance(sku, str) or not sku:
            log.warning("spapi.inventory.summary_without_sku", entry=str(entry)[:200])
            continue
        details = entry.get("inventoryDetails")
        quantity = details.get("fulfillableQuantity") if isinstance(details, dict) else None
        out.append(InventorySummary(
            seller_sku=sku,
            # Passed through as received (see the module docstring); judged by valid_quantity.
            fulfillable_quantity=cast(int, quantity),
            fn_sku=_text(entry.get("fnSku")),
            asin=_text(entry.get("asin")),
            last_updated=_moment(entry.get("lastUpdatedTime")),
        ))
    return out


def _next_token(payload: dict[str, Any]) -> str | None:
    pagination = payload.get("pagination")  # a sibling of payload, not inside it (reference §A1.3)
    token = pagination.get("nextToken") if isinstance(pagination, dict) else None
    return token if isinstance(token, str) and token else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _moment(value: Any) -> datetime | None:
    """ISO-8601 or nothing: ``""`` has been seen in the wild (reference §A1.3)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _unexpected(what: str) -> UnexpectedResponse:
    error = UnexpectedResponse(f"SP-API {OPERATION}: {what}")
    error._attach(OPERATION, 200, ())
    return error
