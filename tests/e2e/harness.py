"""End-to-end harness: the three sandboxes once per module, a fresh primebridge per test.

The service is the real one (``bootstrap.build`` with ``sandbox_settings``) and its ASGI app is
served over real HTTP, so a test drives primebridge exactly as SAP, NetSuite and an operator do.
Sandboxes are reset before each test (the Amazon catalogue survives a reset), so order numbers,
Amazon aliases and stats never leak from one test into the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from primebridge.entrypoints.bootstrap import Service, build
from primebridge.entrypoints.web import create_app
from primebridge.runtime.store import order_key
from primebridge.runtime.tables import Job, Message
from primebridge.sandbox.profile import sandbox_settings
from primebridge.sandbox.seed import DEFAULT_SKUS, SandboxSeeder
from primebridge.sandbox.server import ThreadedServer, free_port, start_all

WAIT_SECONDS = 20.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Polls until ``condition()`` is truthy; the timeout only bounds a broken run, it asserts nothing
    about speed."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


def sap_event(order_id: str, *, event_id: str | None = None, change: str = "Changed") -> dict[str, Any]:
    return {"specversion": "1.0", "type": f"sap.s4.beh.salesorder.v1.SalesOrder.{change}.v1",
            "source": "/default/sap.s4.beh/e2e", "id": event_id or str(uuid.uuid4()),
            "datacontenttype": "application/json", "data": {"SalesOrder": order_id}}


def sap_soap(order_id: str) -> str:
    return ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            f'<n0:SalesOrderNotification xmlns:n0="urn:e2e"><SalesOrder><ID>{order_id}</ID></SalesOrder>'
            '</n0:SalesOrderNotification></soapenv:Body></soapenv:Envelope>')


def netsuite_event(order_id: str, *, event_id: str | None = None) -> dict[str, Any]:
    return {"recordType": "salesorder", "id": order_id, "event": "edit",
            "eventId": event_id or str(uuid.uuid4())}


@dataclass
class Sandboxes:
    servers: dict[str, ThreadedServer]
    seeder: SandboxSeeder

    @property
    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def reset(self) -> None:
        http = self.seeder.http
        for url in self.urls.values():
            http.post(f"{url}/_sandbox/reset").raise_for_status()
            http.put(f"{url}/_sandbox/knobs", json={"throttle_rate": 0, "error_rate": 0, "latency_ms": 0,
                                                     "retry_after_seconds": 1}).raise_for_status()
        self.seeder.catalog(DEFAULT_SKUS)  # a reset restores only the catalogue given at start


@dataclass
class Bridge:
    """One primebridge service, its ASGI app over HTTP, and helpers to look at its jobs."""

    service: Service
    server: ThreadedServer
    http: httpx.Client
    seeder: SandboxSeeder
    _threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    # -- driving -----------------------------------------------------------------------------------

    def post(self, path: str, body: Any = None, *, content: str | bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        if content is not None:
            return self.http.post(path, content=content, headers=headers)
        return self.http.post(path, json=body, headers=headers)

    def push_sap(self, order_id: str, **kwargs: Any) -> httpx.Response:
        return self.post("/events/sap/business-events", sap_event(order_id, **kwargs))

    def push_netsuite(self, order_id: str, **kwargs: Any) -> httpx.Response:
        return self.post("/events/netsuite", netsuite_event(order_id, **kwargs))

    def push(self, oms: str, order_id: str) -> httpx.Response:
        """The OMS's own change event for the order (tests written once for both OMSs)."""
        return self.push_sap(order_id) if oms == "sap" else self.push_netsuite(order_id)

    def run_until_idle(self) -> None:
        self.service.worker(name="e2e").run_until_idle(timeout=WAIT_SECONDS)

    def start_worker(self) -> None:
        """A worker in the background, for tests that change a sandbox while jobs are retried."""
        stop = threading.Event()
        thread = threading.Thread(target=self.service.worker(name="e2e-bg").run, args=(stop,), daemon=True)
        thread.start()
        self._threads.append((thread, stop))

    def stop_workers(self) -> None:
        for thread, stop in self._threads:
            stop.set()
            thread.join(timeout=10)
        self._threads.clear()

    # -- looking -----------------------------------------------------------------------------------

    def jobs(self, oms: str | None = None, order_id: str | None = None) -> list[Job]:
        with self.service.db.transaction() as session:
            query = select(Job).order_by(Job.id)
            if oms and order_id:
                query = query.where(Job.ordering_key == order_key(oms, order_id))
            return list(session.scalars(query).all())

    def job(self, job_id: int) -> Job:
        with self.service.db.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None, f"job {job_id} does not exist"
            return job

    def message_count(self) -> int:
        with self.service.db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Message)) or 0)

    def amazon_orders_for(self, oms: str, order_id: str) -> list[dict[str, Any]]:
        alias_type = self.service.oms[oms].policy.alias_type
        return [o for o in self.seeder.amazon_orders()
                if {"aliasType": alias_type, "aliasId": order_id} in (o.get("aliases") or [])]

    def amazon_ids(self, oms: str, order_id: str) -> tuple[str | None, dict[str, str]]:
        """The Amazon order and line ids as written back into the OMS order."""
        read_back = self.seeder.sap_amazon_ids if oms == "sap" else self.seeder.netsuite_amazon_ids
        return read_back(order_id)

    def close(self) -> None:
        self.stop_workers()
        self.http.close()
        self.server.stop()
        self.service.close()


