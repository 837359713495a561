"""NetSuite's ``o:errorDetails`` answers turned into primebridge's retry decisions.

NetSuite reports every failure in one shape (``{"title", "status", "o:errorDetails": [{"detail",
"o:errorCode", "o:errorPath"}]}``), but the HTTP status alone does not always tell whether to retry:
Oracle's own sample of the concurrency error carries ``"title": "Bad Request"``, so the error code is
checked as well as the status. Messages always name the operation and the NetSuite code, because the
operator who reads them has nothing else (auth failures are only explained in NetSuite's Login Audit
Trail, §1.2 of the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import structlog

from primebridge.connectors.http import retry_after_seconds
from primebridge.domain.errors import PermanentError, Rejected, TransientError

log = structlog.get_logger()

TRANSIENT_CODES = frozenset({"CONCURRENCY_LIMIT_EXCEEDED", "UNEXPECTED_ERROR", "SSS_REQUEST_LIMIT_EXCEEDED"})
LOGIN_AUDIT_HINT = "see Setup > Users/Roles > User Management > View Login Audit Trail in NetSuite"


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    code: str | None
    detail: str
    path: str | None = None

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.code or 'no code'}{where}: {self.detail}"


def error_details(response: httpx.Response) -> list[ErrorDetail]:
    """Every detail NetSuite sent; falls back to the top-level ``title``/``detail`` of the flatter
    shape record actions use, and to the raw text when the body is not JSON at all."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return [ErrorDetail(None, text[:500] or response.reason_phrase)]
    if not isinstance(body, dict):
        return [ErrorDetail(None, str(body)[:500])]
    details = [
        ErrorDetail(item.get("o:errorCode"), str(item.get("detail") or "").strip(), item.get("o:errorPath"))
        for item in body.get("o:errorDetails") or [] if isinstance(item, dict)
    ]
    if not details:
        oauth_error = body.get("error")
        code = body.get("o:errorCode") or (oauth_error if isinstance(oauth_error, str) else None)
        text = body.get("detail") or body.get("error_description") or body.get("title") or ""
        details = [ErrorDetail(code, str(text))]
    return details


def raise_for_response(response: httpx.Response, what: str) -> None:
    """Raise the domain error for a failed answer; ``what`` names the record or query, e.g.
    ``"PATCH salesOrder 123"``. A successful answer returns ``None``."""
    status = response.status_code
    if status < 400:
        return
    details = error_details(response)
    codes = {d.code for d in details if d.code}
    summary = "; ".join(str(d) for d in details)
    message = f"NetSuite {what} failed with HTTP {status}: {summary}"
    primary = next((d.code for d in details if d.code), None)
    if status == 429 or codes & TRANSIENT_CODES or status >= 500:
        raise TransientError(message, retry_after=retry_after_seconds(response))
    if status in (401, 403):
        # A 401 right after a burst has been seen instead of a 429 (reference §4.2); it is still
        # reported as permanent, but logged on its own so an operator can tell the two apart.
        log.warning("netsuite.auth_failed", what=what, status=status, codes=sorted(codes))
        raise PermanentError(f"{message} ({LOGIN_AUDIT_HINT})" if status == 401 else message)
    if status in (400, 404, 409):
        detail = "; ".join(d.detail for d in details if d.detail) or summary
        raise Rejected(f"NetSuite {what}: {detail} [{primary or status}]", code=primary)
    raise PermanentError(message)


def transport_error(exc: httpx.HTTPError, what: str) -> TransientError:
    """Network trouble (connect, read timeout, reset) is worth a retry; the caller raises it."""
    return TransientError(f"NetSuite {what}: {type(exc).__name__}: {exc}")
