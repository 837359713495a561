"""Who may deliver Buy with Prime events: HTTP Basic, primebridge-issued OAuth tokens, signatures.

The merchant registers an auth profile in BwP (``events subscribe``) holding either Basic
credentials or an OAuth client (id, secret, token endpoint). For OAuth, primebridge *is* the token
endpoint: ``POST /oauth/token`` (client credentials) issues a short-lived HS256 JWT, which BwP then
presents as ``Authorization: Bearer``. The header BwP uses is unconfirmed (reference §3.4), so both
``Basic`` and ``Bearer`` are accepted on every delivery, for whichever is configured.

The optional ``x-amzn-signature`` check (ES384 over the raw body, key id in ``x-amzn-kid``, keys from
a JWKS) is described only by third-party code, hence off by default (``events.verify_signature``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
import uuid
from typing import Any

import httpx
import jwt
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from primebridge.config import EventsConfig
from primebridge.domain.errors import ConfigError

log = structlog.get_logger(__name__)

TOKEN_ISSUER = "primebridge"
TOKEN_AUDIENCE = "primebridge-events"
_CACHE_SIZE = 256   # remembered Authorization headers that passed (one per credential/token in use)


class Unauthorized(Exception):
    """The caller is not who the auth profile says; the message tells the operator why (never a secret)."""


def _basic_pair(header: str) -> tuple[str, str] | None:
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


class EventCredentials:
    """Checks deliveries and issues tokens. Secrets are resolved at start and re-read every
    ``events.secret_reload_seconds``, so rotating a ``file:`` secret needs no restart."""

    def __init__(self, cfg: EventsConfig, *, clock: Any = time.monotonic) -> None:
        if cfg.basic_password is not None and not cfg.basic_username:
            raise ConfigError("events.basic_username must be set together with events.basic_password")
        if cfg.oauth_client_secret is not None and not cfg.oauth_client_id:
            raise ConfigError("events.oauth_client_id must be set together with events.oauth_client_secret")
        self.cfg = cfg
        self.ttl = cfg.token_ttl_seconds
        self._clock = clock
        self._reload_lock = threading.Lock()
        self._passed: dict[str, tuple[str, float | None]] = {}
        self._load()

    def _load(self) -> None:
        cfg = self.cfg
        basic = (cfg.basic_username, cfg.basic_password.reveal()) if cfg.basic_password is not None else None
        client: tuple[str, str] | None = None
        signing_key = b""
        if cfg.oauth_client_secret is not None:
            client = (cfg.oauth_client_id, cfg.oauth_client_secret.reveal())
            seed = (cfg.token_signing_secret or cfg.oauth_client_secret).reveal()
            # A derived 256-bit key: full-length for HS256 whatever the secret's length, and a token
            # can never double as the client secret.
            signing_key = hashlib.sha256(b"primebridge events token\0" + seed.encode()).digest()
        if (basic, client, signing_key) != (getattr(self, "basic", None), getattr(self, "client", None),
                                            getattr(self, "_signing_key", None)):
            self.basic, self.client, self._signing_key = basic, client, signing_key
            self._passed = {}   # a header that passed under the old secrets must be checked again
        self._loaded_at = self._clock()

    def _maybe_reload(self) -> None:
        every = self.cfg.secret_reload_seconds
        if every <= 0 or self._clock() - self._loaded_at < every:
            return
        with self._reload_lock:
            if self._clock() - self._loaded_at < every:
                return
            try:
                self._load()
            except Exception as exc:
                # Keep the secrets that worked: a file being rewritten must not lock BwP out.
                log.warning("events.secret_reload_failed", error=type(exc).__name__)
                self._loaded_at = self._clock()

    @property
    def configured(self) -> bool:
        return self.basic is not None or self.client is not None

    # -- deliveries -----------------------------------------------------------------------------------

    def check(self, authorization: str) -> str:
        """The authenticated principal (for logs), or ``Unauthorized``.

        A header that passed is remembered (Basic: for good, the credentials are fixed for the
        process; Bearer: until the token's ``exp``), so the steady stream of deliveries with the same
        header costs a dict lookup instead of a base64 decode and digest compares or an HMAC check.
        Only successes are remembered, and at most ``_CACHE_SIZE`` of them, so wrong headers cannot
        grow the cache. Telling a remembered header from a new one by timing reveals nothing: the
        attacker would have to send the right header to hit it.
        """
        self._maybe_reload()
        remembered = self._passed.get(authorization)
        if remembered is not None:
            principal, expires = remembered
            if expires is None or time.time() < expires:
                return principal
            self._passed.pop(authorization, None)
        principal, expires = self._check(authorization)
        if len(self._passed) >= _CACHE_SIZE:
            self._passed.clear()
        self._passed[authorization] = (principal, expires)
        return principal

    def _check(self, authorization: str) -> tuple[str, float | None]:
        if not self.configured:
            raise Unauthorized("event intake has no credentials configured (events.basic_* or events.oauth_*)")
        if not authorization:
            raise Unauthorized("Authorization header missing")
        pair = _basic_pair(authorization)
        if pair is not None:
            if self.basic is None:
                raise Unauthorized("HTTP Basic is not configured for event intake")
            if _equal(pair[0], self.basic[0]) & _equal(pair[1], self.basic[1]):
                return f"basic:{self.basic[0]}", None
            raise Unauthorized("wrong Basic credentials")
        if authorization[:7].lower() == "bearer ":
            if self.client is None:
                raise Unauthorized("OAuth is not configured for event intake")
            try:
                claims = jwt.decode(authorization[7:].strip(), self._signing_key, algorithms=["HS256"],
                                    audience=TOKEN_AUDIENCE, issuer=TOKEN_ISSUER,
                                    options={"require": ["exp", "iat", "sub"]})
            except jwt.ExpiredSignatureError:
                raise Unauthorized("bearer token expired") from None
            except jwt.InvalidTokenError:
                raise Unauthorized("bearer token invalid") from None
            if claims.get("sub") != self.client[0]:
                raise Unauthorized("bearer token was issued to another client")
            return f"oauth:{self.client[0]}", float(claims["exp"])
        raise Unauthorized("Authorization must be Basic or Bearer")

    # -- token endpoint -------------------------------------------------------------------------------

    def issue(self, client_id: str, client_secret: str) -> dict[str, Any]:
        self._maybe_reload()
        if self.client is None:
            raise Unauthorized("OAuth is not configured (events.oauth_client_id, events.oauth_client_secret)")
        if not (_equal(client_id, self.client[0]) & _equal(client_secret, self.client[1])):
            raise Unauthorized("wrong client id or secret")
        now = int(time.time())
        token = jwt.encode({"iss": TOKEN_ISSUER, "aud": TOKEN_AUDIENCE, "sub": self.client[0], "iat": now,
                            "exp": now + self.ttl, "jti": uuid.uuid4().hex}, self._signing_key, algorithm="HS256")
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl}


class SignatureVerifier:
    """ES384 signatures over the raw body against keys from a JWKS URL.

    Written by hand rather than with ``jwt.PyJWKClient``: that client fetches the JWKS again for
    every unknown key id, so anyone could make primebridge hammer the JWKS host with random
    ``x-amzn-kid`` values. Here keys are cached for ``cache_seconds``, and an unknown kid (a key
    rotation) refetches at most once every ``refetch_seconds``.
    """

    def __init__(self, url: str, *, cache_seconds: float = 3600.0, refetch_seconds: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self._http = httpx.Client(timeout=10.0, transport=transport)
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def verify(self, body: bytes, signature: str | None, kid: str | None) -> None:
        if not signature:
            raise Unauthorized("signature header missing")
        if not kid:
            raise Unauthorized("key id header missing")
        key = self._key(kid)
        raw = _b64(signature)
        if raw is None:
            raise Unauthorized("signature is not base64")
        der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big")) \
            if len(raw) == 96 else raw
        try:
            key.verify(der, body, ec.ECDSA(hashes.SHA384()))
        except (InvalidSignature, ValueError):
            raise Unauthorized("signature does not match the body") from None

    def _key(self, kid: str) -> ec.EllipticCurvePublicKey:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.cache_seconds or (kid not in self._keys and age > self.refetch_seconds):
                self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized(f"unknown signing key id {kid[:64]!r}")
        return key

    def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = self._http.get(self.url)
            response.raise_for_status()
            keys = response.json().get("keys", [])
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("events.jwks_fetch_failed", url=self.url, error=f"{type(exc).__name__}: {exc}")
            return  # keep the keys we have
        fresh: dict[str, ec.EllipticCurvePublicKey] = {}
        for jwk in keys if isinstance(keys, list) else []:
            try:
                key = jwt.PyJWK(jwk).key
            except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                continue
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and isinstance(key, ec.EllipticCurvePublicKey):
                fresh[jwk["kid"]] = key
        self._keys = fresh
        log.info("events.jwks_fetched", url=self.url, keys=len(fresh))


def _b64(text: str) -> bytes | None:
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(padded.encode("ascii"), validate=True) if decode is base64.b64decode \
                else decode(padded.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
    return None
