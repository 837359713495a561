"""Three worker processes on one PostgreSQL database: no order twice, and one order's jobs in order.

The queue's two promises under real concurrency (``FOR UPDATE SKIP LOCKED`` across processes):
a job is never run by two workers at once and no Amazon order is created twice; the jobs of one
order run one after the other in the order they were enqueued, which the ``job_attempts`` table
proves after the fact (no two attempts of one ordering key overlap, job ids never go backwards).
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from sqlalchemy import select

from primebridge.config import settings_from_dict
from primebridge.entrypoints.bootstrap import build
from primebridge.runtime import jobs
from primebridge.runtime.db import Database
from primebridge.runtime.intake import accept_order_change
from primebridge.runtime.store import SYNC_ORDER, order_key
from primebridge.runtime.tables import Job, JobAttempt
from primebridge.sandbox.profile import sandbox_config
from primebridge.sandbox.seed import DEFAULT_SKUS, SandboxSeeder
from primebridge.sandbox.server import ThreadedServer, start_all
from tests.e2e.harness import spawn_serve

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

ORDERS_PER_OMS = 250
WORKERS = 3
HELD_EVERY = 5
# A NetSuite account's concurrency limit is shared by every process; three workers with the
# connector's default of 4 requests each need an account with 15 slots (SuiteCloud Plus).
NETSUITE_ACCOUNT_LIMIT = 15


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[dict[str, str]]:
    servers: dict[str, ThreadedServer] = start_all()
    urls = {name: server.url for name, server in servers.items()}
    httpx.put(f"{urls['amazon']}/_sandbox/knobs", json={"latency_ms": 10}).raise_for_status()
    httpx.put(f"{urls['netsuite']}/_sandbox/governance",
              json={"concurrency_limit": NETSUITE_ACCOUNT_LIMIT}).raise_for_status()
    yield urls
    for server in servers.values():
        server.stop()


def _wait(predicate: Any, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in logs)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tails}")


def test_three_workers_share_the_queue_without_duplicates_or_reordering(
        sandboxes: dict[str, str], pg_db: Database, pg_database_url: str, tmp_path: Path) -> None:
    config = sandbox_config(
        amazon_url=sandboxes["amazon"], sap_url=sandboxes["sap"], netsuite_url=sandboxes["netsuite"],
        store_url=pg_database_url,
        overrides={"runtime.worker_concurrency": 4, "runtime.max_attempts": 50,
                   "runtime.backoff_base_seconds": 0.1, "runtime.backoff_max_seconds": 1.0,
                   "runtime.poll_interval_seconds": 0.2})
    config_path = tmp_path / "primebridge.toml"
    config_path.write_text(tomli_w.dumps(config))
    service = build(settings_from_dict(config))
    seeder = SandboxSeeder(amazon_url=sandboxes["amazon"], sap_url=sandboxes["sap"],
                           netsuite_url=sandboxes["netsuite"])
    seeder.catalog(DEFAULT_SKUS)

    orders: dict[str, list[str]] = {"sap": [], "netsuite": []}
    held: dict[str, list[str]] = {"sap": [], "netsuite": []}
    for i in range(ORDERS_PER_OMS):
        options: dict[str, Any] = {"held": i % HELD_EVERY == 0, "prime": i % 2 == 1,
                                   "lines": 2 if i % 7 == 3 else 1}
        sap_id = seeder.sap_order(material=DEFAULT_SKUS[i % len(DEFAULT_SKUS)], **options)
        ns_id = seeder.netsuite_order(item=DEFAULT_SKUS[i % len(DEFAULT_SKUS)], **options)
        for oms, order_id in (("sap", sap_id), ("netsuite", ns_id)):
            orders[oms].append(order_id)
            if options["held"]:
                held[oms].append(order_id)

    # Two jobs per order before any worker runs: the scheduled pull's, then a push's. Coalescing
    # would fold the push into the waiting pull job; it is bypassed here so that every ordering key
    # has two jobs waiting and the workers have to respect their order.
    assert service.pull_orders("sap") == ORDERS_PER_OMS
    assert service.pull_orders("netsuite") == ORDERS_PER_OMS
    with service.db.transaction() as session:
        for oms, ids in orders.items():
            for order_id in ids:
                jobs.enqueue(session, SYNC_ORDER, {"oms": oms, "order_id": order_id},
                             ordering_key=order_key(oms, order_id), max_attempts=50, coalesce=False)

    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    procs = [spawn_serve(config_path, log) for log in logs]
    try:
        total = 4 * ORDERS_PER_OMS
        _wait(lambda: service.queue.counts().get("done", 0) >= total // 3, 120, "a third of the jobs", logs)
        # The holds are lifted in the OMS while the workers are busy: a push for each (through the
        # intake, as the web app stores it), then a pull that sees the same changes.
        for oms, release in (("sap", seeder.sap_release), ("netsuite", seeder.netsuite_release)):
            for order_id in held[oms]:
                release(order_id)
                accept_order_change(service.db, source=f"{oms}-test", source_id=f"release:{uuid.uuid4()}",
                                    kind="sales_order_changed", payload="{}", oms=oms, order_id=order_id,
                                    max_attempts=50)
            service.pull_orders(oms)

        def idle() -> bool:
            counts = service.queue.counts()
            return counts.get("queued", 0) == 0 and counts.get("running", 0) == 0
        _wait(idle, 150, "the queue to drain", logs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    with service.db.transaction() as session:
        job_rows = {j.id: j for j in session.scalars(select(Job)).all()}
        attempt_rows = session.scalars(select(JobAttempt).order_by(JobAttempt.started_at)).all()
        attempts = [(a.job_id, a.worker, a.started_at, a.finished_at, a.status) for a in attempt_rows]
        not_done = [(j.id, j.status, j.last_error) for j in job_rows.values() if j.status != "done"]
    service.close()

    assert not not_done, f"jobs not done: {not_done[:10]}"
    per_worker: dict[str, int] = defaultdict(int)
    for _, worker, *_rest in attempts:
        per_worker[worker] += 1
    jobs_per_key: dict[str, int] = defaultdict(int)
    for job in job_rows.values():
        jobs_per_key[job.ordering_key] += 1
    print(f"\n{len(job_rows)} jobs, {len(attempts)} attempts; attempts per worker: {dict(per_worker)}; "
          f"keys with 3+ jobs: {sum(1 for n in jobs_per_key.values() if n >= 3)}")
    assert len(per_worker) == WORKERS and all(n > 0 for n in per_worker.values()), per_worker
    assert all(n >= 2 for n in jobs_per_key.values())

    # -- per ordering key: attempts never overlap, and jobs start in id order -------------------
    by_key: dict[str, list[tuple[int, str, float, float | None, str]]] = defaultdict(list)
    for attempt in attempts:
        by_key[job_rows[attempt[0]].ordering_key].append(attempt)
    for key, seq in by_key.items():
        for previous, current in pairwise(seq):
            assert previous[3] is not None, f"{key}: attempt of job {previous[0]} never finished"
            assert current[2] >= previous[3], (
                f"{key}: job {current[0]} ({current[1]}) started at {current[2]:.6f} before job "
                f"{previous[0]} ({previous[1]}) finished at {previous[3]:.6f}")
            assert current[0] >= previous[0], f"{key}: job {current[0]} ran after job {previous[0]}"

    # -- Amazon: one order per OMS order; the OMSs carry its ids; held orders were released -----
    amazon_orders = seeder.amazon_orders()
    by_alias: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for order in amazon_orders:
        for alias in order["aliases"]:
            by_alias[(alias["aliasType"], alias["aliasId"])].append(order)
    assert not [a for a, found in by_alias.items() if len(found) > 1], "an alias is on two Amazon orders"
    assert len(amazon_orders) == 2 * ORDERS_PER_OMS
    read_back = {"sap": seeder.sap_amazon_ids, "netsuite": seeder.netsuite_amazon_ids}
    for oms, ids in orders.items():
        policy = service.oms[oms].policy
        for order_id in ids:
            found = by_alias.get((policy.alias_type, order_id))
            assert found, f"{oms} order {order_id} has no Amazon order"
            amazon_id, line_ids = read_back[oms](order_id)
            assert amazon_id == found[0]["id"], f"{oms} {order_id}: wrote {amazon_id}, is {found[0]['id']}"
            assert sorted(line_ids.values()) == sorted(line["id"] for line in found[0]["lineItems"])
            assert found[0]["metadata"]["executionState"] == "STARTED", f"{oms} order {order_id} not released"
