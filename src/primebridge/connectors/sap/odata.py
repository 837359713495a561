"""A small, generic OData V2 JSON client for SAP Gateway services.

Why not pyodata: it needs ``$metadata`` at start, leaves CSRF and If-Match to the caller and has no
error mapping; the handful of calls primebridge makes are simpler to get exactly right here.
This client owns the protocol chores: the CSRF handshake (token + session cookies, one refetch on
``403 X-CSRF-Token: Required``), ETags on updates, ``d.results``/``d.__next`` paging and SAP's
error bodies. It knows nothing about sales orders.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal
from urllib.parse import quote, urljoin

import httpx
import structlog

from primebridge.connectors.sap.auth import SapAuth
from primebridge.connectors.sap.errors import DEFAULT_TRANSIENT_CODES, network_error, raise_for_response
from primebridge.domain.errors import PermanentError

log = structlog.get_logger()

JSON = dict[str, Any]
SAFE_QUERY_CHARS = "'()*!-._~"
_MODIFYING = frozenset({"POST", "PUT", "PATCH", "MERGE", "DELETE"})


def encode_query(params: Mapping[str, str]) -> str:
    """``$filter=A%20eq%20'x'``: spaces as ``%20`` (not ``+``) and ``$`` names as they are, the way
    SAP's own clients encode system query options; quotes and parentheses stay readable."""
    return "&".join(f"{quote(k, safe='$-')}={quote(v, safe=SAFE_QUERY_CHARS)}" for k, v in params.items())


def _csv(value: str | Iterable[str] | None) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else ",".join(value)
    return text or None


