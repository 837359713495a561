"""Login with Amazon: the seller's refresh token exchanged for one-hour SP-API access tokens.

The cache, early renewal and "one renewal at a time, the others wait and reuse it" are exactly
those of ``connectors/oauth.py`` (reference §A2.1: ``POST /auth/o2/token``, form-encoded,
``expires_in`` 3600); only the grant differs: ``grant_type=refresh_token`` with the refresh token
and the client id/secret in the body, as LWA wants them (no HTTP Basic).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from primebridge.connectors.oauth import ClientCredentialsTokens

LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"


class LwaTokens(ClientCredentialsTokens):
    """Thread-safe source of ``x-amz-access-token`` values for one seller authorisation."""

    def __init__(self, http: httpx.Client, token_url: str, client_id: str, client_secret: str,
                 refresh_token: str, renew_before: float = 300, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(http, token_url, client_id, client_secret, renew_before, client_auth="body",
                         clock=clock, system="LWA")
        self._refresh_token = refresh_token

    def _body(self) -> str:
        return self._oauth.prepare_refresh_body(refresh_token=self._refresh_token, client_id=self._client_id,
                                                client_secret=self._client_secret)
