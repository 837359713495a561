"""Buy with Prime event intake routes (webhook and EventBridge envelopes) and the OAuth token
endpoint that a BwP auth profile points at."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from primebridge.entrypoints.bootstrap import Service


def routes(service: Service) -> list[BaseRoute]:
    return []
