"""The Buy with Prime GraphQL transport: headers, token handling and error mapping, nothing order-specific.

GraphQL reports most failures as HTTP 200 with an ``errors`` array (reference §2.8), so a response
is only a success when it is a 200 *and* carries no errors; partial ``data`` next to errors is a
failure too. A 401 means the token died before its announced expiry (revoked, clock skew): the token
is dropped and the call made once more with a fresh one; a second 401 is a credentials problem.

[UNCONFIRMED] The header set (reference §1.4): the docs say ``x-api-target-id``, real integrations
send ``X-Omni-TargetId`` plus ``x-api-access-key``; both are configurable here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

import httpx
import structlog

from primebridge.connectors.amazon.errors import BadResponse, error_for, parse_errors
from primebridge.connectors.http import retry_after_seconds
from primebridge.connectors.oauth import ClientCredentialsTokens
from primebridge.domain.errors import PermanentError, TransientError

log = structlog.get_logger()

FRAGMENTS = ("orderFields.graphql", "productFields.graphql")
_OPERATION = re.compile(r"\b(query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")
_SPREAD = re.compile(r"\.\.\.\s*([_A-Za-z][_0-9A-Za-z]*)")


def _folder() -> Any:
    return resources.files(__package__) / "documents"


# Every operation document in ``documents/`` (the other files hold shared fragments), so a new
# document is validated against the sandbox schema by the tests without being registered anywhere.
DOCUMENTS = tuple(sorted(entry.name for entry in _folder().iterdir()
                         if entry.name.endswith(".graphql") and entry.name not in FRAGMENTS))


@cache
def load_document(name: str) -> str:
    """An operation document from ``documents/`` with the shared fragment files appended when it
    spreads one of their fragments (GraphQL rejects a document with unused fragments)."""
    text = (_folder() / name).read_text(encoding="utf-8")
    parts = [text]
    spreads = set(_SPREAD.findall(re.sub(r"#[^\n]*", "", text)))
    for fragment in FRAGMENTS:
        body = (_folder() / fragment).read_text(encoding="utf-8")
        if spreads & set(re.findall(r"\bfragment\s+([_A-Za-z][_0-9A-Za-z]*)", body)):
            parts.append(body)
    return "\n".join(parts)


def operation_name(document: str) -> str:
    """``createOrder`` for ``mutation createOrder(...)``; ``graphql`` for anonymous documents."""
    match = _OPERATION.search(re.sub(r"#[^\n]*", "", document))
    return match.group(2) if match else "graphql"


def request_operation(request: httpx.Request) -> str:
    """Names audited calls after their GraphQL operation (``graphql createOrder``), others by path."""
    if request.url.path.endswith("/graphql") and request.content:
        try:
            body = json.loads(request.content)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("query"), str):
            return f"graphql {body.get('operationName') or operation_name(body['query'])}"
    return f"{request.method} {request.url.path}"


class BwpGraphQLClient:
    """Executes GraphQL documents against one BwP instance (one target id). Thread-safe."""

    def __init__(self, http: httpx.Client, tokens: ClientCredentialsTokens, *, target_id: str,
                 target_id_header: str = "x-api-target-id", api_version: str = "2024-11-01",
                 api_access_key: str | None = None, url: str = "/graphql") -> None:
        self._http = http
        self._tokens = tokens
        self._url = url
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            target_id_header: target_id,
            "x-api-version": api_version,
        }
        if api_access_key:
            self._headers["x-api-access-key"] = api_access_key

    def execute(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        """``data`` of a successful response; raises a typed domain error otherwise."""
        operation = operation_name(document)
        body = json.dumps({"query": document, "variables": variables, "operationName": operation},
                          separators=(",", ":"))
        token = self._tokens.token()
        response = self._post(operation, body, token)
        if response.status_code == 401:
            log.info("amazon.graphql.unauthorized_retry", operation=operation)
            self._tokens.invalidate(token)
            response = self._post(operation, body, self._tokens.token())
            if response.status_code == 401:
                raise PermanentError(f"BwP {operation}: HTTP 401 twice, also with a freshly minted token; "
                                     "check the client id, secret and target id")
        return self._data(operation, response)

    def _post(self, operation: str, body: str, token: str) -> httpx.Response:
        try:
            return self._http.post(self._url, content=body,
                                   headers={**self._headers, "Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise TransientError(f"BwP {operation}: {type(exc).__name__}: {exc}") from exc

    def _data(self, operation: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        payload = _json(response)
        if status == 429 or status >= 500:
            raise TransientError(f"BwP {operation}: HTTP {status}{_summary(payload)}",
                                 retry_after=retry_after_seconds(response))
        if status != 200:
            raise PermanentError(f"BwP {operation}: HTTP {status}{_summary(payload) or ' ' + response.reason_phrase}")
        if not isinstance(payload, dict):
            ctype = response.headers.get("content-type", "no content type")
            raise BadResponse(f"BwP {operation}: HTTP 200 without a JSON object ({ctype}); "
                              "is graphql_url pointing at the API?")
        if payload.get("errors"):
            raise error_for(operation, parse_errors(payload["errors"]),
                            retry_after=retry_after_seconds(response))
        data = payload.get("data")
        if not isinstance(data, dict):
            raise BadResponse(f"BwP {operation}: response has neither errors nor a data object")
        return data


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _summary(payload: Any) -> str:
    """The messages of an error body, whatever its shape, for the exception text."""
    if not isinstance(payload, dict):
        return ""
    if isinstance(payload.get("errors"), list):
        try:
            return ": " + "; ".join(info.describe() for info in parse_errors(payload["errors"]))
        except BadResponse:
            return ""
    for key in ("message", "error_description", "error"):
        if isinstance(payload.get(key), str):
            return f": {payload[key]}"
    return ""
