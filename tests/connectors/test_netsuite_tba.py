"""TBA signing against Oracle's published test vector, and the sandbox's verifier against the client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from primebridge.connectors.netsuite.tba import TbaAuth, authorization_header, realm_for
from primebridge.domain.errors import ConfigError
from primebridge.sandbox.netsuite import create_app
from primebridge.sandbox.netsuite.auth import (
    base_string_uri,
    hmac_sha256_signature,
    parse_oauth_header,
    signature_base_string,
)
from primebridge.sandbox.server import ThreadedServer

ADMIN = httpx.Client(timeout=10)  # one pooled client: a new one per call costs ~50 ms

VECTOR = {
    "consumer_key": "ef40afdd8abaac111b13825dd5e5e2ddddb44f86d5a0dd6dcf38c20aae6b67e4",
    "consumer_secret": "d26ad321a4b2f23b0741c8d38392ce01c3e23e109df6c96eac6d099e9ab9e8b5",
    "token_id": "2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc",
    "token_secret": "c29a677df7d5439a458c063654187e3d678d73aca8e3c9d8bea1478a3eb0d295",
    "nonce": "fjaLirsIcCGVZWzBX0pg",
    "timestamp": "1508242306",
    "realm": "123456",
}
REST_URL = "https://123456.suitetalk.api.netsuite.com/services/rest/record/v1/employee/40"
REST_SIGNATURE = "B5OIWznZ2YP0OB7VrJrGkYsTh+8H+5T9Hag+o92q0zY="
RESTLET_URL = ("https://123456.restlets.api.netsuite.com/app/site/hosting/restlet.nl"
               "?script=6&deploy=1&customParam=someValue&testParam=someOtherValue")
RESTLET_SIGNATURE = "+KK4SKNgz4ZiILGLwOMtfYlgcXSy1eis8ldE9X90azQ="
SANDBOX_CREDS = {"consumer_key": "sandbox-ck", "consumer_secret": "sandbox-cs",
                 "token_id": "sandbox-tid", "token_secret": "sandbox-ts"}


def test_realm_is_upper_case_with_underscore() -> None:
    assert realm_for("1234567-sb1") == "1234567_SB1"
    assert realm_for(" 1234567_sb1 ") == "1234567_SB1"
    with pytest.raises(ConfigError):
        realm_for("  ")


def test_client_signs_oracles_rest_vector() -> None:
    header = authorization_header(method="GET", url=REST_URL, **VECTOR)
    params = parse_oauth_header(header)
    assert params["oauth_signature"] == REST_SIGNATURE
    assert params["realm"] == "123456"
    assert params["oauth_signature_method"] == "HMAC-SHA256"
    assert params["oauth_version"] == "1.0"
    assert "oauth_body_hash" not in params
    assert 'oauth_signature="B5OIWznZ2YP0OB7VrJrGkYsTh%2B8H%2B5T9Hag%2Bo92q0zY%3D"' in header


def test_client_signs_restlet_vector_with_query_parameters() -> None:
    header = authorization_header(method="POST", url=RESTLET_URL, **VECTOR)
    assert parse_oauth_header(header)["oauth_signature"] == RESTLET_SIGNATURE


@pytest.mark.parametrize(("method", "url", "expected"), [
    ("GET", REST_URL, REST_SIGNATURE), ("POST", RESTLET_URL, RESTLET_SIGNATURE)])
def test_sandbox_verifier_reproduces_the_vector(method: str, url: str, expected: str) -> None:
    parts = urlsplit(url)
    oauth = {"realm": VECTOR["realm"], "oauth_consumer_key": VECTOR["consumer_key"],
             "oauth_token": VECTOR["token_id"], "oauth_nonce": VECTOR["nonce"],
             "oauth_timestamp": VECTOR["timestamp"], "oauth_signature_method": "HMAC-SHA256",
             "oauth_version": "1.0"}
    base = signature_base_string(method, base_string_uri(parts.scheme, parts.netloc, parts.path),
                                 parse_qsl(parts.query), oauth)
    assert "realm" not in base
    assert hmac_sha256_signature(base, VECTOR["consumer_secret"], VECTOR["token_secret"]) == expected


def test_auth_flow_uses_a_fresh_nonce_and_signs_the_query() -> None:
    nonces = iter(["nonce-one-1234", "nonce-two-5678"])
    auth = TbaAuth(account_id="123456", consumer_key=VECTOR["consumer_key"],
                   consumer_secret=VECTOR["consumer_secret"], token_id=VECTOR["token_id"],
                   token_secret=VECTOR["token_secret"], nonce_factory=lambda: next(nonces),
                   clock=lambda: 1508242306.7)
    first = next(auth.auth_flow(httpx.Request("GET", REST_URL)))
    second = next(auth.auth_flow(httpx.Request("GET", REST_URL, params={"q": "a b"})))
    p1 = parse_oauth_header(first.headers["Authorization"])
    p2 = parse_oauth_header(second.headers["Authorization"])
    assert (p1["oauth_nonce"], p2["oauth_nonce"]) == ("nonce-one-1234", "nonce-two-5678")
    assert p1["oauth_timestamp"] == "1508242306"
    assert second.url.query == b"q=a%20b"  # never '+', which NetSuite may not decode as a space
    assert p1["oauth_signature"] != p2["oauth_signature"]


def test_missing_credentials_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"netsuite\.token_secret"):
        TbaAuth(account_id="1", consumer_key="a", consumer_secret="b", token_id="c", token_secret="")


def test_auth_repr_hides_credentials() -> None:
    auth = TbaAuth(account_id="1", **SANDBOX_CREDS)
    assert "sandbox" not in repr(auth)


# -- against the sandbox -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(account_id="TSTDRV1234567"), name="netsuite") as srv:
        yield srv


@pytest.fixture()
def url(server: ThreadedServer) -> str:
    ADMIN.post(f"{server.url}/_sandbox/reset").raise_for_status()
    seed = {"customer": "Ada", "lines": [{"item": "SKU-1", "quantity": 1}]}
    ADMIN.post(f"{server.url}/_sandbox/sales-orders", json=seed).raise_for_status()
    return server.url


def _client(url: str, **overrides: object) -> httpx.Client:
    creds = {**SANDBOX_CREDS, "account_id": "tstdrv1234567", **overrides}
    return httpx.Client(base_url=url, auth=TbaAuth(**creds))  # type: ignore[arg-type]


def _audit(url: str) -> list[str]:
    return [e["reason"] for e in ADMIN.get(f"{url}/_sandbox/login-audit").json()["items"]]


def test_sandbox_accepts_a_correct_signature(url: str) -> None:
    with _client(url) as client:
        response = client.get("/services/rest/record/v1/salesOrder/1001", params={"expandSubResources": "true"})
    assert response.status_code == 200
    assert response.json()["id"] == "1001"


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"consumer_secret": "wrong"}, "InvalidSignature"),
    ({"token_secret": "wrong"}, "InvalidSignature"),
    ({"token_id": "unknown-token"}, "token_rejected"),
    ({"consumer_key": "unknown-ck"}, "consumer_key_unknown"),
    ({"account_id": "OTHER"}, "InvalidAccount"),
    ({"clock": lambda: time.time() - 600}, "InvalidTimestamp"),
    ({"nonce_factory": lambda: "abc"}, "InvalidNonce"),
])
def test_sandbox_rejects_bad_logins_with_invalid_login(url: str, overrides: dict[str, object],
                                                       reason: str) -> None:
    with _client(url, **overrides) as client:
        response = client.get("/services/rest/record/v1/salesOrder/1001")
    assert response.status_code == 401
    body = response.json()
    assert body["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"
    assert "Login Audit Trail" in body["o:errorDetails"][0]["detail"]
    assert _audit(url)[-1] == reason


def test_sandbox_rejects_a_replayed_nonce(url: str) -> None:
    with _client(url, nonce_factory=lambda: "same-nonce-every-time") as client:
        first = client.get("/services/rest/record/v1/salesOrder/1001")
        replay = client.get("/services/rest/record/v1/salesOrder/1001")
    assert first.status_code == 200
    assert replay.status_code == 401
    assert _audit(url)[-1] == "NonceUsed"


def test_sandbox_rejects_a_tampered_query_and_hmac_sha1(url: str) -> None:
    signed = next(TbaAuth(account_id="TSTDRV1234567", **SANDBOX_CREDS).auth_flow(
        httpx.Request("GET", f"{url}/services/rest/record/v1/salesOrder/1001?expandSubResources=false")))
    tampered = ADMIN.get(f"{url}/services/rest/record/v1/salesOrder/1001?expandSubResources=true",
                         headers={"Authorization": signed.headers["Authorization"]})
    assert tampered.status_code == 401
    sha1 = signed.headers["Authorization"].replace("HMAC-SHA256", "HMAC-SHA1")
    assert ADMIN.get(str(signed.url), headers={"Authorization": sha1}).status_code == 401
    assert _audit(url)[-2:] == ["InvalidSignature", "UnknownAlgorithm"]


def test_sandbox_requires_authorization(url: str) -> None:
    response = ADMIN.get(f"{url}/services/rest/record/v1/salesOrder/1001")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/vnd.oracle.resource+json")
