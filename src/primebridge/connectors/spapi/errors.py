"""SP-API error bodies → primebridge's domain errors (which carry the retry decision).

Every SP-API response, success or not, may carry ``errors[]`` of ``{code, message, details}``
(reference §A1.5). The HTTP status decides the retry class; the first error's ``code`` and text
go into the message, so an operator reads "QuotaExceeded: You exceeded your quota ..." rather
than a bare status. The typed subclasses let the inventory client react to the one case it
handles itself (an expired ``nextToken``) and let tests and callers read ``code``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from primebridge.domain.errors import PermanentError, PrimebridgeError, Rejected, TransientError

# [UNCONFIRMED] Amazon documents the 30-second lifetime but not the error for a late token; users
# report HTTP 400 ``InvalidInput`` "Next token is invalid or expired" (reference §A1.7, issue 4946).
# Matched on the text, so a differently worded code still restarts the scan instead of failing it.
_EXPIRED_TOKEN = re.compile(r"next\s*token.*(expired|invalid)|(expired|invalid).*next\s*token", re.I | re.S)


@dataclass(frozen=True, slots=True)
class SpApiErrorInfo:
    code: str
    message: str = ""
    details: str = ""

    def describe(self) -> str:
        text = f"{self.code}: {self.message}" if self.message else self.code
        return f"{text} ({self.details})" if self.details else text


class SpApiError(PrimebridgeError):
    """Mixin data of every SP-API error: operation, HTTP status and the ``errors[]`` entries."""

    operation: str = ""
    status: int | None = None
    code: str | None = None
    errors: tuple[SpApiErrorInfo, ...] = ()

    def _attach(self, operation: str, status: int | None, errors: tuple[SpApiErrorInfo, ...]) -> None:
        self.operation = operation
        self.status = status
        self.errors = errors
        self.code = errors[0].code if errors else None


class Throttled(SpApiError, TransientError):
    """HTTP 429 ``QuotaExceeded``: the usage plan's bucket is empty; back off and retry."""


class ServerError(SpApiError, TransientError):
    """HTTP 500/503 (``InternalFailure``, ``ServiceUnavailable``) or a network failure."""


class NextTokenExpired(SpApiError, TransientError):
    """The page token outlived its 30 s; the scan restarts from the first page."""


class InvalidInput(SpApiError, Rejected):
    """HTTP 400: a parameter Amazon refuses (bad SKU encoding, marketplace, too many SKUs)."""


class AccessDenied(SpApiError, PermanentError):
    """HTTP 401/403 ``Unauthorized``: missing role, wrong region, revoked authorisation."""


class NotFound(SpApiError, PermanentError):
    """HTTP 404."""


class UnexpectedResponse(SpApiError, PermanentError):
    """Any other status, or a 200 whose body is not the documented shape."""


def parse_errors(payload: Any) -> tuple[SpApiErrorInfo, ...]:
    """The ``errors[]`` entries of a body, tolerant of any shape (a body may be HTML or empty)."""
    raw = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(raw, list):
        return ()
    infos = []
    for entry in raw:
        if isinstance(entry, dict):
            infos.append(SpApiErrorInfo(code=str(entry.get("code") or "Unknown"),
                                        message=str(entry.get("message") or ""),
                                        details=str(entry.get("details") or "")))
        else:
            infos.append(SpApiErrorInfo(code="Unknown", message=str(entry)))
    return tuple(infos)


def is_expired_next_token(errors: tuple[SpApiErrorInfo, ...]) -> bool:
    return any(_EXPIRED_TOKEN.search(f"{e.code} {e.message} {e.details}") for e in errors)


def is_expired_access_token(errors: tuple[SpApiErrorInfo, ...]) -> bool:
    """403 "The access token you provided has expired." (or revoked): worth one retry with a new token."""
    return any("token" in f"{e.message} {e.details}".lower() for e in errors)


def error_for(operation: str, status: int, payload: Any, *, retry_after: float | None = None,
              next_token_sent: bool = False) -> SpApiError:
    """The typed exception for a failed response (the caller raises it)."""
    errors = parse_errors(payload)
    text = "; ".join(e.describe() for e in errors) or "no errors[] in the body"
    message = f"SP-API {operation}: HTTP {status}: {text}"
    exc: SpApiError
    if status == 429:
        exc = Throttled(message, retry_after=retry_after)
    elif status >= 500:
        exc = ServerError(message, retry_after=retry_after)
    elif next_token_sent and status in (400, 404) and is_expired_next_token(errors):
        exc = NextTokenExpired(message)
    elif status == 400:
        exc = InvalidInput(message, code=errors[0].code if errors else None)
    elif status in (401, 403):
        exc = AccessDenied(message + "; check the app's roles, the region's endpoint and the refresh token")
    elif status == 404:
        exc = NotFound(message)
    else:
        exc = UnexpectedResponse(message)
    exc._attach(operation, status, errors)
    return exc
