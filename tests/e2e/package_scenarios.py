"""Amazon package events end to end, written once for both OMSs (test_package_events.py runs them
for each).

The path is the real one: an OMS order is fulfilled with Amazon; the Amazon sandbox's package
mutation moves its packages; the sandbox delivers the events to primebridge's ``/events/amazon``
with Basic auth (with duplicates and reordering switched on where a test says so); a worker turns
them into OMS documents; the OMS sandbox is read back. The end state is checked in the OMS, never in
primebridge's own tables.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from sqlalchemy import select

from primebridge.demo_packages import (
    OmsDocument,
    SandboxPackages,
    netsuite_documents,
    sap_documents,
    subscribe_package_events,
)
from primebridge.ports import Notification
from primebridge.runtime.tables import Job, JobAttempt
from primebridge.sandbox.profile import sandbox_config
from tests.e2e.harness import WAIT_SECONDS, Bridge, Sandboxes, spawn_serve, wait_worker_started

DELIVERY_KNOBS_DEFAULT = {"delay_ms": 0, "reorder_window_ms": 0, "duplicate_rate": 0, "failure_rate": 0,
                          "concurrency": 1, "seed": None}


@dataclass
class RecordingNotifier:
    sent: list[Notification] = field(default_factory=list)

    def notify(self, notification: Notification) -> None:
        self.sent.append(notification)


@dataclass
class PackageWorld:
    oms: str
    bridge: Bridge
    sandboxes: Sandboxes
    amazon: SandboxPackages
    http: httpx.Client
    notifier: RecordingNotifier

    # -- set-up ------------------------------------------------------------------------------------

    def delivery_knobs(self, **knobs: Any) -> None:
        self.http.put(f"{self.sandboxes.urls['amazon']}/_sandbox/delivery/knobs",
                      json={**DELIVERY_KNOBS_DEFAULT, **knobs}).raise_for_status()

    def fulfilled_order(self, qty: int = 1) -> tuple[str, str]:
        """An OMS order fulfilled with Amazon: (OMS order id, Amazon order id)."""
        seeder = self.bridge.seeder
        order_id = (seeder.sap_order(qty=str(qty)) if self.oms == "sap" else seeder.netsuite_order(qty=str(qty)))
        self.bridge.service.fulfill[self.oms].sync_order(order_id)
        link = self.bridge.service.store.get_order_link(self.oms, order_id)
        assert link is not None and link.amazon_order_id, f"{self.oms} order {order_id} was not fulfilled"
        return order_id, link.amazon_order_id

    def settle(self) -> None:
        """Every published event delivered, then every job finished."""
        response = self.http.post(f"{self.sandboxes.urls['amazon']}/_sandbox/deliveries/drain",
                                  params={"timeout": WAIT_SECONDS})
        response.raise_for_status()
        assert response.json()["drained"], response.json()
        self.bridge.run_until_idle()

    # -- reading back ------------------------------------------------------------------------------

    def documents(self, order_id: str) -> list[OmsDocument]:
        settings = self.bridge.service.settings
        if self.oms == "sap":
            return sap_documents(self.http, self.sandboxes.urls["sap"], order_id, settings.sap.shipments)
        return netsuite_documents(self.http, self.sandboxes.urls["netsuite"], order_id, settings.netsuite.shipments)

    def document(self, order_id: str, package_id: str) -> OmsDocument:
        found = [d for d in self.documents(order_id) if d.package_id == package_id]
        assert len(found) == 1, f"{self.oms} order {order_id}: {len(found)} documents for package {package_id}"
        return found[0]

    def order_lines(self, order_id: str) -> list[dict[str, Any]]:
        if self.oms == "sap":
            return list(self.bridge.seeder.sap_view(order_id)["items"])
        return list(self.bridge.seeder.netsuite_view(order_id)["item"]["items"])

    def line_state(self, order_id: str) -> tuple[Decimal, bool]:
        """(ordered quantity, cancelled in full) of the order's only line."""
        [line] = self.order_lines(order_id)
        if self.oms == "sap":
            return Decimal(str(line["RequestedQuantity"])), bool(line.get("SalesDocumentRjcnReason"))
        return Decimal(str(line["quantity"])), bool(line.get("isClosed"))

    def event_jobs(self) -> list[Job]:
        return [job for job in self.bridge.jobs() if job.kind == "amazon.event"]

    def publish_to_primebridge(self, event: dict[str, Any], *, event_id: str | None = None) -> httpx.Response:
        """Post an event as the sandbox delivers it (webhook envelope, Basic auth)."""
        cfg = self.bridge.service.settings.events
        assert cfg.basic_password is not None
        body = {"eventId": event_id or event["eventId"], "eventDescriptor": event["eventType"],
                "resources": event["resources"], "eventTime": event["eventTime"], "apiVersion": "2024-11-01",
                "data": event.get("data") or {}}
        return self.bridge.http.post("/events/amazon", json=body,
                                     auth=(cfg.basic_username, cfg.basic_password.reveal()))

    def published(self, amazon_order_id: str, event_type: str) -> list[dict[str, Any]]:
        events = self.http.get(f"{self.sandboxes.urls['amazon']}/_sandbox/events").json()
        return [e for e in events if e["eventType"] == event_type
                and any(f"/order/{amazon_order_id}/" in r for r in e["resources"])]


