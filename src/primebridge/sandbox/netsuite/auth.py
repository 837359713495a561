"""Checks NetSuite's two REST logins: TBA (OAuth 1.0a HMAC-SHA256) and OAuth 2.0 M2M bearer tokens.

The TBA verifier is written from RFC 5849 §3.4 and the reference §1.2, independently of the client's
oauthlib signer, so the published test vector checks each against the other. NetSuite's rules are
enforced: HMAC-SHA256 only, version 1.0, timestamp within ±300 s, nonce at least 6 characters and
never reused by the same token, realm equal to the account id. Every failure answers the same 401
``INVALID_LOGIN``; the reason only goes to the sandbox's login audit trail, as in NetSuite.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jwt

from primebridge.sandbox.netsuite.errors import INVALID_LOGIN_DETAIL, NsError
from primebridge.sandbox.netsuite.state import Certificate, IssuedToken, SandboxState

TIMESTAMP_WINDOW = 300
TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
REQUIRED_TBA = ("oauth_consumer_key", "oauth_token", "oauth_nonce", "oauth_timestamp",
                "oauth_signature_method", "oauth_signature")


class LoginFailed(Exception):
    """Carries the Login Audit Trail reason; the client only ever sees INVALID_LOGIN."""

    def __init__(self, reason: str, detail: str = "", *, bearer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.bearer = bearer


def enc(value: str) -> str:
    """RFC 3986 percent-encoding: only ``A-Z a-z 0-9 - . _ ~`` stay as they are."""
    return quote(value, safe="-._~")


def parse_oauth_header(value: str) -> dict[str, str]:
    if not value[:6].lower() == "oauth ":
        raise LoginFailed("MissingTokenPassportRequiredFields", "not an OAuth header")
    params: dict[str, str] = {}
    for part in value[6:].split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        if not sep or len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
            raise LoginFailed("parameter_rejected", f"malformed parameter {key.strip()!r}")
        key = unquote(key.strip())
        if key in params:
            raise LoginFailed("parameter_rejected", f"duplicated parameter {key}")
        params[key] = unquote(raw[1:-1])
    return params


def base_string_uri(scheme: str, host: str, raw_path: str) -> str:
    scheme = scheme.lower()
    host = host.lower()
    if (scheme == "http" and host.endswith(":80")) or (scheme == "https" and host.endswith(":443")):
        host = host.rsplit(":", 1)[0]
    return f"{scheme}://{host}{raw_path or '/'}"


def signature_base_string(method: str, uri: str, query: Iterable[tuple[str, str]],
                          oauth_params: dict[str, str]) -> str:
    pairs = [(enc(k), enc(v)) for k, v in query]
    pairs += [(enc(k), enc(v)) for k, v in oauth_params.items() if k not in ("realm", "oauth_signature")]
    normalized = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    return "&".join((method.upper(), enc(uri), enc(normalized)))


def hmac_sha256_signature(base_string: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{enc(consumer_secret)}&{enc(token_secret)}".encode()
    return base64.b64encode(hmac.new(key, base_string.encode(), hashlib.sha256).digest()).decode()


def verify_tba(state: SandboxState, *, method: str, uri: str, query: list[tuple[str, str]],
               header: str, now: float | None = None) -> str:
    """The user id behind a valid TBA header; raises ``LoginFailed``. Call with the state lock held."""
    params = parse_oauth_header(header)
    missing = [name for name in REQUIRED_TBA if not params.get(name)]
    if missing:
        raise LoginFailed("MissingTokenPassportRequiredFields", ", ".join(missing))
    if params["oauth_signature_method"] != "HMAC-SHA256":
        raise LoginFailed("UnknownAlgorithm", params["oauth_signature_method"])
    if params.get("oauth_version", "1.0") != "1.0":
        raise LoginFailed("VersionRejected", params["oauth_version"])
    if params.get("realm") != state.realm:
        raise LoginFailed("InvalidAccount", f"realm {params.get('realm')!r} is not {state.realm!r}")
    creds = state.credentials
    if params["oauth_consumer_key"] != creds.consumer_key:
        raise LoginFailed("consumer_key_unknown")
    if params["oauth_token"] != creds.token_id:
        raise LoginFailed("token_rejected")
    now = time.time() if now is None else now
    try:
        stamp = int(params["oauth_timestamp"])
    except ValueError:
        raise LoginFailed("InvalidTimestamp", params["oauth_timestamp"]) from None
    if abs(now - stamp) > TIMESTAMP_WINDOW:
        raise LoginFailed("InvalidTimestamp", f"{stamp} is {now - stamp:+.0f} s from server time")
    if len(params["oauth_nonce"]) < 6:
        raise LoginFailed("InvalidNonce", "the nonce is shorter than 6 characters")
    expected = hmac_sha256_signature(signature_base_string(method, uri, query, params),
                                     creds.consumer_secret, creds.token_secret)
    if not hmac.compare_digest(expected, params["oauth_signature"]):
        raise LoginFailed("InvalidSignature")
    if not state.remember_nonce(creds.token_id, params["oauth_nonce"], now):
        raise LoginFailed("NonceUsed", params["oauth_nonce"])
    return creds.user_id


def verify_bearer(state: SandboxState, token: str, now: float | None = None) -> str:
    issued = state.tokens.get(token)
    now = time.time() if now is None else now
    if issued is None:
        raise LoginFailed("InvalidToken", "unknown access token", bearer=True)
    if issued.expires_at <= now:
        raise LoginFailed("ExpiredToken", bearer=True)
    if "rest_webservices" not in issued.scopes:
        raise LoginFailed("InsufficientScope", "the token lacks rest_webservices", bearer=True)
    return issued.user_id


def login_error(state: SandboxState, failure: LoginFailed) -> NsError:
    state.audit_login("failure", failure.reason, failure.detail)
    headers = ({"WWW-Authenticate": f'Bearer realm="{state.account_id}", error="invalid_token", '
                                    'error_description="Invalid login attempt."'} if failure.bearer else None)
    return NsError(401, "INVALID_LOGIN", INVALID_LOGIN_DETAIL, headers=headers)


# -- OAuth 2.0 client credentials ---------------------------------------------------------------------


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _scopes(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(s.strip() for s in value.replace(" ", ",").split(",") if s.strip())
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return frozenset(value)
    raise TokenError(400, "invalid_scope", "scope must be a comma-separated string or a list")


def issue_token(state: SandboxState, form: dict[str, str], now: float | None = None) -> dict[str, Any]:
    """Check the JWT assertion against the registered certificate and mint an access token."""
    now = time.time() if now is None else now
    if form.get("grant_type") != "client_credentials":
        raise TokenError(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise TokenError(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion") or ""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise TokenError(400, "invalid_request", f"client_assertion is not a JWT: {exc}") from exc
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise TokenError(400, "invalid_request", f"alg {header.get('alg')!r} is not one of {ASSERTION_ALGORITHMS}")
    cert = state.certificates.get(str(header.get("kid")))
    if cert is None:
        raise TokenError(401, "invalid_client", f"no certificate mapped with kid {header.get('kid')!r}")
    try:
        claims = jwt.decode(assertion, cert.public_key_pem, algorithms=[header["alg"]],
                            options={"require": ["iss", "aud", "iat", "exp"], "verify_aud": False})
    except jwt.PyJWTError as exc:
        raise TokenError(401, "invalid_client", f"the client assertion does not verify: {exc}") from exc
    if claims["iss"] != cert.client_id:
        raise TokenError(401, "invalid_client", "iss is not the client id mapped to this certificate")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # Oracle's own sample uses the restlets host in aud: only the token path is compared.
    if not any(isinstance(a, str) and urlsplit(a).path == TOKEN_PATH for a in audiences):
        raise TokenError(401, "invalid_client", f"aud must be the token endpoint URL, not {claims['aud']!r}")
    if not 0 < claims["exp"] - claims["iat"] < 3600:
        raise TokenError(400, "invalid_request", "exp - iat must be below 3600 seconds")
    if claims["iat"] > now + TIMESTAMP_WINDOW:
        raise TokenError(400, "invalid_request", "iat lies in the future")
    scopes = _scopes(claims.get("scope", ""))
    if not scopes or not scopes <= {"restlets", "rest_webservices", "suite_analytics"}:
        raise TokenError(400, "invalid_scope", f"unknown scope {sorted(scopes)}")
    token = secrets.token_urlsafe(32)
    state.tokens[token] = IssuedToken(cert.user_id, now + state.token_ttl_seconds, scopes)
    state.token_requests += 1
    state.audit_login("success", "oauth2_token", cert.certificate_id)
    return {"access_token": token, "expires_in": int(state.token_ttl_seconds), "token_type": "Bearer"}


def register_certificate(state: SandboxState, body: Any) -> Certificate:
    if not isinstance(body, dict) or not body.get("client_id") or not body.get("public_key"):
        raise ValueError("needs client_id and public_key (PEM), optionally certificate_id and user_id")
    try:
        jwt.algorithms.get_default_algorithms()["PS256"].prepare_key(body["public_key"])
    except Exception:
        try:
            jwt.algorithms.get_default_algorithms()["ES256"].prepare_key(body["public_key"])
        except Exception as exc:
            raise ValueError(f"public_key is not an RSA or EC public key in PEM form: {exc}") from exc
    cert = Certificate(
        certificate_id=str(body.get("certificate_id") or secrets.token_hex(16)),
        client_id=str(body["client_id"]),
        public_key_pem=str(body["public_key"]),
        user_id=str(body.get("user_id") or state.credentials.user_id),
    )
    state.certificates[cert.certificate_id] = cert
    return cert
