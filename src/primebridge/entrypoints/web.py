"""The one ASGI app: event intake from the OMSs, the admin API, a status page, health and metrics.

Intake handlers are plain ``def`` functions (Starlette runs them in its thread pool) because the
store is synchronous; each stores the message and its job in one transaction, then answers 202.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from primebridge.config import Secret
from primebridge.domain.errors import Rejected
from primebridge.entrypoints.bootstrap import Service
from primebridge.runtime.intake import accept_order_change
from primebridge.runtime.tables import Job, JobAttempt

log = structlog.get_logger(__name__)
MAX_BODY = 1_000_000


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _authorised(request: Request, secret: Secret | None) -> bool:
    if secret is None:
        return True
    expected = secret.reveal()
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-primebridge-token", "")
    return hmac.compare_digest(token.encode(), expected.encode())


class _Metrics:
    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("primebridge_messages_total", "Inbound messages by source and status",
                                ["source", "status"], registry=self.registry)
        queue = service.queue

        class _QueueCollector:
            def collect(self) -> Any:
                gauge = GaugeMetricFamily("primebridge_jobs", "Jobs by status", labels=["status"])
                for status, count in queue.counts().items():
                    gauge.add_metric([status], count)
                yield gauge

        self.registry.register(_QueueCollector())


def create_app(service: Service) -> Starlette:
    settings = service.settings
    metrics = _Metrics(service)
    max_attempts = settings.runtime.max_attempts

    def intake(source: str, oms: str, parse: Callable[[bytes], tuple[str, str | None]]) -> Any:
        async def endpoint(request: Request) -> Response:
            if not _authorised(request, settings.web.intake_token):
                return _error(401, "missing or wrong bearer token")
            if oms not in service.fulfill:
                return _error(404, f"{oms} is not enabled in this primebridge")
            body = await request.body()
            if len(body) > MAX_BODY:
                return _error(413, f"body larger than {MAX_BODY} bytes")
            try:
                order_id, source_id = parse(body)
            except Rejected as exc:
                metrics.messages.labels(source, "malformed").inc()
                return _error(400, exc.reason)
            from starlette.concurrency import run_in_threadpool

            receipt = await run_in_threadpool(
                accept_order_change, service.db, source=source,
                source_id=source_id or f"{uuid.uuid4()}", kind="sales_order_changed",
                payload=body.decode("utf-8", errors="replace"), oms=oms, order_id=order_id,
                max_attempts=max_attempts)
            metrics.messages.labels(source, receipt.status).inc()
            log.info("intake.accepted", source=source, order_id=order_id, status=receipt.status,
                     message_id=receipt.message_id)
            return JSONResponse({"status": receipt.status, "message_id": receipt.message_id,
                                 "order_id": order_id, "jobs": receipt.jobs}, status_code=202)
        return endpoint

    def parse_sap_event(body: bytes) -> tuple[str, str | None]:
        from primebridge.connectors.sap.soap import parse_business_event

        payload = _json(body)
        order_id = parse_business_event(payload)
        event_id = payload.get("id") if isinstance(payload, dict) else None
        return order_id, f"cloudevent:{event_id}" if event_id else None

    def parse_sap_soap(body: bytes) -> tuple[str, str | None]:
        from primebridge.connectors.sap.soap import parse_sales_order_notification

        order_id = parse_sales_order_notification(body)
        # SOAP notifications carry no reliable message id in every release; the body digest makes a
        # redelivery of the same message a duplicate while a later change (new body) is not.
        return order_id, "soap:" + hashlib.sha256(body).hexdigest()

    def parse_netsuite(body: bytes) -> tuple[str, str | None]:
        payload = _json(body)
        if not isinstance(payload, dict):
            raise Rejected("body must be a JSON object with recordType, id and event")
        record_type = payload.get("recordType")
        record_id = payload.get("id")
        if record_type not in ("salesorder", "salesOrder"):
            raise Rejected(f"recordType must be salesorder, got {record_type!r}")
        if not isinstance(record_id, str | int) or not str(record_id).strip().isdigit():
            raise Rejected(f"id must be a NetSuite internal id (digits), got {record_id!r}")
        event_id = payload.get("eventId")
        return str(record_id).strip(), f"ue:{event_id}" if event_id else None

    def admin(handler: Callable[[Request], Response]) -> Any:
        async def endpoint(request: Request) -> Response:
            if not _authorised(request, settings.web.admin_token):
                return _error(401, "missing or wrong admin bearer token")
            from starlette.concurrency import run_in_threadpool

            try:
                return await run_in_threadpool(handler, request)
            except LookupError as exc:
                return _error(404, str(exc))
        return endpoint

    def list_jobs(request: Request) -> Response:
        status = request.query_params.get("status")
        limit = min(int(request.query_params.get("limit", "100")), 1000)
        return JSONResponse([_job_json(j) for j in _jobs(service, status, limit)])

    def show_job(request: Request) -> Response:
        job, attempts = job_detail(service, int(request.path_params["job_id"]))
        return JSONResponse({**_job_json(job), "attempts": [
            {"attempt": a.attempt, "worker": a.worker, "status": a.status, "error": a.error,
             "started_at": a.started_at, "finished_at": a.finished_at} for a in attempts]})

    def requeue(reset: bool) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            job_id = int(request.path_params["job_id"])
            done = service.queue.requeue(job_id, reset_attempts=reset)
            return JSONResponse({"job_id": job_id, "requeued": done},
                                status_code=200 if done else 409)
        return handler

    def audit(request: Request) -> Response:
        rows = service.audit.for_order(request.path_params["order"])
        return JSONResponse([{"at": r.at, "system": r.system, "operation": r.operation,
                              "status": r.status, "http_status": r.http_status,
                              "duration_ms": r.duration_ms, "oms_order_id": r.oms_order_id,
                              "amazon_order_id": r.amazon_order_id, "job_id": r.job_id,
                              "request": r.request, "response": r.response} for r in rows])

    def page(request: Request) -> Response:
        counts = service.queue.counts()
        rows = "".join(
            f"<tr><td>{j.id}</td><td>{html.escape(j.kind)}</td><td>{html.escape(j.ordering_key)}</td>"
            f"<td class='{j.status}'>{j.status}</td><td>{j.attempts}</td>"
            f"<td>{html.escape((j.outcome or j.last_error or '')[:160])}</td></tr>"
            for j in _jobs(service, None, 50))
        summary = " · ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no jobs yet"
        return HTMLResponse(_PAGE.format(summary=html.escape(summary), rows=rows))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "time": time.time()})

    async def metrics_endpoint(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/events/sap/business-events", intake("sap-event", "sap", parse_sap_event), methods=["POST"]),
        Route("/events/sap/soap", intake("sap-soap", "sap", parse_sap_soap), methods=["POST"]),
        Route("/events/netsuite", intake("netsuite-ue", "netsuite", parse_netsuite), methods=["POST"]),
        Route("/admin/jobs", admin(list_jobs), methods=["GET"]),
        Route("/admin/jobs/{job_id:int}", admin(show_job), methods=["GET"]),
        Route("/admin/jobs/{job_id:int}/retry", admin(requeue(False)), methods=["POST"]),
        Route("/admin/jobs/{job_id:int}/replay", admin(requeue(True)), methods=["POST"]),
        Route("/admin/audit/{order}", admin(audit), methods=["GET"]),
        Route("/", admin(page), methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    from primebridge.entrypoints import web_amazon_events

    # First: the router tries routes in order, and the Amazon event intake takes most requests.
    routes = web_amazon_events.routes(service) + routes
    return Starlette(routes=routes)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Rejected(f"body is not valid JSON: {exc}") from None


def _jobs(service: Service, status: str | None, limit: int) -> list[Job]:
    with service.db.transaction() as session:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if status:
            query = query.where(Job.status == status)
        return list(session.scalars(query).all())


def job_detail(service: Service, job_id: int) -> tuple[Job, list[JobAttempt]]:
    with service.db.transaction() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        attempts = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)
                                   .order_by(JobAttempt.id)).all()
        return job, list(attempts)


def _job_json(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "ordering_key": job.ordering_key,
            "payload": json.loads(job.payload), "status": job.status, "attempts": job.attempts,
            "max_attempts": job.max_attempts, "next_attempt_at": job.next_attempt_at,
            "last_error": job.last_error, "outcome": job.outcome, "message_id": job.message_id,
            "created_at": job.created_at, "updated_at": job.updated_at}


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>primebridge</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25rem .5rem;font-size:.9rem}}.dead,.rejected{{color:#b00}}
.done{{color:#070}}</style></head><body><h1>primebridge</h1><p>{summary}</p>
<table><tr><th>job</th><th>kind</th><th>order</th><th>status</th><th>attempts</th><th>outcome / error</th></tr>
{rows}</table></body></html>"""
