"""Retry delays: exponential with full jitter, never shorter than the server's Retry-After.

tenacity and stamina retry a call in-process; here the retry is a durable re-schedule of a job
(the process may die between attempts), so only the delay formula is needed, and it is this.
"""

from __future__ import annotations

import random


def retry_delay(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
                rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
