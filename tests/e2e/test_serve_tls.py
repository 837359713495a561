"""`serve` speaks HTTPS when given a certificate (Buy with Prime delivers to https URLs only)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from pathlib import Path

import httpx
import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from primebridge.config import settings_from_dict
from primebridge.domain.errors import ConfigError
from primebridge.sandbox.profile import sandbox_config
from primebridge.sandbox.server import free_port
from tests.e2e.harness import spawn_serve


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_serve_answers_over_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    config = tmp_path / "primebridge.toml"
    settings = sandbox_config(amazon_url="http://127.0.0.1:9", sap_url="http://127.0.0.1:9",
                              netsuite_url="http://127.0.0.1:9", store_url=f"sqlite:///{tmp_path / 'pb.db'}")
    settings.setdefault("web", {}).update(port=port, tls_certfile=str(cert), tls_keyfile=str(key))
    config.write_text(tomli_w.dumps(settings))
    log = tmp_path / "serve.log"
    proc = spawn_serve(config, log, role="web")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                trust = ssl.create_default_context(cafile=str(cert))
                answer = httpx.get(f"https://127.0.0.1:{port}/health", verify=trust, timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"serve did not come up: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        with pytest.raises(httpx.TransportError):   # plain HTTP on the same port is not served
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_half_configured_tls_is_an_error_naming_the_key(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    with pytest.raises(ConfigError, match="tls_keyfile"):
        settings_from_dict({"web": {"tls_certfile": str(cert)}})
    with pytest.raises(ConfigError, match=r"web\.tls_certfile: no such file"):
        settings_from_dict({"web": {"tls_certfile": str(tmp_path / "missing.pem"),
                                    "tls_keyfile": str(tmp_path / "missing.key")}})
