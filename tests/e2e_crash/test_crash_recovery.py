"""Exactly once under crashes: worker processes are SIGKILLed again and again in the middle of work.

Between ``save INTENT`` and ``createOrder``, between ``createOrder`` and the write-back, in the
middle of a claim: wherever a kill lands, the next worker must finish the order without creating a
second Amazon order, and every OMS order must end up carrying the right Amazon ids. The sandboxes
run in this process (with some latency, so kills land during calls); the workers are real
``primebridge serve --role worker`` processes on a shared SQLite file with a short lease.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from sqlalchemy import func, select

from primebridge.config import settings_from_dict
from primebridge.entrypoints.bootstrap import Service, build
from primebridge.runtime.tables import AuditRecord, Job, JobAttempt
from primebridge.sandbox.profile import sandbox_config
from primebridge.sandbox.seed import DEFAULT_SKUS, SandboxSeeder
from primebridge.sandbox.server import ThreadedServer, start_all
from tests.e2e.harness import spawn_serve, wait_worker_started

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ORDERS_PER_OMS = 100
KILLS = 22
HELD_EVERY = 4            # every 4th order is seeded on hold: 25 per OMS
RELEASE_PER_ROUND = 1     # held orders released in the OMS between two kills, per OMS
SEED = int(os.environ.get("PRIMEBRIDGE_CRASH_SEED", "20240611"))
# Enough latency that the 200 orders outlast the kills: every kill should land in the middle of work.
LATENCY_MS = {"amazon": 60, "sap": 10, "netsuite": 10}


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[dict[str, ThreadedServer]]:
    servers = start_all()
    for name, server in servers.items():
        httpx.put(f"{server.url}/_sandbox/knobs", json={"latency_ms": LATENCY_MS.get(name, 0)}).raise_for_status()
    yield servers
    for server in servers.values():
        server.stop()


def _running(service: Service) -> int:
    return service.queue.counts().get("running", 0)


def test_sigkilled_workers_create_every_amazon_order_exactly_once(
        sandboxes: dict[str, ThreadedServer], tmp_path: Path) -> None:
    rng = random.Random(SEED)
    urls = {name: server.url for name, server in sandboxes.items()}
    config = sandbox_config(
        amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"],
        store_url=f"sqlite:///{tmp_path / 'primebridge.db'}",
        overrides={
            "runtime.lease_seconds": 2.0, "runtime.worker_concurrency": 4,
            # Every kill costs the jobs it interrupts one attempt; crashes must not dead-letter here.
            "runtime.max_attempts": 100,
            "runtime.backoff_base_seconds": 0.1, "runtime.backoff_max_seconds": 0.5,
            "runtime.poll_interval_seconds": 0.1,
        })
    config_path = tmp_path / "primebridge.toml"
    config_path.write_text(tomli_w.dumps(config))
    service = build(settings_from_dict(config))
    seeder = SandboxSeeder(amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"])
    seeder.catalog(DEFAULT_SKUS)

    # -- seed 200 eligible orders, a quarter of them on hold, with some variety ------------------
    orders: dict[str, list[str]] = {"sap": [], "netsuite": []}
    held: dict[str, list[str]] = {"sap": [], "netsuite": []}
    for i in range(ORDERS_PER_OMS):
        on_hold = i % HELD_EVERY == 0
        options: dict[str, Any] = {"held": on_hold, "prime": i % 3 == 1, "lines": 2 if i % 5 == 2 else 1}
        sap_id = seeder.sap_order(material=DEFAULT_SKUS[i % len(DEFAULT_SKUS)], **options)
        ns_id = seeder.netsuite_order(item=DEFAULT_SKUS[(i + 1) % len(DEFAULT_SKUS)], **options)
        for oms, order_id in (("sap", sap_id), ("netsuite", ns_id)):
            orders[oms].append(order_id)
            if on_hold:
                held[oms].append(order_id)
    assert service.pull_orders("sap") == ORDERS_PER_OMS
    assert service.pull_orders("netsuite") == ORDERS_PER_OMS

    # -- kill workers again and again; release held orders between kills ------------------------
    to_release = {oms: rng.sample(ids, len(ids) - 5) for oms, ids in held.items()}  # 5 per OMS stay held
    released: dict[str, list[str]] = {"sap": [], "netsuite": []}
    kills, running_at_kill = 0, []
    for round_no in range(KILLS):
        log = tmp_path / f"worker-{round_no}.log"
        proc = spawn_serve(config_path, log)
        wait_worker_started(proc, log)
        time.sleep(rng.uniform(0.1, 0.9))
        running_at_kill.append(_running(service))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        for oms, release in (("sap", seeder.sap_release), ("netsuite", seeder.netsuite_release)):
            batch = to_release[oms][:RELEASE_PER_ROUND]
            del to_release[oms][:RELEASE_PER_ROUND]
            for order_id in batch:
                release(order_id)
                released[oms].append(order_id)
            if batch:
                service.pull_orders(oms)
    for oms, release in (("sap", seeder.sap_release), ("netsuite", seeder.netsuite_release)):
        for order_id in to_release[oms]:
            release(order_id)
            released[oms].append(order_id)
        service.pull_orders(oms)
    # One last kill that surely leaves jobs "running" under leases that have not expired yet.
    log = tmp_path / "worker-last.log"
    proc = spawn_serve(config_path, log)
    wait_worker_started(proc, log)
    deadline = time.monotonic() + 10
    while _running(service) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    running_at_kill.append(_running(service))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    kills += 1

    # -- finally one worker until the queue is idle ----------------------------------------------
    # Jobs of the last killed worker are still "running" under a lease that has not expired yet:
    # run_until_idle must wait for them to be reaped and finished, not call the queue idle.
    service.worker(name="final").run_until_idle(timeout=120)

    counts = service.queue.counts()
    with service.db.transaction() as session:
        attempts = session.execute(select(
            JobAttempt.job_id, JobAttempt.status, JobAttempt.started_at, JobAttempt.finished_at,
            Job.ordering_key,
        ).join(Job, Job.id == JobAttempt.job_id).order_by(JobAttempt.started_at)).all()
        per_job = Counter(a.job_id for a in attempts)
        jobs_total = session.scalar(select(func.count()).select_from(Job))
        adopted = session.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.operation == "adopt"))
        not_done = session.execute(select(Job.id, Job.status, Job.ordering_key, Job.last_error).where(
            Job.status != "done")).all()
    interrupted = sum(1 for a in attempts if a.finished_at is None)
    print(f"\ncrash test (seed {SEED}): {kills} kills; running jobs at each kill: {running_at_kill}")
    print(f"jobs {jobs_total}, attempts {len(attempts)}, interrupted by a kill {interrupted}, "
          f"lease-lost reports {sum(1 for a in attempts if a.status == 'lease-lost')}, "
          f"jobs with >1 attempt {sum(1 for n in per_job.values() if n > 1)}, "
          f"max attempts of one job {max(per_job.values())}, orders adopted by alias {adopted}")

    # -- the queue: everything done, nothing stuck, nothing dead --------------------------------
    assert not not_done, f"jobs not done: {not_done[:10]}"
    assert set(counts) == {"done"}, counts
    assert interrupted > 0, "no kill landed while a job was running: the test did not test crashes"
    assert sum(1 for n in running_at_kill if n) >= 20, f"too few kills mid-work: {running_at_kill}"

    # -- per order: the attempts that finished never overlapped, and ran in job order -------------
    # (an attempt cut short by a kill has no end; one whose worker lost its lease may overlap by design)
    by_key: dict[str, list[Any]] = defaultdict(list)
    for attempt in attempts:
        if attempt.finished_at is not None:
            by_key[attempt.ordering_key].append(attempt)
    for key, seq in by_key.items():
        if any(a.status == "lease-lost" for a in seq):
            continue
        for previous, current in pairwise(seq):
            assert current.started_at >= previous.finished_at, \
                f"{key}: attempts of jobs {previous.job_id} and {current.job_id} overlap"
            assert current.job_id >= previous.job_id, f"{key}: {current.job_id} ran after {previous.job_id}"

    # -- Amazon: one order per OMS order, no alias twice -----------------------------------------
    amazon_orders = seeder.amazon_orders()
    by_alias: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for order in amazon_orders:
        for alias in order["aliases"]:
            by_alias[(alias["aliasType"], alias["aliasId"])].append(order)
    twice = {alias: [o["id"] for o in found] for alias, found in by_alias.items() if len(found) > 1}
    assert not twice, f"aliases on more than one Amazon order: {twice}"
    assert len(amazon_orders) == 2 * ORDERS_PER_OMS

    # -- the OMSs: the right Amazon order id and every line id written back -----------------------
    read_back = {"sap": seeder.sap_amazon_ids, "netsuite": seeder.netsuite_amazon_ids}
    for oms, ids in orders.items():
        policy = service.oms[oms].policy
        for order_id in ids:
            found = by_alias.get((policy.alias_type, order_id))
            assert found, f"{oms} order {order_id} has no Amazon order"
            amazon = found[0]
            amazon_id, line_ids = read_back[oms](order_id)
            assert amazon_id == amazon["id"], f"{oms} {order_id}: {amazon_id} written, {amazon['id']} exists"
            expected = {}
            for line in amazon["lineItems"]:
                for alias in line["aliases"]:
                    if alias["aliasType"] == policy.line_alias_type:
                        expected[alias["aliasId"].split("/", 1)[1]] = line["id"]
            assert expected and line_ids == expected, f"{oms} {order_id}: line ids {line_ids} != {expected}"
            state = amazon["metadata"]["executionState"]
            still_held = order_id in held[oms] and order_id not in released[oms]
            assert state == ("NOT_STARTED" if still_held else "STARTED"), f"{oms} order {order_id} is {state}"
    assert sum(len(v) for v in released.values()) == sum(len(v) for v in held.values()) - 10
    service.close()
