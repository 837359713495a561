"""OAuth 2.0 client credentials with a JWT client assertion (NetSuite "M2M", reference §1.3).

TBA is being retired (no new TBA integrations from 2027.1), so this is the target auth. NetSuite
issues 60-minute access tokens with no refresh token: the flow is simply run again. The token is
cached and renewed ``renew_before`` seconds early; a lock makes sure that when many workers find it
stale together only one of them asks for a new one and the others reuse it. The token call is made
through the same client (the auth flow yields it), so it is audited like every other call and runs
inside the concurrency slot the caller already holds.

Unconfirmed details (reference §1.3, marked [U]) are parameters: the ``scope`` claim is sent as the
comma-separated string Oracle's text describes unless ``scope_as_list`` is set (Oracle's sample JWT
carries a JSON array). The signing algorithm follows the key: PS256 for RSA, ES256/384/512 for EC
P-256/384/521 — NetSuite does not accept RS256.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from primebridge.connectors.netsuite.errors import error_details
from primebridge.domain.errors import ConfigError, PermanentError, TransientError

log = structlog.get_logger()

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPES = ("restlets", "rest_webservices")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float


def algorithm_for(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "PS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in EC_ALGORITHMS:
        return EC_ALGORITHMS[key.curve.name]
    raise ConfigError("netsuite.private_key must be an RSA or EC (P-256/P-384/P-521) private key")


class M2MAuth(httpx.Auth):
    """``Authorization: Bearer`` with a cached access token obtained by a signed JWT assertion."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        certificate_id: str,
        private_key_pem: str,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        scope_as_list: bool = False,
        renew_before: float = 300.0,
        assertion_lifetime: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        missing = [name for name, value in (
            ("client_id", client_id), ("certificate_id", certificate_id),
            ("private_key", private_key_pem), ("token_url", token_url)) if not value]
        if missing:
            raise ConfigError(f"netsuite OAuth 2.0 needs {', '.join('netsuite.' + m for m in missing)}")
        try:
            self._key = load_pem_private_key(private_key_pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"netsuite.private_key is not a readable unencrypted PEM key: {exc}") from exc
        self.algorithm = algorithm_for(self._key)
        if not 0 < assertion_lifetime < 3600:
            raise ConfigError("the JWT assertion must live less than 3600 s (NetSuite rule)")
        self.token_url = token_url
        self._client_id = client_id
        self._certificate_id = certificate_id
        self._scope: str | list[str] = list(scopes) if scope_as_list else ",".join(scopes)
        self._renew_before = renew_before
        self._assertion_lifetime = assertion_lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return f"M2MAuth(token_url={self.token_url!r}, client_id='***', algorithm={self.algorithm!r})"

    def assertion(self) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._client_id,
            "scope": self._scope,
            "aud": self.token_url,
            "iat": now,
            "exp": now + int(self._assertion_lifetime),
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm=self.algorithm,  # type: ignore[arg-type]
                          headers={"kid": self._certificate_id, "typ": "JWT"})

    def _fresh(self) -> _Token | None:
        token = self._token
        if token is not None and token.expires_at - self._renew_before > self._clock():
            return token
        return None

    def invalidate(self, token_value: str) -> None:
        """Forget a token the server refused, unless another thread already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == token_value:
                self._token = None

    def _token_request(self) -> httpx.Request:
        return httpx.Request("POST", self.token_url, data={
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }, headers={"Accept": "application/json"})

    def _accept(self, response: httpx.Response) -> _Token:
        if response.status_code != 200:
            details = "; ".join(str(d) for d in error_details(response))
            message = f"NetSuite OAuth 2.0 token request failed with HTTP {response.status_code}: {details}"
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientError(message)
            raise PermanentError(message)
        try:
            body = response.json()
            value = body["access_token"]
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PermanentError(f"NetSuite OAuth 2.0 token response is unreadable: {exc!r}") from exc
        if not isinstance(value, str) or not value:
            raise PermanentError("NetSuite OAuth 2.0 token response has no access_token")
        log.info("netsuite.oauth2_token", expires_in=lifetime)
        return _Token(value, self._clock() + lifetime)

    def _obtain(self) -> Generator[httpx.Request, httpx.Response, str]:
        token = self._fresh()
        if token is not None:
            return token.value
        with self._lock:  # held across the yield: the generator runs to the end in this thread
            token = self._fresh()
            if token is None:
                response = yield self._token_request()
                response.read()
                token = self._token = self._accept(response)
        return token.value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = yield from self._obtain()
        request.headers["Authorization"] = f"Bearer {value}"
        response = yield request
        if response.status_code == 401:
            # An expired or revoked token gives 401; one renewal and retry, never a loop.
            self.invalidate(value)
            renewed = yield from self._obtain()
            if renewed != value:
                request.headers["Authorization"] = f"Bearer {renewed}"
                yield request
