"""OAuth 2.0 client credentials (JWT assertion) against the sandbox's token endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from primebridge.config import NetSuiteConfig
from primebridge.connectors.netsuite import build_netsuite_orders
from primebridge.connectors.netsuite.m2m import M2MAuth
from primebridge.domain.errors import ConfigError, PermanentError
from primebridge.sandbox.netsuite import create_app
from primebridge.sandbox.server import ThreadedServer

ADMIN = httpx.Client(timeout=10)  # one pooled client: a new one per call costs ~50 ms

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
CLIENT_ID = "pb-client-id"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=3072))


@pytest.fixture(scope="module")
def ec_keys() -> tuple[str, str]:
    return _pem(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(), name="netsuite") as srv:
        yield srv


@pytest.fixture()
def url(server: ThreadedServer, rsa_keys: tuple[str, str], ec_keys: tuple[str, str]) -> str:
    ADMIN.post(f"{server.url}/_sandbox/reset").raise_for_status()
    ADMIN.put(f"{server.url}/_sandbox/governance", json={"token_ttl_seconds": 3600}).raise_for_status()
    for cert_id, (_, public) in (("cert-rsa", rsa_keys), ("cert-ec", ec_keys)):
        ADMIN.post(f"{server.url}/_sandbox/oauth2/certificates", json={
            "certificate_id": cert_id, "client_id": CLIENT_ID, "public_key": public}).raise_for_status()
    seed = {"customer": "Ada", "currency": "USD", "lines": [{"item": "SKU-1", "quantity": 1}]}
    ADMIN.post(f"{server.url}/_sandbox/sales-orders", json=seed).raise_for_status()
    return server.url


def _auth(url: str, private_pem: str, certificate_id: str = "cert-rsa", **kw: object) -> M2MAuth:
    return M2MAuth(token_url=url + TOKEN_PATH, client_id=CLIENT_ID, certificate_id=certificate_id,
                   private_key_pem=private_pem, **kw)  # type: ignore[arg-type]


def _stats(url: str) -> dict[str, object]:
    return ADMIN.get(f"{url}/_sandbox/stats").json()


def test_assertion_claims_and_header(rsa_keys: tuple[str, str]) -> None:
    auth = _auth("https://1234567-sb1.suitetalk.api.netsuite.com", rsa_keys[0], clock=lambda: 1_700_000_000)
    assertion = auth.assertion()
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": "PS256", "kid": "cert-rsa", "typ": "JWT"}
    claims = jwt.decode(assertion, rsa_keys[1], algorithms=["PS256"], options={"verify_exp": False},
                        audience=f"https://1234567-sb1.suitetalk.api.netsuite.com{TOKEN_PATH}")
    assert claims["iss"] == CLIENT_ID
    assert claims["scope"] == "restlets,rest_webservices"
    assert 0 < claims["exp"] - claims["iat"] < 3600
    assert claims["jti"] != jwt.decode(auth.assertion(), options={"verify_signature": False})["jti"]


def test_algorithm_follows_the_key(ec_keys: tuple[str, str]) -> None:
    assert _auth("http://x", ec_keys[0], "cert-ec").algorithm == "ES256"
    with pytest.raises(ConfigError, match="private_key"):
        _auth("http://x", "not a key")


def test_token_is_fetched_once_and_reused(url: str, rsa_keys: tuple[str, str]) -> None:
    with httpx.Client(base_url=url, auth=_auth(url, rsa_keys[0])) as client:
        for _ in range(3):
            assert client.get("/services/rest/record/v1/salesOrder/1001").status_code == 200
    assert _stats(url)["token_requests"] == 1


def test_ec_key_and_list_scope_are_accepted(url: str, ec_keys: tuple[str, str]) -> None:
    with httpx.Client(base_url=url, auth=_auth(url, ec_keys[0], "cert-ec", scope_as_list=True)) as client:
        assert client.get("/services/rest/record/v1/salesOrder/1001").status_code == 200


def test_expired_token_is_renewed_once_and_the_call_retried(url: str, rsa_keys: tuple[str, str]) -> None:
    auth = _auth(url, rsa_keys[0])
    with httpx.Client(base_url=url, auth=auth) as client:
        assert client.get("/services/rest/record/v1/salesOrder/1001").status_code == 200
        ADMIN.post(f"{url}/_sandbox/oauth2/expire-tokens").raise_for_status()
        assert client.get("/services/rest/record/v1/salesOrder/1001").status_code == 200
    assert _stats(url)["token_requests"] == 2


def test_token_renewed_early_before_expiry(url: str, rsa_keys: tuple[str, str]) -> None:
    ADMIN.put(f"{url}/_sandbox/governance", json={"token_ttl_seconds": 200}).raise_for_status()
    with httpx.Client(base_url=url, auth=_auth(url, rsa_keys[0], renew_before=300)) as client:
        client.get("/services/rest/record/v1/salesOrder/1001").raise_for_status()
        client.get("/services/rest/record/v1/salesOrder/1001").raise_for_status()
    assert _stats(url)["token_requests"] == 2  # a 200 s token is always inside the 300 s margin


def test_concurrent_workers_share_one_renewal(url: str, rsa_keys: tuple[str, str]) -> None:
    auth = _auth(url, rsa_keys[0])
    statuses: list[int] = []
    with httpx.Client(base_url=url, auth=auth) as client:
        start = threading.Barrier(4)

        def work() -> None:
            start.wait()
            statuses.append(client.get("/services/rest/record/v1/salesOrder/1001").status_code)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 4
    assert _stats(url)["token_requests"] == 1


def test_unmapped_certificate_is_a_permanent_error(url: str, rsa_keys: tuple[str, str]) -> None:
    with httpx.Client(base_url=url, auth=_auth(url, rsa_keys[0], "no-such-cert")) as client, \
            pytest.raises(PermanentError, match="invalid_client"):
        client.get("/services/rest/record/v1/salesOrder/1001")


def test_key_that_does_not_match_the_certificate_fails(url: str, ec_keys: tuple[str, str]) -> None:
    with httpx.Client(base_url=url, auth=_auth(url, ec_keys[0], "cert-rsa")) as client, \
            pytest.raises(PermanentError, match="HTTP 40"):
        client.get("/services/rest/record/v1/salesOrder/1001")


def test_factory_builds_an_oauth2_connector(url: str, rsa_keys: tuple[str, str]) -> None:
    cfg = NetSuiteConfig(account_id="TSTDRV1234567", base_url=url, auth="oauth2", client_id=CLIENT_ID,
                         certificate_id="cert-rsa", private_key=rsa_keys[0], concurrency=3)
    order = build_netsuite_orders(cfg).read_order("1001")
    assert order is not None and order.currency == "USD"
    assert _stats(url)["operations"]["OAuth2 token"] == 1
