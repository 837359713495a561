"""The client's token bucket: starts full, refills continuously, queues callers exactly, follows the
rate header, drains on 429, and agrees with the sandbox's bucket call for call."""

from __future__ import annotations

import random
import threading

import pytest

from primebridge.connectors.spapi.rate_limit import RateLimiter, TokenBucket
from primebridge.sandbox.spapi.state import Bucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_starts_full_then_spaces_calls_by_one_over_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    assert clock.slept == [pytest.approx(0.5)] * 3
    assert clock.now == pytest.approx(1001.5)


def test_reservations_queue_without_sleeping_in_the_lock() -> None:
    """Threads that reserve at the same instant get consecutive token times, none twice."""
    clock = FakeClock()
    bucket = TokenBucket(4.0, 2, clock=clock, sleep=clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        wait, _ = bucket.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0, 0] + [k / 4 for k in range(1, 9)])


def test_refill_is_continuous_and_capped_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
    clock.now += 0.25
    assert bucket.tokens() == pytest.approx(0.5)
    clock.now += 100
    assert bucket.tokens() == pytest.approx(3.0)


def test_margin_is_added_to_waits_but_does_not_accumulate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 1, margin=0.02, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    for _ in range(10):
        bucket.acquire()
    # Ten further tokens take 1 s; the margin shifts the schedule once, it is not paid per call.
    assert clock.now - 1000.0 == pytest.approx(1.0 + 0.02)


def test_set_rate_counts_accrued_tokens_at_the_old_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 2, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.acquire()
    clock.now += 0.25          # 0.5 token at 2/s
    assert bucket.set_rate(10.0)
    clock.now += 0.05          # + 0.5 token at 10/s
    assert bucket.tokens() == pytest.approx(1.0)
    assert not bucket.set_rate(10.0)
    assert not bucket.set_rate(0)


def test_drain_after_a_429_empties_the_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 2, clock=clock, sleep=clock.sleep)
    bucket.drain()
    assert bucket.tokens() == 0
    bucket.acquire()
    assert clock.slept == [pytest.approx(0.5)]


def test_limiter_keeps_one_bucket_per_seller_and_operation_and_follows_the_header() -> None:
    limiter = RateLimiter(2.0, 2)
    a = limiter.bucket("S1", "getInventorySummaries")
    assert limiter.bucket("S1", "getInventorySummaries") is a
    assert limiter.bucket("S2", "getInventorySummaries") is not a
    limiter.observe("S1", "getInventorySummaries", "5.0")
    assert a.rate == 5.0
    limiter.observe("S1", "getInventorySummaries", "not a number")
    limiter.observe("S1", "getInventorySummaries", None)
    assert a.rate == 5.0
    fixed = RateLimiter(2.0, 2, adjust_from_header=False)
    fixed.observe("S1", "op", "9")
    assert fixed.bucket("S1", "op").rate == 2.0


def test_limiter_overrides_per_operation_and_rejects_bad_settings() -> None:
    limiter = RateLimiter(2.0, 2, overrides={"createFulfillmentOrder": (2.0, 30)})
    assert limiter.bucket("S", "createFulfillmentOrder").burst == 30
    with pytest.raises(ValueError):
        RateLimiter(0, 2)
    with pytest.raises(ValueError):
        TokenBucket(2.0, 0)


@pytest.mark.parametrize(("rate", "burst"), [(2.0, 2), (20.0, 2), (7.0, 5), (0.5, 1)])
def test_client_schedule_never_meets_an_empty_server_bucket(rate: float, burst: int) -> None:
    """Same arithmetic on both sides: a call sent when the client's token is due always finds the
    sandbox's token there, with no margin at all (the exactness the scan's speed depends on)."""
    clock = FakeClock()
    client = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    server = Bucket(rate, burst, clock.now)
    for _ in range(500):
        client.acquire()
        assert server.take(clock.now)
    assert not server.take(clock.now)  # and it was exactly empty: one call more is refused


def test_settle_counts_a_token_taken_from_a_full_bucket_when_the_answer_arrived() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 2, clock=clock, sleep=clock.sleep)
    ticket = bucket.acquire()
    clock.now += 0.1
    bucket.settle(ticket)
    # Taken at +0.1 rather than at +0: the 0.2 token refilled meanwhile does not count.
    assert bucket.tokens() == pytest.approx(1.0)
    ticket = bucket.acquire()      # not from a full bucket: nothing to take back
    clock.now += 0.1
    bucket.settle(ticket)
    assert bucket.tokens() == pytest.approx(0.2)


@pytest.mark.parametrize(("rate", "burst", "seed"), [(2.0, 2, 1), (20.0, 2, 2), (20.0, 1, 3), (5.0, 10, 4)])
def test_with_any_latency_the_server_bucket_always_has_the_token(rate: float, burst: int, seed: int) -> None:
    """A sequential caller (a scan): each call reaches the server at a random instant between sending
    and the answer, the first one late, the others early, idle pauses in between. Settled tickets keep
    the client's balance at or below the server's, so no call is ever refused."""
    rng = random.Random(seed)
    clock = FakeClock()
    client = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    server = Bucket(rate, burst, clock.now)
    for call in range(400):
        ticket = client.acquire()
        latency = 0.08 if call == 0 else rng.uniform(0.0005, 0.03)
        arrival = clock.now + rng.uniform(0, 1) * latency
        assert server.take(arrival), f"call {call} refused"
        clock.now += latency
        client.settle(ticket)
        if rng.random() < 0.05:
            clock.now += rng.uniform(0, 3 * burst / rate)  # the consumer pauses; buckets refill
