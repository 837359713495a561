"""Buy with Prime event intake routes (webhook and EventBridge envelopes) and the OAuth token
endpoint that a BwP auth profile points at.

``POST /events/amazon`` takes both envelopes (told apart by their fields). In this order: the
caller is authenticated (401, nothing read further), the signature checked when enabled (401),
the body parsed (4xx naming what is wrong, nothing stored), then the event, its message and its
job are committed in one transaction (``runtime/events.py`` ``EventWriter``, which groups concurrent
deliveries into shared commits) and only then answered ``200``. A redelivery is answered
``200 {"status": "duplicate"}``. The answer is a 200 rather than a 202 because BwP's expected
status is undocumented and every integration seen answers 200 (reference §3.5).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from primebridge.domain.errors import Rejected
from primebridge.domain.events import parse_event
from primebridge.entrypoints.amazon_event_auth import EventCredentials, SignatureVerifier, Unauthorized, _basic_pair
from primebridge.runtime import events

if TYPE_CHECKING:
    from primebridge.entrypoints.bootstrap import Service

log = structlog.get_logger(__name__)
EVENTS_PATH = "/events/amazon"
TOKEN_PATH = "/oauth/token"


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, code: str | None = None, **headers: str) -> Response:
    return Response(_error_body(message, code), status, headers or None, media_type="application/json")


_JSON_HEADERS = [(b"content-type", b"application/json")]
_NOT_AUTHENTICATED = [(b"www-authenticate", b"Basic, Bearer")]
_RETRY_LATER = [(b"retry-after", b"5")]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class EventIntake:
    """``POST /events/amazon`` as a plain ASGI app: the one route that takes a request per event.

    Written against ASGI rather than Starlette's ``Request``/``JSONResponse`` because at full load
    those wrappers (request object, header parsing, response rendering, exception wrapping) cost
    the event loop about as much as parsing the event itself; here the route reads the three
    headers it needs from the scope and sends a pre-built header list. Status codes, messages and
    bodies are those of the other routes (``{"error": ..., "code": ...}``).
    """

    def __init__(self, credentials: EventCredentials, verifier: SignatureVerifier | None,
                 writer: events.EventWriter, *, limit: int, signature_header: str, key_id_header: str) -> None:
        self.credentials = credentials
        self.verifier = verifier
        self.writer = writer
        self.limit = limit
        self.signature_header = signature_header
        self._signature = signature_header.lower().encode("latin-1")
        self._key_id = key_id_header.lower().encode("latin-1")

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        authorization = declared = signature = key_id = None
        for name, value in reversed(scope["headers"]):   # reversed: the first of repeated headers wins
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                declared = value
            elif name == self._signature:
                signature = value
            elif name == self._key_id:
                key_id = value
        try:
            principal = self.credentials.check(authorization.decode("latin-1") if authorization else "")
        except Unauthorized as exc:
            log.info("amazon_event.unauthorized", reason=str(exc))
            return await _answer(send, 401, _error_body(f"unauthorized: {exc}", "Unauthorized"), _NOT_AUTHENTICATED)
        limit = self.limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _answer(send, 413, _too_large(limit))
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":   # http.disconnect: the client went away
                return await _answer(send, 400, _error_body("client disconnected before the body was complete",
                                                            "Incomplete"))
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _answer(send, 413, _too_large(limit))
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.verifier is not None:
            try:
                await run_in_threadpool(self.verifier.verify, body, signature and signature.decode("latin-1"),
                                        key_id and key_id.decode("latin-1"))
            except Unauthorized as exc:
                log.warning("amazon_event.bad_signature", reason=str(exc))
                return await _answer(send, 401, _error_body(f"unauthorized: {exc} ({self.signature_header})",
                                                            "BadSignature"))
        try:
            event = parse_event(body)
            raw = body.decode("utf-8")
        except Rejected as exc:
            log.info("amazon_event.malformed", reason=exc.reason)
            return await _answer(send, 400, _error_body(exc.reason, exc.code))
        except UnicodeDecodeError:
            return await _answer(send, 400, _error_body("body is not UTF-8", "MalformedJson"))
        try:
            receipt = await self.writer.store(event, raw)
        except Exception as exc:
            # Not stored (the group commit rolled back): a 503 makes BwP deliver it again later.
            log.warning("amazon_event.store_failed", event_id=event.event_id,
                        error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return await _answer(send, 503, _error_body("event store unavailable, deliver again later",
                                                        "Unavailable"), _RETRY_LATER)
        # Debug, not info: the store is the record of every delivery (``events list``), and a
        # rendered line per event cost as much as storing it.
        log.debug("amazon_event.received", event_id=event.event_id, event_type=event.event_type,
                  status=receipt.status, event_row_id=receipt.event_row_id, caller=principal)
        await _answer(send, 200, json.dumps(
            {"status": receipt.status, "event": receipt.event_row_id, "event_id": event.event_id,
             "event_status": receipt.event_status, "job": receipt.job_id},
            ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode("latin-1"))]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error_body(message: str, code: str | None) -> bytes:
    body = {"error": message} if code is None else {"error": message, "code": code}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _too_large(limit: int) -> bytes:
    return _error_body(f"body larger than events.max_body_bytes ({limit} bytes)", "TooLarge")


def routes(service: Service) -> list[BaseRoute]:
    cfg = service.settings.events
    credentials = EventCredentials(cfg)
    verifier = SignatureVerifier(cfg.jwks_url, cache_seconds=cfg.jwks_cache_seconds,
                                 refetch_seconds=cfg.jwks_refetch_seconds) if cfg.verify_signature else None
    max_attempts = service.settings.runtime.max_attempts
    limit = cfg.max_body_bytes

    def handled(event_type: str) -> bool:
        return event_type in service.event_handlers

    intake = EventIntake(credentials, verifier, events.EventWriter(service.db, handled=handled,
                                                                  max_attempts=max_attempts),
                         limit=limit, signature_header=cfg.signature_header, key_id_header=cfg.key_id_header)

    async def token(request: Request) -> Response:
        """RFC 6749 §4.4 client credentials; client authentication by Basic header or form body."""
        try:
            body = await _read_body(request, 16_384)
        except _TooLarge:
            return JSONResponse({"error": "invalid_request", "error_description": "body too large"}, 413)
        except ClientDisconnect:
            return JSONResponse({"error": "invalid_request"}, 400)
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20,
                                  strict_parsing=False))
        except (UnicodeDecodeError, ValueError):
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "body must be application/x-www-form-urlencoded"}, 400)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "only grant_type=client_credentials is supported"}, 400)
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic ":
            client_id, client_secret = _basic_pair(header) or ("", "")
        try:
            issued = credentials.issue(client_id, client_secret)
        except Unauthorized as exc:
            log.info("amazon_event.token_refused", reason=str(exc))
            return JSONResponse({"error": "invalid_client", "error_description": str(exc)}, 401,
                                headers={"WWW-Authenticate": "Basic"})
        return JSONResponse(issued, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def admin_list(request: Request) -> Response:
        params = request.query_params
        try:
            limit = min(int(params.get("limit", "100")), 1000)
            since = float(params["since"]) if "since" in params else None
        except ValueError:
            return _error(400, "limit and since must be numbers")
        views = events.list_events(service.db, since=since, status=params.get("status"),
                                   event_type=params.get("type"), order_id=params.get("order"), limit=limit)
        return JSONResponse([events.event_json(v) for v in views])

    def admin_replay(request: Request) -> Response:
        row_id = int(request.path_params["event"])
        try:
            result = events.replay(service.db, [row_id], max_attempts=max_attempts)
        except LookupError as exc:
            return _error(404, str(exc))
        return JSONResponse({"event": row_id, "job": result[row_id]}, status_code=200 if result[row_id] else 409)

    def admin(handler: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
        from primebridge.entrypoints.web import _authorised

        async def endpoint(request: Request) -> Response:
            if not _authorised(request, service.settings.web.admin_token):
                return _error(401, "missing or wrong admin bearer token")
            return await run_in_threadpool(handler, request)
        return endpoint

    return [
        Route(EVENTS_PATH, intake, methods=["POST"]),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route("/admin/events", admin(admin_list), methods=["GET"]),
        Route("/admin/events/{event:int}/replay", admin(admin_replay), methods=["POST"]),
    ]