class ODataClient:
    """One OData V2 service (e.g. ``/sap/opu/odata/sap/API_SALES_ORDER_SRV``) on one SAP system.

    Thread-safe: workers share one instance; the CSRF token is fetched under a lock and the
    session cookies live in the ``httpx.Client`` cookie jar.
    """

    def __init__(self, http: httpx.Client, service_path: str, *, auth: SapAuth, sap_client: str | None = None,
                 update_method: Literal["PATCH", "MERGE"] = "PATCH", page_size: int = 100,
                 transient_codes: Iterable[str] = DEFAULT_TRANSIENT_CODES) -> None:
        self._http = http
        self._service = "/" + service_path.strip("/")
        self._auth = auth
        self._params = {"sap-client": sap_client} if sap_client else {}
        self._update_method = update_method
        self.page_size = page_size
        self._transient_codes = frozenset(transient_codes)
        self._csrf_lock = threading.Lock()
        self._csrf_token: str | None = None

    def close(self) -> None:
        """Closes the HTTP connections (and the OAuth token client, if any)."""
        self._http.close()
        closer = getattr(self._auth, "close", None)
        if callable(closer):
            closer()

    # -- reading ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self._service}/{path.lstrip('/')}"

    def get_entity(self, entity_path: str, *, expand: str | Iterable[str] | None = None,
                   select: str | Iterable[str] | None = None) -> JSON | None:
        """One entity, or ``None`` when SAP answers 404; the ``ETag`` header lands in ``__metadata.etag``."""
        params = {"$expand": _csv(expand), "$select": _csv(select)}
        response = self._send("GET", self.url(entity_path), entity=entity_path, params=params)
        if response.status_code == 404:
            return None
        self._raise(response, entity_path)
        entity = self._payload(response, entity_path)
        if not isinstance(entity, dict):
            raise PermanentError(f"SAP GET {entity_path}: 'd' is not an entity")
        etag = response.headers.get("etag")
        meta = entity.setdefault("__metadata", {})
        if etag and isinstance(meta, dict) and not meta.get("etag"):
            meta["etag"] = etag
        return entity

    def query(self, entity_set: str, *, filter: str | None = None, select: str | Iterable[str] | None = None,
              expand: str | Iterable[str] | None = None, orderby: str | Iterable[str] | None = None,
              top: int | None = None, skip: int = 0, page_size: int | None = None) -> Iterator[JSON]:
        """All matching entities, at most ``top``, fetched ``page_size`` at a time.

        Paging is client-driven with ``$top``/``$skip`` windows; inside a window the server may
        page on its own with ``d.__next`` (``$skiptoken``), which is followed whenever present.
        A window that comes back short is the last one. [U] The page cap of API_SALES_ORDER_SRV is
        unknown, so both mechanisms are always handled.
        """
        size = page_size or self.page_size
        delivered = 0
        offset = skip
        while top is None or delivered < top:
            window = size if top is None else min(size, top - delivered)
            params = {"$filter": filter, "$select": _csv(select), "$expand": _csv(expand),
                      "$orderby": _csv(orderby), "$top": str(window),
                      "$skip": str(offset) if offset else None}
            got = 0
            for row in self._pages(entity_set, params):
                got += 1
                delivered += 1
                yield row
                if top is not None and delivered >= top:
                    return
            if got < window or got > window:
                # Short window: nothing more. Longer than asked: the server ignored $top and
                # has already sent everything.
                return
            offset += got

    def _pages(self, entity_set: str, params: Mapping[str, str | None]) -> Iterator[JSON]:
        url: str = self.url(entity_set)
        query: Mapping[str, str | None] | None = params
        seen: set[str] = set()
        while True:
            response = self._send("GET", url, entity=entity_set, params=query)
            self._raise(response, entity_set)
            payload = self._payload(response, entity_set)
            rows = payload.get("results") if isinstance(payload, dict) else payload
            if not isinstance(rows, list):
                raise PermanentError(f"SAP GET {entity_set}: the response has no 'd.results' collection")
            yield from (row for row in rows if isinstance(row, dict))
            next_link = payload.get("__next") if isinstance(payload, dict) else None
            if not next_link:
                return
            url = self._next_url(str(next_link), entity_set)
            if url in seen:
                raise PermanentError(f"SAP GET {entity_set}: the server repeats the same __next link {url}")
            seen.add(url)
            query = None  # __next carries the whole query, including $skiptoken

    def _next_url(self, link: str, entity_set: str) -> str:
        base = str(self._http.base_url) or ""
        absolute = urljoin(base.rstrip("/") + self.url(entity_set), link)
        if not base:
            return absolute
        target, origin = httpx.URL(absolute), httpx.URL(base)
        if (target.scheme, target.host, target.port) != (origin.scheme, origin.host, origin.port):
            # Gateway builds __next from the Host it saw, which behind a Web Dispatcher or proxy may be
            # an internal name. Credentials only ever go to the configured host: keep path and query,
            # drop the foreign origin.
            log.warning("sap.next_link_rebased", entity=entity_set, foreign_host=target.host)
            return str(origin.copy_with(raw_path=target.raw_path))
        return absolute

    # -- writing ---------------------------------------------------------------------------

    def create(self, entity_set: str, body: Mapping[str, Any]) -> JSON:
        """POST to an entity set or a navigation path (``A_SalesOrder('1')/to_Text``); the created entity."""
        response = self._modify("POST", self.url(entity_set), entity=entity_set, json=dict(body))
        self._raise(response, entity_set)
        if not response.content:
            return {}
        entity = self._payload(response, entity_set)
        return entity if isinstance(entity, dict) else {}

    def update(self, entity_path: str, body: Mapping[str, Any], etag: str | None) -> None:
        """PATCH (or MERGE) the given properties; ``etag`` goes into ``If-Match``.

        ``None`` sends no ``If-Match``: right for entity types without a concurrency token (SAP's
        sales order items and texts carry none); ``"*"`` explicitly overrides the check.
        """
        headers = {"If-Match": etag} if etag else {}
        response = self._modify(self._update_method, self.url(entity_path), entity=entity_path,
                                json=dict(body), headers=headers)
        self._raise(response, entity_path)

    def delete(self, entity_path: str, etag: str | None) -> None:
        headers = {"If-Match": etag} if etag else {}
        response = self._modify("DELETE", self.url(entity_path), entity=entity_path, headers=headers)
        self._raise(response, entity_path)

    def call_function(self, name: str, params: Mapping[str, str], etag: str | None = None) -> Any:
        """POST a function import, e.g. ``PostGoodsIssue?DeliveryDocument='80000123'``.

        ``params`` values are OData literals already (``values.string_literal``): Gateway reads them
        from the query string, the body stays empty. ``etag`` goes into ``If-Match``, which SAP
        requires for actions bound to an entity with a concurrency token (428 without it).
        Returns ``d`` of the answer (a ``{"results": [...]}`` for collection results), ``None`` if empty.
        """
        headers = {"If-Match": etag} if etag else {}
        response = self._modify("POST", self.url(name), entity=name, headers=headers, params=params)
        self._raise(response, name)
        if not response.content:
            return None
        return self._payload(response, name)

    # -- plumbing --------------------------------------------------------------------------

    def _modify(self, method: str, url: str, *, entity: str, json: JSON | None = None,
                headers: Mapping[str, str] | None = None,
                params: Mapping[str, str | None] | None = None) -> httpx.Response:
        """Sends a modifying request with the CSRF token; on ``403 X-CSRF-Token: Required`` it
        refetches the token once (it expires with the SAP security session) and retries."""
        token = self._ensure_csrf(entity)
        response = self._send(method, url, entity=entity, json=json, params=params,
                              headers={**(headers or {}), "X-CSRF-Token": token})
        if response.status_code == 403 and response.headers.get("x-csrf-token", "").lower() == "required":
            log.info("sap.csrf.refetch", entity=entity)
            token = self._ensure_csrf(entity, stale=token)
            response = self._send(method, url, entity=entity, json=json, params=params,
                                  headers={**(headers or {}), "X-CSRF-Token": token})
        return response

    def _ensure_csrf(self, entity: str, stale: str | None = None) -> str:
        with self._csrf_lock:
            if self._csrf_token is not None and self._csrf_token != stale:
                return self._csrf_token
            response = self._send("GET", self._service + "/", entity="(CSRF token fetch)",
                                  headers={"X-CSRF-Token": "Fetch"})
            self._raise(response, f"{entity} (CSRF token fetch)")
            token = response.headers.get("x-csrf-token")
            if not token or token.lower() == "required":
                raise PermanentError(f"SAP {entity}: the service root sent no X-CSRF-Token on Fetch")
            self._csrf_token = token
            return token

    def _send(self, method: str, url: str, *, entity: str, params: Mapping[str, str | None] | None = None,
              json: JSON | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        query = {**self._params, **{k: v for k, v in (params or {}).items() if v is not None}}
        if query and "?" not in url:  # a __next link already carries its whole query: keep it as sent
            url = f"{url}?{encode_query(query)}"
        merged = {"Accept": "application/json", **(headers or {})}
        if method in _MODIFYING and json is not None:
            merged["Content-Type"] = "application/json"
        try:
            return self._http.request(method, url, json=json, headers=merged, auth=self._auth)
        except httpx.HTTPError as exc:
            raise network_error(exc, entity=entity) from exc

    def _raise(self, response: httpx.Response, entity: str) -> None:
        raise_for_response(response, entity=entity, transient_codes=self._transient_codes)

    @staticmethod
    def _payload(response: httpx.Response, entity: str) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise PermanentError(f"SAP {response.request.method} {entity}: the response is not JSON "
                                 f"(content-type {response.headers.get('content-type')!r})") from None
        if not isinstance(body, dict) or "d" not in body:
            raise PermanentError(f"SAP {response.request.method} {entity}: the response has no 'd' member")
        return body["d"]
