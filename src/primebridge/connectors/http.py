"""The one way every connector builds its ``httpx.Client``: timeouts, audit and redaction.

httpx event hooks cannot see the response time nor a failed connection, so the audit is a thin
transport wrapper instead: it sees every request, its outcome and its duration, and it is also
the seam tests use to swap in an in-process sandbox (``httpx.WSGITransport``/``ASGITransport``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

import httpx
import structlog

from primebridge.runtime import context

log = structlog.get_logger(__name__)

SECRET_HEADERS = frozenset({
    "authorization", "cookie", "set-cookie", "x-csrf-token", "x-api-access-key", "proxy-authorization",
    "x-amz-access-token",  # SP-API: the LWA access token travels in this header
})
SECRET_KEY = re.compile(r"(secret|password|token|assertion|signature|lwaaccesstoken|credential)", re.I)
MAX_BODY = 16_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    system: str
    operation: str
    status: str
    duration_ms: float
    request: str
    response: str
    correlation: context.Correlation
    http_status: int | None = None


class AuditSink(Protocol):
    def record(self, entry: AuditEntry) -> None: ...


class NullAudit:
    def record(self, entry: AuditEntry) -> None:
        return None


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    # Cached: a page of 50 inventory summaries repeats the same 30 key names 50 times, and the
    # regex per key was most of the audit's cost per call.
    return SECRET_KEY.search(key) is not None


def redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if _secret_key(str(k)) else redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    return value


JsonRedactor = Callable[[Any], Any]


def redact_body(body: bytes, content_type: str | None, extra: JsonRedactor | None = None) -> str:
    if not body:
        return ""
    # Parsed whole before truncation: a cut JSON document would not parse and would escape redaction.
    text = body.decode("utf-8", errors="replace")
    ctype = (content_type or "").lower()
    if "json" in ctype or text.lstrip().startswith(("{", "[")):
        with contextlib.suppress(ValueError):
            value = redact_json(json.loads(text))
            text = json.dumps(extra(value) if extra else value, separators=(",", ":"))
    elif "x-www-form-urlencoded" in ctype:
        pairs = [(k, "***" if SECRET_KEY.search(k) else v)
                 for k, v in parse_qsl(text, keep_blank_values=True)]
        text = urlencode(pairs)
    return text[:MAX_BODY]


def redact_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def redact_url(url: httpx.URL) -> str:
    params = [(k, "***" if SECRET_KEY.search(k) else v) for k, v in url.params.multi_items()]
    url = url.copy_with(query=urlencode(params).encode() if params else None)
    if url.password:   # credentials written into a configured base URL (https://user:pass@host)
        url = url.copy_with(username=url.username, password="***")
    return str(url)


OperationNamer = Callable[[httpx.Request], str]


def default_operation(request: httpx.Request) -> str:
    return f"{request.method} {request.url.path}"


class AuditedTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, system: str, sink: AuditSink,
                 operation: OperationNamer = default_operation, redact: JsonRedactor | None = None) -> None:
        self._redact = redact
        self._inner = inner
        self._system = system
        self._sink = sink
        self._operation = operation

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        req_text = json.dumps({
            "method": request.method,
            "url": redact_url(request.url),
            "headers": redact_headers(request.headers),
            "body": redact_body(request.content, request.headers.get("content-type"), self._redact),
        })
        try:
            response = self._inner.handle_request(request)
        except httpx.HTTPError as exc:
            self._emit(request, "error", started, req_text, f"{type(exc).__name__}: {exc}", None)
            raise
        response.read()
        status = "ok" if response.status_code < 400 else "error"
        resp_text = json.dumps({
            "status": response.status_code,
            "headers": redact_headers(response.headers),
            "body": redact_body(response.content, response.headers.get("content-type"), self._redact),
        })
        self._emit(request, status, started, req_text, resp_text, response.status_code)
        return response

    def _emit(self, request: httpx.Request, status: str, started: float, req: str, resp: str,
              http_status: int | None) -> None:
        # Auditing must never fail the call it records; a lost entry is logged, not silent.
        try:
            self._sink.record(AuditEntry(
                system=self._system, operation=self._operation(request), status=status,
                duration_ms=(time.perf_counter() - started) * 1000, request=req, response=resp,
                correlation=context.current(), http_status=http_status))
        except Exception as exc:
            log.warning("audit.record_failed", system=self._system, error=f"{type(exc).__name__}: {exc}"[:300])

    def close(self) -> None:
        self._inner.close()


def build_client(
    *,
    system: str,
    base_url: str,
    timeout: float,
    audit: AuditSink | None = None,
    transport: httpx.BaseTransport | None = None,
    operation: OperationNamer = default_operation,
    headers: dict[str, str] | None = None,
    max_connections: int = 20,
    redact: JsonRedactor | None = None,
) -> httpx.Client:
    """``redact`` masks values that key names cannot reveal as secret (an SAP long text holding a
    shopper token, say); it runs on every JSON body after the generic key-based redaction."""
    inner = transport or httpx.HTTPTransport(
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        retries=0)
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        transport=AuditedTransport(inner, system, audit or NullAudit(), operation, redact),
        headers=headers,
        follow_redirects=False,
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta form or HTTP date), or ``None`` when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