def package_world(oms: str, bridge: Bridge, sandboxes: Sandboxes, *, subscribe: bool = True) -> Iterator[PackageWorld]:
    amazon = SandboxPackages(bridge.service.settings.amazon)
    http = httpx.Client(timeout=WAIT_SECONDS)
    notifier = RecordingNotifier()
    events = bridge.service.package_events
    assert events is not None, "package events are not wired for any OMS"
    events.updates.notifier = notifier
    world = PackageWorld(oms, bridge, sandboxes, amazon, http, notifier)
    world.delivery_knobs()
    if subscribe:
        subscribe_package_events(bridge.service.settings, f"{bridge.server.url}/events/amazon")
    try:
        yield world
    finally:
        world.delivery_knobs()
        amazon.close()
        http.close()


# -- scenarios -------------------------------------------------------------------------------------


def every_event_type_with_duplicates_and_reordering(world: PackageWorld) -> None:
    """Delivered, lost, undeliverable, cancelled before shipping, split (part cancelled, part shipped),
    split into two shipped packages: with the sandbox sending half of the deliveries twice and
    letting events overtake each other, while a worker runs."""
    # About 15 deliveries at a rate of one half: the chance that none is sent twice is 3e-5.
    world.delivery_knobs(duplicate_rate=0.5, reorder_window_ms=120, concurrency=3)
    amazon = world.amazon
    delivered, lost, undeliverable, cancelled = (world.fulfilled_order() for _ in range(4))
    part_cancelled = world.fulfilled_order(qty=3)
    two_packages = world.fulfilled_order(qty=2)
    world.bridge.start_worker()

    p_delivered = amazon.only_package(delivered[1]).package_id
    amazon.ship(delivered[1], p_delivered)
    amazon.milestone(delivered[1], p_delivered, "OUT_FOR_DELIVERY")
    amazon.milestone(delivered[1], p_delivered, "DELIVERED")  # the carrier's DELIVERED delivers the package

    p_lost = amazon.only_package(lost[1]).package_id
    amazon.ship(lost[1], p_lost)
    amazon.milestone(lost[1], p_lost, "LOST")

    p_undeliverable = amazon.only_package(undeliverable[1]).package_id
    amazon.ship(undeliverable[1], p_undeliverable)
    amazon.cancel(undeliverable[1], p_undeliverable, "UNDELIVERABLE")

    p_cancelled = amazon.only_package(cancelled[1]).package_id
    amazon.cancel(cancelled[1], p_cancelled, "CUSTOMER_REQUESTED")

    package = amazon.only_package(part_cancelled[1])
    line = package.lines[0].amazon_line_id
    p_part_cancel = amazon.split(part_cancelled[1], package.package_id, {line: 1}, "CANCELLED", "UNFULFILLABLE")
    amazon.ship(part_cancelled[1], package.package_id)
    amazon.deliver(part_cancelled[1], package.package_id)
    p_part_shipped = package.package_id

    package = amazon.only_package(two_packages[1])
    line = package.lines[0].amazon_line_id
    p_first = amazon.split(two_packages[1], package.package_id, {line: 1}, "IN_TRANSIT")
    amazon.ship(two_packages[1], package.package_id)
    amazon.deliver(two_packages[1], p_first)
    p_second = package.package_id

    response = world.http.post(f"{world.sandboxes.urls['amazon']}/_sandbox/deliveries/drain",
                               params={"timeout": WAIT_SECONDS})
    assert response.json()["drained"], response.json()
    world.bridge.stop_workers()
    world.bridge.run_until_idle()

    deliveries = world.http.get(f"{world.sandboxes.urls['amazon']}/_sandbox/deliveries").json()
    assert any(d["duplicate"] for d in deliveries), "the sandbox sent no duplicate: the test tested none"
    assert all(d["state"] == "delivered" for d in deliveries), [d for d in deliveries if d["state"] != "delivered"]
    jobs = world.event_jobs()
    assert jobs and all(job.status == "done" for job in jobs), [(j.id, j.status, j.last_error) for j in jobs
                                                                 if j.status != "done"]

    # delivered: one document, tracking, the DELIVERED milestone, delivered
    doc = world.document(delivered[0], p_delivered)
    assert doc.tracking and doc.delivered and doc.failure is None
    assert "DELIVERED" in (doc.milestone or "")
    assert len(world.documents(delivered[0])) == 1
    # lost / undeliverable: a document with the failure, one notification each
    for (order_id, _), package_id, reason in ((lost, p_lost, "LOST"),
                                              (undeliverable, p_undeliverable, "UNDELIVERABLE")):
        doc = world.document(order_id, package_id)
        assert doc.failure and reason in doc.failure and doc.delivered is None
        assert len(world.documents(order_id)) == 1
        sent = [n for n in world.notifier.sent if n.details.get("package_id") == package_id]
        assert len(sent) == 1 and sent[0].kind == "delivery_failure", sent
    # cancelled before shipping: no document, the line cancelled in full
    assert world.documents(cancelled[0]) == []
    assert world.line_state(cancelled[0])[1], "the cancelled line is still open in the OMS"
    # split, part cancelled: a document for the 2 shipped units; the line reduced to 2, not cancelled
    doc = world.document(part_cancelled[0], p_part_shipped)
    assert sum(doc.lines.values()) == 2 and doc.delivered
    assert world.line_state(part_cancelled[0]) == (Decimal(2), False)
    assert [d.package_id for d in world.documents(part_cancelled[0])] == [p_part_shipped]
    assert p_part_cancel not in {d.package_id for d in world.documents(part_cancelled[0])}
    # split into two shipped packages: one document each, 1 unit each, only the first delivered
    first, second = world.document(two_packages[0], p_first), world.document(two_packages[0], p_second)
    assert sum(first.lines.values()) == sum(second.lines.values()) == 1
    assert first.delivered and not second.delivered
    assert len(world.documents(two_packages[0])) == 2
    # the document ids are on the Amazon packages
    for (_, amazon_id), package_id in ((delivered, p_delivered), (two_packages, p_first), (two_packages, p_second)):
        doc_ids = {d.document_id for d in world.documents(_oms_order(world, amazon_id))}
        aliases = {a.alias_id for a in amazon.package(amazon_id, package_id).aliases}
        assert aliases & doc_ids, f"package {package_id} carries no OMS document id ({aliases})"


