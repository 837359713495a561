"""The REST record service (``/services/rest/record/v1``) and SuiteQL, under one concurrency cap.

Every call goes through ``_send``, which holds one slot of the account-wide semaphore for the
whole exchange (including an OAuth 2.0 token renewal the auth flow may make), maps failures to
domain errors and never retries by itself: retries belong to the runtime's jittered back-off, and a
retried NetSuite write is only safe where the caller made it idempotent (reference §0.3).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from primebridge.connectors.netsuite import suiteql as _suiteql
from primebridge.connectors.netsuite.errors import raise_for_response, transport_error
from primebridge.domain.errors import PermanentError, TransientError

log = structlog.get_logger()

RECORD_PATH = "/services/rest/record/v1"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
# A misspelt custbody_/custcol_ name is only a warning by default and silently ignored (§2.3).
WRITE_HEADERS = {"X-NetSuite-PropertyNameValidation": "error", "Content-Type": "application/json"}


class NetSuiteRest:
    """Thin, synchronous NetSuite REST client; ``http`` carries base URL, auth and audit."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        concurrency: threading.BoundedSemaphore,
        slot_timeout: float = 60.0,
    ) -> None:
        self.http = http
        self._slots = concurrency
        self._slot_timeout = slot_timeout

    def _send(self, method: str, path: str, what: str, *, params: Mapping[str, str] | None = None,
              json: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        if not self._slots.acquire(timeout=self._slot_timeout):
            raise TransientError(f"NetSuite {what}: no free request slot within {self._slot_timeout:g} s")
        try:
            return self.http.request(method, path, params=params, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from exc
        finally:
            self._slots.release()

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise PermanentError(f"NetSuite {what}: the answer is not JSON: {response.text[:200]!r}") from exc
        if not isinstance(body, dict):
            raise PermanentError(f"NetSuite {what}: expected a JSON object, got {type(body).__name__}")
        return body

    @staticmethod
    def _location_id(response: httpx.Response, what: str) -> str:
        """Creates and transforms answer 204 with no body: the new id is only in ``Location``."""
        location = response.headers.get("location")
        if not location:
            raise PermanentError(f"NetSuite {what}: HTTP {response.status_code} without a Location header")
        new_id = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
        if not new_id:
            raise PermanentError(f"NetSuite {what}: cannot read the record id from Location {location!r}")
        return new_id

    def get(self, record_type: str, record_id: str, *,
            expand_sub_resources: bool = True) -> dict[str, Any] | None:
        what = f"GET {record_type} {record_id}"
        params = {"expandSubResources": "true"} if expand_sub_resources else None
        response = self._send("GET", f"{RECORD_PATH}/{record_type}/{record_id}", what, params=params)
        if response.status_code == 404:
            return None
        raise_for_response(response, what)
        return self._json(response, what)

    def patch(self, record_type: str, record_id: str, body: Mapping[str, Any], *,
              replace: Sequence[str] = ()) -> None:
        """Partial update; sublists in ``body`` are merged by their key unless named in ``replace``."""
        what = f"PATCH {record_type} {record_id}"
        params = {"replace": ",".join(replace)} if replace else None
        response = self._send("PATCH", f"{RECORD_PATH}/{record_type}/{record_id}", what,
                              params=params, json=dict(body), headers=WRITE_HEADERS)
        raise_for_response(response, what)

    def create(self, record_type: str, body: Mapping[str, Any]) -> str:
        """Not idempotent: a retried create can duplicate unless ``body`` has an ``externalId``."""
        what = f"POST {record_type}"
        response = self._send("POST", f"{RECORD_PATH}/{record_type}", what, json=dict(body),
                              headers=WRITE_HEADERS)
        raise_for_response(response, what)
        return self._location_id(response, what)

    def transform(self, from_type: str, record_id: str, to_type: str, body: Mapping[str, Any]) -> str:
        """``!transform`` has no upsert form: look for an existing target before retrying (§2.5)."""
        what = f"transform {from_type} {record_id} to {to_type}"
        response = self._send("POST", f"{RECORD_PATH}/{from_type}/{record_id}/!transform/{to_type}", what,
                              json=dict(body), headers=WRITE_HEADERS)
        raise_for_response(response, what)
        return self._location_id(response, what)

    def suiteql_page(self, query: str, *, limit: int, offset: int) -> dict[str, Any]:
        what = f"SuiteQL (offset {offset})"
        response = self._send("POST", SUITEQL_PATH, what,
                              params={"limit": str(limit), "offset": str(offset)},
                              json={"q": query}, headers={"Prefer": "transient"})
        raise_for_response(response, what)
        return self._json(response, what)

    def suiteql(self, query: str, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        return _suiteql.suiteql(self, query, page_size=page_size)
