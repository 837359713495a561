"""Helpers shared by the NetSuite sandbox and connector tests: one real sandbox per module, its admin
API, and connector settings / raw clients signed with the sandbox's default TBA credentials.

Fixtures are made by functions or imported by name (``server = serve()``, ``ns = netsuite_fixtures.ns``)
so each test file still decides what its sandbox looks like and how it resets it (its own ``url`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from primebridge.config import NetSuiteConfig
from primebridge.connectors.netsuite.tba import TbaAuth
from primebridge.sandbox.netsuite import create_app
from primebridge.sandbox.server import ThreadedServer

ADMIN = httpx.Client(timeout=10)  # one pooled client: a new one per call costs ~50 ms
ACCOUNT_ID = "TSTDRV1234567"
CREDS = {"consumer_key": "sandbox-ck", "consumer_secret": "sandbox-cs", "token_id": "sandbox-tid",
         "token_secret": "sandbox-ts"}
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def serve(name: str = "netsuite", **app_options: Any) -> Callable[[], Iterator[ThreadedServer]]:
    """A module-scoped fixture running a sandbox made by ``create_app(**app_options)``."""

    @pytest.fixture(scope="module")
    def server() -> Iterator[ThreadedServer]:
        with ThreadedServer(create_app(**app_options), name=name) as srv:
            yield srv

    return server


def admin_response(url: str, method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
    """A call to the sandbox's admin API, left to the caller to check (for tests of the admin API itself)."""
    # No ``params`` at all unless given: an empty mapping would drop a query written into ``path``.
    return ADMIN.request(method, f"{url}/_sandbox/{path}", json=body, params=params or None)


def admin(url: str, method: str, path: str, body: Any = None, **params: str) -> Any:
    """A call to the sandbox's admin API that must succeed: its JSON body."""
    response = admin_response(url, method, path, body, **params)
    response.raise_for_status()
    return response.json()


@pytest.fixture()
def url_at_t0(server: ThreadedServer) -> str:
    """The test file's sandbox, reset, its clock at ``T0`` (take it as ``url = netsuite_fixtures.url_at_t0``)."""
    admin(server.url, "POST", "reset")
    admin(server.url, "PUT", "clock", {"now": T0.isoformat()})
    return server.url


def netsuite_config(url: str, **overrides: Any) -> NetSuiteConfig:
    """Connector settings for the sandbox at ``url`` with its TBA credentials."""
    return NetSuiteConfig(**{"account_id": ACCOUNT_ID, "base_url": url, **CREDS, **overrides})


@pytest.fixture()
def ns(url: str) -> Iterator[httpx.Client]:
    """A raw REST client signed with TBA, against the test file's ``url`` (reset by that fixture)."""
    with httpx.Client(base_url=url, auth=TbaAuth(account_id=ACCOUNT_ID, **CREDS)) as client:
        yield client


def error_detail(response: httpx.Response) -> dict[str, Any]:
    """The first entry of a NetSuite error body (and proof that the response is one)."""
    assert response.headers["content-type"].startswith("application/vnd.oracle.resource+json; type=error")
    return response.json()["o:errorDetails"][0]