def _oms_order(world: PackageWorld, amazon_id: str) -> str:
    found = world.bridge.service.package_events.store.oms_order_for(amazon_id)  # type: ignore[union-attr]
    assert found is not None
    return found[1]


def delivered_before_in_transit_and_exact_duplicates(world: PackageWorld) -> None:
    """Events posted in the wrong order by hand: DELIVERED first, then IN_TRANSIT, then DELIVERED again
    (same eventId). One document, delivered; the late IN_TRANSIT changes nothing."""
    order_id, amazon_id = world.fulfilled_order()
    package_id = world.amazon.only_package(amazon_id).package_id
    world.amazon.ship(amazon_id, package_id)
    world.amazon.deliver(amazon_id, package_id)
    [in_transit] = world.published(amazon_id, "PACKAGE_DELIVERY_IN_TRANSIT")
    [delivered] = world.published(amazon_id, "PACKAGE_DELIVERED")

    assert world.publish_to_primebridge(delivered).status_code == 200
    world.bridge.run_until_idle()
    doc = world.document(order_id, package_id)
    assert doc.delivered and doc.tracking

    assert world.publish_to_primebridge(in_transit).status_code == 200
    again = world.publish_to_primebridge(delivered)
    assert again.status_code == 200 and again.json().get("status") == "duplicate", again.text
    world.bridge.run_until_idle()
    assert world.documents(order_id) == [doc]
    jobs = world.event_jobs()
    assert [job.status for job in jobs] == ["done", "done"]
    # "in sync": the package record showed the document, tracking and delivery there already, so
    # the late event made no OMS call at all.
    assert jobs[-1].outcome and jobs[-1].outcome.endswith(f"package {package_id}: in sync"), jobs[-1].outcome


