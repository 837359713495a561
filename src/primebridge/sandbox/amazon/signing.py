"""Optional ES384 signatures on webhook deliveries and the JWKS that verifies them.

[UNCONFIRMED] Only a third-party verifier describes the scheme (reference §3.4): ``x-amzn-signature``
is the base64 ECDSA P-384/SHA-384 signature over the raw body, ``x-amzn-kid`` names the key in the
JWKS served at ``/jwks.json``. That verifier uses ``openssl_verify``, i.e. a DER-encoded signature;
JOSE would use raw ``r||s``. The sandbox signs DER by default and raw with the knob
``signature_format = "raw"``, so a verifier can be tested against both readings.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm

SignatureFormat = Literal["der", "raw"]
SIGNATURE_HEADER = "x-amzn-signature"
KEY_ID_HEADER = "x-amzn-kid"


class Signer:
    """One P-384 key pair at a time; ``rotate`` makes a new current key and keeps the old one in the JWKS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[tuple[str, ec.EllipticCurvePrivateKey]] = []
        self.rotate()

    def rotate(self) -> str:
        kid = f"bwp-sandbox-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._keys.append((kid, ec.generate_private_key(ec.SECP384R1())))
            del self._keys[:-2]  # the current key and the one before it
        return kid

    @property
    def kid(self) -> str:
        with self._lock:
            return self._keys[-1][0]

    def sign(self, body: bytes, fmt: SignatureFormat = "der") -> dict[str, str]:
        """The two headers for ``body``."""
        with self._lock:
            kid, key = self._keys[-1]
        der = key.sign(body, ec.ECDSA(hashes.SHA384()))
        if fmt == "raw":
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
        else:
            signature = der
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), KEY_ID_HEADER: kid}

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = list(self._keys)
        out = []
        for kid, key in keys:
            jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "ES384"})
        return {"keys": out}