def assert_fulfilled(bridge: Bridge, oms: str, order_id: str, state: str = "STARTED") -> dict[str, Any]:
    """Exactly one Amazon order for the OMS order, in ``state``, and its ids written back to the OMS."""
    amazon = bridge.amazon_orders_for(oms, order_id)
    assert len(amazon) == 1, f"expected one Amazon order for {oms} order {order_id}, got {len(amazon)}"
    order = amazon[0]
    assert order["metadata"]["executionState"] == state
    header, lines = bridge.amazon_ids(oms, order_id)
    assert header == order["id"]
    assert set(lines.values()) == {line["id"] for line in order["lineItems"]}
    return order


def make_bridge(sandboxes: Sandboxes, store_url: str, *, overrides: dict[str, Any] | None = None,
                urls: dict[str, str] | None = None) -> Bridge:
    """``urls`` replaces sandbox URLs (e.g. SAP at a closed port) for a second, broken service."""
    where = {**sandboxes.urls, **(urls or {})}
    settings = sandbox_settings(amazon_url=where["amazon"], sap_url=where["sap"],
                                netsuite_url=where["netsuite"], store_url=store_url, overrides=overrides)
    service = build(settings)
    server = ThreadedServer(create_app(service), name="primebridge-e2e").start()
    return Bridge(service=service, server=server, http=httpx.Client(base_url=server.url, timeout=10.0),
                  seeder=sandboxes.seeder)


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[Sandboxes]:
    servers = start_all()
    seeder = SandboxSeeder(amazon_url=servers["amazon"].url, sap_url=servers["sap"].url,
                           netsuite_url=servers["netsuite"].url)
    try:
        yield Sandboxes(servers, seeder)
    finally:
        seeder.close()
        for server in servers.values():
            server.stop()


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite by default; tests parametrise it indirectly with ``"postgres"`` for the key paths."""
    if request.param == "postgres":
        request.getfixturevalue("pg_db")  # migrated and truncated
        return str(request.getfixturevalue("pg_database_url"))
    return f"sqlite:///{tmp_path / 'primebridge.db'}"


@pytest.fixture
def bridge(sandboxes: Sandboxes, store_url: str) -> Iterator[Bridge]:
    sandboxes.reset()
    made = make_bridge(sandboxes, store_url)
    try:
        yield made
    finally:
        made.close()


BOTH_STORES = pytest.mark.parametrize(
    "store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


# -- primebridge in a child process --------------------------------------------------------------------


def spawn_serve(config: Path, log: Path, *, role: str = "worker") -> subprocess.Popen[bytes]:
    """``primebridge serve --role <role>`` as a real process, configured by ``config`` alone: the test
    run's own ``PRIMEBRIDGE__`` overrides are stripped so they cannot change what the child does.
    Its output goes to ``log`` (a file, so a chatty child never blocks on a full pipe)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMEBRIDGE__")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "primebridge.entrypoints.cli", "serve", "--role", role, "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=config.parent)


def wait_worker_started(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Until the worker loop runs: kills are timed from there, not from the (slow) interpreter start."""
    try:
        wait_for(lambda: b"worker.start" in log.read_bytes() or proc.poll() is not None,
                 "a worker process to start", timeout=timeout)
    except AssertionError:
        proc.kill()
        raise AssertionError(f"worker did not start within {timeout}s:\n{log.read_text()[-3000:]}") from None
    assert proc.poll() is None, f"worker exited with {proc.returncode} before starting:\n{log.read_text()[-3000:]}"
