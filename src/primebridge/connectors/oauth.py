"""OAuth 2.0 client-credentials tokens, cached and renewed early: one implementation for every
connector that needs them (Buy with Prime, SAP on BTP/OAuth).

Buy with Prime tokens live 15 minutes (reference §1.2) and rapid minting with one client id can be
throttled, so every worker shares one cached token and at most one renewal runs at a time; the
others wait for it and reuse the result.

[UNCONFIRMED for Buy with Prime] The token request format is not documented (reference §1.2,
§7.1): we send the usual ``grant_type=client_credentials`` form and authenticate the client either
with an HTTP Basic header (``client_auth="basic"``, RFC 6749 §2.3.1's preferred way) or with
``client_id``/``client_secret`` in the body (``client_auth="body"``). ``expires_in`` is assumed to
be 900 s when absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog
from oauthlib.oauth2 import BackendApplicationClient

from primebridge.connectors.http import retry_after_seconds
from primebridge.domain.errors import PermanentError, TransientError

log = structlog.get_logger()

DEFAULT_TOKEN_LIFETIME = 900.0
ClientAuth = Literal["basic", "body"]


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    renew_at: float


class ClientCredentialsTokens:
    """A shared, thread-safe source of bearer tokens for one set of client credentials.

    ``renew_before`` seconds before expiry the next caller renews; for tokens that live less than
    twice that long (sandboxes with short lifetimes) renewal happens at half-life instead, so a
    short token is still reused rather than minted for every call.
    """

    def __init__(self, http: httpx.Client, token_url: str, client_id: str, client_secret: str,
                 renew_before: float = 120, *, client_auth: ClientAuth = "basic", scope: str | None = None,
                 clock: Callable[[], float] = time.monotonic, system: str = "BwP") -> None:
        if client_auth not in ("basic", "body"):
            raise ValueError(f"client_auth must be 'basic' or 'body', not {client_auth!r}")
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._renew_before = max(0.0, float(renew_before))
        self._client_auth = client_auth
        self._scope = scope
        self._clock = clock
        self._system = system
        self._lock = threading.Lock()
        self._current: _Token | None = None
        # oauthlib only builds the form body here; its token parsing keeps per-client state and
        # raises its own exception types, so the response is read below instead.
        self._oauth = BackendApplicationClient(client_id)

    def token(self) -> str:
        current = self._current
        if current is not None and self._clock() < current.renew_at:
            return current.value
        with self._lock:
            current = self._current
            if current is not None and self._clock() < current.renew_at:
                return current.value  # another thread renewed it while we waited
            current = self._mint()
            self._current = current
            return current.value

    def invalidate(self, token: str | None = None) -> None:
        """Drop the cached token (only if it is still ``token``, so a fresh one from another
        thread survives a late 401 from a request that used the old one)."""
        with self._lock:
            if self._current is not None and (token is None or self._current.value == token):
                self._current = None

    def _body(self) -> str:
        if self._client_auth == "body":
            return self._oauth.prepare_request_body(include_client_id=True, client_secret=self._client_secret,
                                                    scope=self._scope)
        return self._oauth.prepare_request_body(scope=self._scope)

    def _mint(self) -> _Token:
        where = f"{self._system} token endpoint {self._token_url}"
        auth = httpx.BasicAuth(self._client_id, self._client_secret) if self._client_auth == "basic" else None
        started = self._clock()
        try:
            response = self._http.post(
                self._token_url, content=self._body(), auth=auth,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransientError(f"{where}: {type(exc).__name__}: {exc}") from exc
        payload = _json_object(response)
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(f"{where}: HTTP {status}{_error_text(payload)}",
                                 retry_after=retry_after_seconds(response))
        if status >= 400:
            raise PermanentError(f"{where} refused client {self._client_id!r}: HTTP {status}"
                                 f"{_error_text(payload) or ' ' + response.reason_phrase}")
        if payload is None:
            raise PermanentError(f"{where} answered HTTP {status} without a JSON object")
        value = payload.get("access_token")
        if not isinstance(value, str) or not value:
            raise PermanentError(f"{where} answered without an access_token")
        token_type = payload.get("token_type")
        if token_type is not None and str(token_type).lower() != "bearer":
            raise PermanentError(f"{where} issued a {token_type!r} token; only bearer tokens are supported")
        lifetime = _lifetime(payload.get("expires_in"), where)
        early = min(self._renew_before, lifetime / 2)
        log.info("oauth.token.renewed", system=self._system, expires_in=lifetime, client_id=self._client_id)
        return _Token(value=value, renew_at=started + lifetime - early)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _error_text(payload: dict[str, Any] | None) -> str:
    """`` error=invalid_client (description)`` from an OAuth error body, or nothing."""
    if not payload or not payload.get("error"):
        return ""
    description = payload.get("error_description")
    return f" error={payload['error']}" + (f" ({description})" if description else "")


def _lifetime(raw: Any, where: str) -> float:
    if raw is None:
        return DEFAULT_TOKEN_LIFETIME
    try:
        lifetime = float(raw)
    except (TypeError, ValueError):
        raise PermanentError(f"{where} sent a bad expires_in: {raw!r}") from None
    if lifetime < 0:
        raise PermanentError(f"{where} sent a negative expires_in: {raw!r}")
    return lifetime
