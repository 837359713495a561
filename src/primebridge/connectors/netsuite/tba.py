"""Token-Based Authentication (OAuth 1.0a, HMAC-SHA256) the way NetSuite checks it.

oauthlib reproduces Oracle's published test vector exactly (reference §1.4, §7.2), so the signing
itself is oauthlib's; this module only adds NetSuite's rules around it:

* the realm is the account id in upper case with ``-`` → ``_`` (host ``1234567-sb1`` → realm
  ``1234567_SB1``); oauthlib puts it in the header and keeps it out of the base string;
* the body is never passed to oauthlib, so no ``oauth_body_hash`` is added to JSON requests (§1.5);
* every attempt, retries included, gets a fresh nonce and timestamp, because NetSuite rejects a
  reused nonce (``httpx.Auth.auth_flow`` runs per request, so that holds by construction);
* query values are sent with ``%20`` for a space rather than ``+``: whether NetSuite decodes ``+``
  before building the base string is unconfirmed (§1.5), and ``%20`` is unambiguous either way.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, SIGNATURE_TYPE_AUTH_HEADER, Client

from primebridge.domain.errors import ConfigError


def realm_for(account_id: str) -> str:
    """``1234567-sb1`` / ``1234567_sb1`` → ``1234567_SB1`` (reference §1.1)."""
    realm = account_id.strip().upper().replace("-", "_")
    if not realm:
        raise ConfigError("netsuite.account_id must be set for token-based authentication")
    return realm


def new_nonce() -> str:
    """20 URL-safe characters from the OS RNG (NetSuite wants at least 6, recommends 20)."""
    return secrets.token_urlsafe(15)


def authorization_header(
    *,
    method: str,
    url: str,
    realm: str,
    consumer_key: str,
    consumer_secret: str,
    token_id: str,
    token_secret: str,
    nonce: str,
    timestamp: str,
) -> str:
    """The complete ``Authorization`` value for one request; ``url`` must be the exact URL sent."""
    client = Client(
        consumer_key,
        client_secret=consumer_secret,
        resource_owner_key=token_id,
        resource_owner_secret=token_secret,
        signature_method=SIGNATURE_HMAC_SHA256,
        signature_type=SIGNATURE_TYPE_AUTH_HEADER,
        realm=realm,
        nonce=nonce,
        timestamp=timestamp,
    )
    _, headers, _ = client.sign(url, http_method=method.upper())
    return headers["Authorization"]


def _space_as_percent20(url: httpx.URL) -> httpx.URL:
    raw = url.query.decode("ascii")
    if "+" not in raw:
        return url
    pairs = parse_qsl(raw, keep_blank_values=True)
    return url.copy_with(query=urlencode(pairs, quote_via=quote).encode("ascii"))


class TbaAuth(httpx.Auth):
    """Signs every request (query string included) with a fresh nonce and timestamp."""

    def __init__(
        self,
        *,
        account_id: str,
        consumer_key: str,
        consumer_secret: str,
        token_id: str,
        token_secret: str,
        nonce_factory: Callable[[], str] = new_nonce,
        clock: Callable[[], float] = time.time,
    ) -> None:
        missing = [name for name, value in (
            ("consumer_key", consumer_key), ("consumer_secret", consumer_secret),
            ("token_id", token_id), ("token_secret", token_secret)) if not value]
        if missing:
            raise ConfigError(f"netsuite TBA needs {', '.join('netsuite.' + m for m in missing)}")
        self.realm = realm_for(account_id)
        self._consumer_key = consumer_key
        self._consumer_secret = consumer_secret
        self._token_id = token_id
        self._token_secret = token_secret
        self._nonce = nonce_factory
        self._clock = clock

    def __repr__(self) -> str:
        return f"TbaAuth(realm={self.realm!r}, consumer_key='***', token_id='***')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = _space_as_percent20(request.url)
        request.headers["Authorization"] = authorization_header(
            method=request.method,
            url=str(request.url),
            realm=self.realm,
            consumer_key=self._consumer_key,
            consumer_secret=self._consumer_secret,
            token_id=self._token_id,
            token_secret=self._token_secret,
            nonce=self._nonce(),
            timestamp=str(int(self._clock())),
        )
        yield request
