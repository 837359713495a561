"""Authentication for SAP Gateway: Basic (technical user) or OAuth 2.0 client credentials.

Both are ``httpx.Auth`` flows so the OData client passes them per request and never handles
credentials itself. Secrets are ``config.Secret`` references resolved at use time and never logged.
[U] Whether a PCE 2023 ABAP OAuth server issues client-credentials tokens for these APIs is
unconfirmed (reference §6.6); Basic over TLS is the safe default.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Generator
from typing import Literal

import httpx
import structlog

from primebridge.connectors.http import retry_after_seconds
from primebridge.domain.errors import PermanentError, TransientError

log = structlog.get_logger()


def _reveal(value: object) -> str:
    reveal = getattr(value, "reveal", None)
    return reveal() if callable(reveal) else str(value)


class SapAuth(httpx.Auth):
    """Marker base class: what ``ODataClient`` accepts as ``auth``."""


class SapBasicAuth(SapAuth):
    def __init__(self, username: str, password: object) -> None:
        self._username = username
        self._password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raw = f"{self._username}:{_reveal(self._password)}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        yield request


class SapClientCredentials(SapAuth):
    """OAuth 2.0 client-credentials bearer tokens, cached until shortly before they expire.

    Renewal happens under a lock so that concurrent workers trigger one token request, not one
    each; a 401 on an API call drops the cached token and retries that call once with a new one
    (the server may have revoked the token before its announced expiry).
    """

    def __init__(self, http: httpx.Client, token_url: str, client_id: str, client_secret: object, *,
                 scope: str | None = None, renew_before_seconds: float = 60.0,
                 client_auth: Literal["basic", "body"] = "basic",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._renew_before = renew_before_seconds
        self._client_auth = client_auth
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def close(self) -> None:
        self._http.close()

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._renew_before:
                self._token, lifetime = self._request_token()
                self._expires_at = self._clock() + lifetime
                log.info("sap.oauth.token_renewed", expires_in=lifetime)
            return self._token

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.token()}"
            yield request

    def _request_token(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        auth: httpx.Auth | None = None
        if self._client_auth == "basic":
            auth = httpx.BasicAuth(self._client_id, _reveal(self._client_secret))
        else:
            form |= {"client_id": self._client_id, "client_secret": _reveal(self._client_secret)}
        try:
            response = self._http.post(self._token_url, data=form, auth=auth,
                                       headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransientError(f"SAP OAuth token endpoint: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"SAP OAuth token endpoint: HTTP {response.status_code}",
                                 retry_after=retry_after_seconds(response))
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code >= 400:
            reason = None
            if isinstance(payload, dict):
                reason = payload.get("error_description") or payload.get("error")
            raise PermanentError(f"SAP OAuth token endpoint refused client {self._client_id!r}: "
                                 f"HTTP {response.status_code}: {reason or response.reason_phrase}")
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise PermanentError("SAP OAuth token endpoint answered without an access_token")
        try:
            lifetime = float(payload.get("expires_in", 3600))
        except (TypeError, ValueError):
            raise PermanentError(f"SAP OAuth token endpoint sent a bad expires_in: "
                                 f"{payload.get('expires_in')!r}") from None
        return token, lifetime
