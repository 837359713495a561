"""Proactive token buckets, one per (seller, operation), the algorithm SP-API enforces.

SP-API throttles each operation with a token bucket: ``burst`` tokens to start with, refilled
continuously at ``rate`` per second, one token per call (reference §A1.6). Waiting for a 429 and
backing off wastes far more than a call's worth of time (and a back-off beyond 30 s kills the
``nextToken`` of a scan), so the client keeps the same bucket itself and calls only when Amazon's
bucket holds a token. Written by hand because the limiter libraries on PyPI either poll in fixed
steps (imprecise: a 2 req/s scan would lose several per cent) or are asyncio-only.

Reservations: ``acquire`` takes a token under the lock, letting the balance go negative, and then
sleeps *outside* the lock exactly until that token exists, so concurrent callers queue fairly
without holding the lock while asleep. ``margin`` is a constant guard added to every wait (not a
per-call cost: the schedule is computed from token times, not from when calls were sent) so that
a call that reaches Amazon a little earlier than the first one did (network jitter) still finds
its token there.

Latency: Amazon takes a call's token when the call reaches it, somewhere between sending and the
answer. While the bucket is below ``burst`` that instant does not matter (tokens accrue the same
either way), but a call that starts from a full bucket decides when refilling starts; ``settle``
therefore counts such a token as taken when the answer arrived, the latest Amazon can have taken
it. The client's balance is then never above Amazon's, whatever the jitter, for one caller at a
time (a scan); concurrent callers additionally have the margin and the 429 back-off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Ticket:
    """One reserved token: when it is due and how many tokens the bucket held just before it, then."""

    due: float
    level: float


class TokenBucket:
    """One bucket: thread-safe, monotonic clock, starts full."""

    def __init__(self, rate: float, burst: int, *, margin: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, not rate={rate} burst={burst}")
        self._rate = float(rate)
        self._burst = int(burst)
        self._margin = max(0.0, margin)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = clock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    def _refill(self, now: float) -> None:
        """Lock held. Tokens accrued since the last stamp, capped at ``burst`` (a debt stays a debt)."""
        if now > self._stamp:
            self._tokens = min(float(self._burst), self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def reserve(self) -> tuple[float, Ticket]:
        """Take one token now; return how long to wait until it exists (0 when it is there)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            level = self._tokens
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0, Ticket(due=now, level=level)
            wait = -self._tokens / self._rate
            return wait + self._margin, Ticket(due=now + wait, level=1.0)

    def acquire(self) -> Ticket:
        """Block until a token is ours; pass the ticket to ``settle`` when the answer is in."""
        wait, ticket = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return ticket

    def settle(self, ticket: Ticket, done: float | None = None) -> None:
        """The call's answer arrived (at ``done``): take back the refill a full bucket would only
        have started then (``level + rate·(done − due) − burst``, between 0 and 1 token)."""
        with self._lock:
            now = self._clock() if done is None else done
            lost = min(1.0, max(0.0, ticket.level + self._rate * (now - ticket.due) - self._burst))
            if lost > 0:
                self._refill(self._clock())
                self._tokens -= lost

    def tokens(self) -> float:
        """The balance now (negative while callers are waiting); for tests and status output."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens

    def set_rate(self, rate: float) -> bool:
        """Switch to ``rate`` from now on (tokens accrued so far count at the old rate)."""
        if rate <= 0:
            return False
        with self._lock:
            if abs(rate - self._rate) < 1e-9:
                return False
            self._refill(self._clock())
            self._rate = float(rate)
            return True

    def drain(self) -> None:
        """The server said 429: its bucket is empty now, whatever ours thought; start again from zero
        (outstanding reservations keep their place behind it)."""
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, 0.0)


class RateLimiter:
    """The buckets of one process, keyed by (seller, operation); share one instance between threads."""

    def __init__(self, rate: float = 2.0, burst: int = 2, *, margin: float = 0.0, adjust_from_header: bool = True,
                 overrides: dict[str, tuple[float, int]] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        TokenBucket(rate, burst)  # validates the defaults at once rather than on the first call
        self._rate = rate
        self._burst = burst
        self._margin = margin
        self._adjust = adjust_from_header
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def bucket(self, seller: str, operation: str) -> TokenBucket:
        key = (seller, operation)
        bucket = self._buckets.get(key)
        if bucket is None:
            with self._lock:
                bucket = self._buckets.get(key)
                if bucket is None:
                    rate, burst = self._overrides.get(operation, (self._rate, self._burst))
                    bucket = TokenBucket(rate, burst, margin=self._margin, clock=self._clock, sleep=self._sleep)
                    self._buckets[key] = bucket
        return bucket

    def acquire(self, seller: str, operation: str) -> Ticket:
        return self.bucket(seller, operation).acquire()

    def settle(self, seller: str, operation: str, ticket: Ticket) -> None:
        self.bucket(seller, operation).settle(ticket)

    def observe(self, seller: str, operation: str, header: str | None) -> None:
        """Follow ``x-amzn-RateLimit-Limit`` (the rate applied to this seller and app, reference §A1.6)."""
        if not self._adjust or not header:
            return
        try:
            rate = float(header)
        except ValueError:
            log.warning("spapi.rate_limit.bad_header", operation=operation, value=header[:40])
            return
        if rate > 0 and self.bucket(seller, operation).set_rate(rate):
            log.info("spapi.rate_limit.adjusted", operation=operation, rate=rate)

    def throttled(self, seller: str, operation: str) -> None:
        self.bucket(seller, operation).drain()
