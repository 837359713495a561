"""Fault knobs shared by the three sandboxes: latency, server errors and throttling.

The knobs are set at start or at run time through ``PUT /_sandbox/knobs`` and apply to every
non-admin request, so tests and benchmarks can make any sandbox slow, flaky or throttled.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_PREFIX = "/_sandbox"


@dataclass
class Knobs:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after_seconds: float = 1.0
    seed: int | None = None

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown knobs: {', '.join(sorted(unknown))}")
        for key, value in values.items():
            if key == "seed":
                self.seed = None if value is None else int(value)
            else:
                setattr(self, key, float(value))
        for rate in ("error_rate", "throttle_rate"):
            if not 0.0 <= getattr(self, rate) <= 1.0:
                raise ValueError(f"{rate} must be between 0 and 1")


class FaultInjector:
    """Decides per request whether to delay, fail or throttle; thread-safe, optionally seeded."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        self.knobs = knobs or Knobs()
        self._rng = random.Random(self.knobs.seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        with self._lock:
            roll = self._rng.random()
        if roll < self.knobs.throttle_rate:
            return "throttle"
        if roll < self.knobs.throttle_rate + self.knobs.error_rate:
            return "error"
        return None


class FaultMiddleware:
    """Applies latency to every non-admin request and, unless the sandbox handles faults itself
    (``on_fault``), answers throttled requests with 429 and failed ones with 503."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, on_fault: Any = None) -> None:
        self.app = app
        self.injector = injector
        self.on_fault = on_fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        knobs = self.injector.knobs
        if knobs.latency_ms > 0:
            await asyncio.sleep(knobs.latency_ms / 1000)
        fault = self.injector.draw()
        if fault is None:
            await self.app(scope, receive, send)
            return
        if self.on_fault is not None:
            response = self.on_fault(fault, knobs)
        elif fault == "throttle":
            response = JSONResponse({"message": "Too Many Requests"}, status_code=429,
                                    headers={"Retry-After": f"{knobs.retry_after_seconds:g}"})
        else:
            response = JSONResponse({"message": "Service Unavailable"}, status_code=503)
        await response(scope, receive, send)


def knob_routes(injector: FaultInjector) -> list[Route]:
    async def get_knobs(request: Request) -> Response:
        return JSONResponse(asdict(injector.knobs))

    async def put_knobs(request: Request) -> Response:
        try:
            injector.knobs.update(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(asdict(injector.knobs))

    return [
        Route(f"{ADMIN_PREFIX}/knobs", get_knobs, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/knobs", put_knobs, methods=["PUT"]),
    ]
