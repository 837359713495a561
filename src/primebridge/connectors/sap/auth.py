"""Authentication for SAP Gateway: Basic (technical user) or OAuth 2.0 client credentials.

Both are ``httpx.Auth`` flows so the OData client passes them per request and never handles
credentials itself. Secrets are ``config.Secret`` references resolved at use time and never logged.
[U] Whether a PCE 2023 ABAP OAuth server issues client-credentials tokens for these APIs is
unconfirmed (reference §6.6); Basic over TLS is the safe default.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Generator
from typing import Literal

import httpx
import structlog

from primebridge.connectors.oauth import ClientCredentialsTokens

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
    """OAuth 2.0 client-credentials bearer tokens (the shared ``ClientCredentialsTokens`` cache:
    renewed early, one renewal at a time). A 401 on an API call drops the cached token and retries
    that call once with a new one (the server may revoke a token before its announced expiry).
    """

    def __init__(self, http: httpx.Client, token_url: str, client_id: str, client_secret: object, *,
                 scope: str | None = None, renew_before_seconds: float = 60.0,
                 client_auth: Literal["basic", "body"] = "basic",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._http = http
        self._tokens = ClientCredentialsTokens(http, token_url, client_id, _reveal(client_secret),
                                               renew_before=renew_before_seconds, client_auth=client_auth,
                                               scope=scope, clock=clock, system="SAP OAuth")

    def close(self) -> None:
        self._http.close()

    def token(self) -> str:
        return self._tokens.token()

    def invalidate(self, token: str) -> None:
        self._tokens.invalidate(token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.token()}"
            yield request