# -- crash -------------------------------------------------------------------------------------------


def sigkilled_workers_leave_one_document_per_package(world: PackageWorld, tmp_path: Path, store_url: str,
                                                     *, orders: int = 6, kills: int = 4) -> None:
    """Worker processes are SIGKILLed while they turn package events into OMS documents (the OMS
    sandbox answers slowly so kills land inside calls); a last worker finishes. Every package ends
    with exactly one document in the right state."""
    rng = random.Random(int(os.environ.get("PRIMEBRIDGE_CRASH_SEED", "31337")))
    world.delivery_knobs(duplicate_rate=0.3)
    fulfilled = [world.fulfilled_order(qty=2) for _ in range(orders)]
    expected: dict[str, tuple[str, bool]] = {}  # package id -> (OMS order id, delivered)
    for index, (order_id, amazon_id) in enumerate(fulfilled):
        package = world.amazon.only_package(amazon_id)
        if index % 3 == 2:  # split: one unit now, one later
            first = world.amazon.split(amazon_id, package.package_id,
                                       {package.lines[0].amazon_line_id: 1}, "IN_TRANSIT")
            expected[first] = (order_id, False)
        world.amazon.ship(amazon_id, package.package_id)
        world.amazon.deliver(amazon_id, package.package_id)
        expected[package.package_id] = (order_id, True)
    response = world.http.post(f"{world.sandboxes.urls['amazon']}/_sandbox/deliveries/drain",
                               params={"timeout": WAIT_SECONDS})
    assert response.json()["drained"], response.json()
    queued = world.event_jobs()
    assert queued and all(job.status == "queued" for job in queued)

    world.http.put(f"{world.sandboxes.urls[world.oms]}/_sandbox/knobs", json={"latency_ms": 60}).raise_for_status()
    settings = world.bridge.service.settings
    config = sandbox_config(
        amazon_url=world.sandboxes.urls["amazon"], sap_url=world.sandboxes.urls["sap"],
        netsuite_url=world.sandboxes.urls["netsuite"], store_url=store_url,
        overrides={"runtime.lease_seconds": 1.5, "runtime.worker_concurrency": 3, "runtime.max_attempts": 50,
                   "runtime.backoff_base_seconds": 0.05, "runtime.backoff_max_seconds": 0.3,
                   "runtime.poll_interval_seconds": 0.05,
                   "package_events.notify_delivery_failures": settings.package_events.notify_delivery_failures})
    config_path = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.toml"
    config_path.write_text(tomli_w.dumps(config))
    for round_no in range(kills):
        log = tmp_path / f"worker-{round_no}.log"
        proc = spawn_serve(config_path, log)
        try:
            wait_worker_started(proc, log)
            time.sleep(rng.uniform(0.3, 0.9))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    world.http.put(f"{world.sandboxes.urls[world.oms]}/_sandbox/knobs", json={"latency_ms": 0}).raise_for_status()
    world.bridge.service.worker(name="final").run_until_idle(timeout=60)

    with world.bridge.service.db.transaction() as session:
        attempts = session.execute(select(JobAttempt.finished_at, Job.kind).join(
            Job, Job.id == JobAttempt.job_id)).all()
    interrupted = sum(1 for a in attempts if a.finished_at is None and a.kind == "amazon.event")
    jobs = world.event_jobs()
    assert all(job.status == "done" for job in jobs), [(j.id, j.status, j.last_error) for j in jobs
                                                       if j.status != "done"]
    assert interrupted > 0, "no kill landed while an event job ran: the test did not test crashes"
    for package_id, (order_id, delivered) in expected.items():
        doc = world.document(order_id, package_id)  # exactly one per package
        assert bool(doc.delivered) is delivered, (package_id, doc)
    for order_id, _ in fulfilled:
        ids = [d.package_id for d in world.documents(order_id)]
        assert len(ids) == len(set(ids)) == sum(1 for o, _ in expected.values() if o == order_id), ids
