"""The SP-API sandbox's state: LWA tokens, the usage-plan buckets, page tokens and counters.

The bucket is the algorithm Amazon documents (reference §A1.6): ``burst`` tokens at the start,
refilled continuously at ``rate`` per second, one per call, HTTP 429 when none is left. It is the
same arithmetic as the client's (``connectors/spapi/rate_limit.py``), which is what lets a scan run
at the limit without meeting a 429.

Page tokens are stateless: the last SKU of the page, the time of issue and the query, signed with a
per-instance key, so 100k-SKU scans leave nothing behind and a token outlives nothing but its TTL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from primebridge.sandbox.spapi.catalogue import Catalogue

DEFAULT_CLIENT_ID = "sandbox-lwa-client"
DEFAULT_CLIENT_SECRET = "sandbox-lwa-secret"
DEFAULT_SELLER = "A1SANDBOXSELLER"
DEFAULT_REFRESH_TOKEN = "Atzr|sandbox-refresh-token"
DEFAULT_MARKETPLACE = "ATVPDKIKX0DER"


class Bucket:
    """Server side of the usage plan; callers hold the state lock."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        if now > self.stamp:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1.0 - 1e-9:  # float dust must not turn an exact schedule into a 429
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False


@dataclass(frozen=True, slots=True)
class PageCursor:
    after: str
    query: str


class SandboxState:
    """All mutable state of one SP-API sandbox instance, guarded by one lock."""

    def __init__(self, *, client_id: str, client_secret: str, sellers: dict[str, str],
                 marketplace_id: str, catalogue: Catalogue, page_size: int, rate: float, burst: int,
                 next_token_ttl: float, token_ttl: float, clock: Callable[[], float]) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.sellers = dict(sellers)
        self.marketplace_id = marketplace_id
        self.page_size = page_size
        self.rate = rate
        self.burst = burst
        self.next_token_ttl = next_token_ttl
        self.token_ttl = token_ttl
        self.clock = clock
        self.lock = threading.Lock()
        self.catalogue = catalogue
        self._key = secrets.token_bytes(16)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._not_before = float("-inf")
        self.stats: Counter[str] = Counter()

    # -- LWA ---------------------------------------------------------------------------------------

    def client_matches(self, client_id: str | None, secret: str | None) -> bool:
        return (client_id is not None and secret is not None
                and secrets.compare_digest(client_id, self.client_id)
                and secrets.compare_digest(secret, self.client_secret))

    def mint(self, refresh_token: str) -> str | None:
        seller = self.sellers.get(refresh_token)
        if seller is None:
            return None
        token = "Atza|" + secrets.token_urlsafe(32)
        with self.lock:
            now = self.clock()
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (seller, now + self.token_ttl)
            self.stats["lwa.issued"] += 1
        return token

    def seller_for(self, access_token: str | None) -> str | None:
        """The seller an access token was issued for, or ``None`` when unknown or expired."""
        if not access_token:
            return None
        with self.lock:
            found = self._tokens.get(access_token)
            return found[0] if found and self.clock() < found[1] else None

    def expire_access_tokens(self) -> int:
        with self.lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    # -- usage plan --------------------------------------------------------------------------------

    def admit(self, seller: str, operation: str) -> bool:
        with self.lock:
            self.stats["requests"] += 1
            bucket = self._buckets.get((seller, operation))
            if bucket is None:
                bucket = self._buckets[(seller, operation)] = Bucket(self.rate, self.burst, self.clock())
            if bucket.take(self.clock()):
                return True
            self.stats["throttled"] += 1
            return False

    def set_rate_limit(self, rate: float, burst: int) -> None:
        """New plan; every bucket starts full again."""
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        with self.lock:
            self.rate, self.burst = float(rate), int(burst)
            self._buckets.clear()

    # -- page tokens -------------------------------------------------------------------------------

    def issue_next_token(self, cursor: PageCursor) -> str:
        body = json.dumps([cursor.after, cursor.query, self.clock()], separators=(",", ":")).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def read_next_token(self, token: str) -> PageCursor | None:
        """The cursor of a valid token; ``None`` when it is forged, from another query or expired."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, body = raw[:12], raw[12:]
            if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()[:12]):
                return None
            after, query, issued = json.loads(body)
        except (ValueError, TypeError):
            return None
        with self.lock:
            if issued < self._not_before or self.clock() - float(issued) > self.next_token_ttl:
                return None
        return PageCursor(after=str(after), query=str(query))

    def expire_next_tokens(self) -> None:
        with self.lock:
            self._not_before = self.clock() + 1e-9

    # -- admin -------------------------------------------------------------------------------------

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] += n

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"counters": dict(sorted(self.stats.items())), "rate": self.rate, "burst": self.burst,
                    "page_size": self.page_size, "next_token_ttl_seconds": self.next_token_ttl,
                    "token_ttl_seconds": self.token_ttl, "catalogue_size": self.catalogue.count()}

    def reset(self) -> None:
        """Counters, tokens and buckets back to the start; the catalogue's changes dropped."""
        with self.lock:
            self.stats.clear()
            self._tokens.clear()
            self._buckets.clear()
            self._not_before = float("-inf")
            self.catalogue = Catalogue(size=self.catalogue.size, seed=self.catalogue.seed,
                                       prefix=self.catalogue.prefix)
