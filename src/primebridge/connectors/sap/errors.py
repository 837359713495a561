"""SAP Gateway error responses → primebridge's domain errors (which carry the retry decision).

SAP answers with ``{"error": {"code", "message": {"lang", "value"}, "innererror": {"errordetails": [...]}}}``;
the message text is what a merchant's SAP team recognises, so it goes into the exception verbatim,
together with the entity the call was about.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from primebridge.connectors.http import retry_after_seconds
from primebridge.domain.errors import PermanentError, PrimebridgeError, Rejected, TransientError

# Message codes that mean "try again later" even though Gateway sends them as 4xx. V1/042 is the SD
# enqueue message "Sales document … is currently being processed" (a user has the order open).
# [U] The exact code on the customer's release is unconfirmed; callers can pass their own set.
DEFAULT_TRANSIENT_CODES = frozenset({"V1/042"})

_REJECTED_STATUSES = frozenset({400, 409, 422})


@dataclass(frozen=True, slots=True)
class SapErrorBody:
    code: str | None
    message: str | None
    details: tuple[str, ...] = ()

    def text(self) -> str:
        parts = [self.message] if self.message else []
        parts += [d for d in self.details if d and d != self.message]
        return "; ".join(parts)


def parse_error_body(response: httpx.Response) -> SapErrorBody:
    """Best effort: SAP's JSON error, else the first part of whatever text came back."""
    try:
        payload = json.loads(response.content or b"null")
    except ValueError:
        text = response.text.strip()
        return SapErrorBody(code=None, message=text[:300] or None)
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return SapErrorBody(code=None, message=None)
    message = error.get("message")
    value = message.get("value") if isinstance(message, dict) else message
    details: list[str] = []
    inner = error.get("innererror")
    if isinstance(inner, dict):
        for detail in inner.get("errordetails") or []:
            if isinstance(detail, dict) and str(detail.get("severity", "error")).lower() == "error":
                text = detail.get("message")
                if isinstance(text, str) and text:
                    details.append(text)
    code = error.get("code")
    return SapErrorBody(code=code if isinstance(code, str) else None,
                        message=value if isinstance(value, str) else None, details=tuple(details))


def error_for_response(response: httpx.Response, *, entity: str,
                       transient_codes: Iterable[str] = DEFAULT_TRANSIENT_CODES) -> PrimebridgeError:
    """The domain error for a failed SAP response (the caller decides whether to raise it)."""
    status = response.status_code
    body = parse_error_body(response)
    sap_text = body.text() or response.reason_phrase or "no message"
    code = f" [{body.code}]" if body.code else ""
    where = f"SAP {response.request.method} {entity}: HTTP {status}{code}: {sap_text}"
    if status == 429 or status >= 500:
        return TransientError(where, retry_after=retry_after_seconds(response))
    if status == 412:
        # Somebody changed the document since we read its ETag: re-read and retry.
        return TransientError(f"{where} (the document changed since it was read; re-read and retry)")
    if body.code and body.code in set(transient_codes):
        return TransientError(where, retry_after=retry_after_seconds(response))
    if status in (401, 403):
        return PermanentError(f"{where} (check the SAP user, its authorizations and the CSRF handshake)")
    if status == 428:
        return PermanentError(f"{where} (SAP requires an If-Match ETag for this change)")
    if status in _REJECTED_STATUSES:
        return Rejected(where, code=body.code)
    return PermanentError(where)


def raise_for_response(response: httpx.Response, *, entity: str,
                       transient_codes: Iterable[str] = DEFAULT_TRANSIENT_CODES) -> None:
    if response.status_code >= 400:
        raise error_for_response(response, entity=entity, transient_codes=transient_codes)


def network_error(exc: httpx.HTTPError, *, entity: str) -> TransientError:
    """Connection refused, timeouts, resets: the request may not have reached SAP; retry later."""
    return TransientError(f"SAP {entity}: {type(exc).__name__}: {exc}")
