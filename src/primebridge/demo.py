"""``primebridge demo``: the whole integration against the built-in sandboxes, checked end to end.

It is a smoke test a merchant can run on a laptop, so it proves outcomes instead of printing logs:
every expected effect is read back from the systems that hold it (the Amazon sandbox for orders
and their execution state, the OMS sandboxes for written-back ids) rather than from primebridge's
own database, and the exit status says whether all of them happened.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from primebridge.config import settings_from_dict
from primebridge.demo_inventory import run_inventory_demo
from primebridge.demo_packages import run_package_demo
from primebridge.entrypoints.bootstrap import Service, build
from primebridge.entrypoints.logs import configure
from primebridge.entrypoints.web import _jobs, create_app
from primebridge.ports import LinkState
from primebridge.runtime.store import order_key
from primebridge.runtime.tables import Job
from primebridge.sandbox.profile import sandbox_config
from primebridge.sandbox.seed import DEFAULT_SKUS, SandboxSeeder
from primebridge.sandbox.server import ThreadedServer, start_all

DEMO_DIR = Path("var/demo")

FULFIL, REJECT, IGNORE = "fulfil", "reject", "ignore"
SAP_EVENT_TYPE = "sap.s4.beh.salesorder.v1.SalesOrder.{}.v1"
IDLE_TIMEOUT = 30.0


def cli_name() -> str:
    """How the user runs primebridge commands: ``./dev`` sets PRIMEBRIDGE_CLI, so the hints the demo
    prints can be pasted as they are; an installed ``primebridge`` is the default."""
    return os.environ.get("PRIMEBRIDGE_CLI", "primebridge")


@dataclass
class DemoOrder:
    """One seeded order and what must become of it."""

    oms: str
    order_id: str
    what: str
    expect: str
    held: bool = False
    prime: bool = False
    mixed: bool = False
    detected_by: list[str] = field(default_factory=list)
    state_before_release: str | None = None


def sap_business_event(order_id: str, change: str = "Changed", event_id: str | None = None) -> dict[str, Any]:
    """A CloudEvents 1.0 business event as SAP Event Mesh delivers it."""
    return {"specversion": "1.0", "type": SAP_EVENT_TYPE.format(change), "source": "/default/sap.s4.beh/demo",
            "id": event_id or str(uuid.uuid4()), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "datacontenttype": "application/json", "data": {"SalesOrder": order_id}}


def sap_soap_notification(order_id: str) -> str:
    """A sales-order notification in a SOAP envelope, as a merchant's middleware pushes it."""
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            '<n0:SalesOrderChangeNotification xmlns:n0="http://example.com/primebridge/demo">'
            f'<SalesOrder><ID>{order_id}</ID></SalesOrder></n0:SalesOrderChangeNotification>'
            '</soapenv:Body></soapenv:Envelope>')


def netsuite_event(order_id: str, event: str = "edit") -> dict[str, Any]:
    """What the User Event script in extras/netsuite posts after a save."""
    return {"recordType": "salesorder", "id": order_id, "event": event, "eventId": str(uuid.uuid4())}


class _Demo:
    def __init__(self, console: Console, service: Service, seeder: SandboxSeeder, web: httpx.Client) -> None:
        self.console = console
        self.service = service
        self.seeder = seeder
        self.web = web
        self.orders: list[DemoOrder] = []
        self.problems: list[str] = []

    # -- steps ---------------------------------------------------------------------------------------

    def push(self, path: str, *, json_body: Any = None, content: str | None = None) -> dict[str, Any]:
        if content is not None:
            response = self.web.post(path, content=content, headers={"content-type": "text/xml"})
        else:
            response = self.web.post(path, json=json_body)
        if response.status_code != 202:
            self.problems.append(f"POST {path} answered {response.status_code}: {response.text[:200]}")
            return {}
        return dict(response.json())

    def add(self, oms: str, order_id: str, what: str, expect: str, **flags: bool) -> DemoOrder:
        order = DemoOrder(oms, order_id, what, expect, **flags)
        self.orders.append(order)
        return order

    def seed(self) -> None:
        s = self.seeder
        self.add("sap", s.sap_order(), "unheld", FULFIL)
        self.add("sap", s.sap_order(held=True), "held (delivery block)", FULFIL, held=True)
        self.add("sap", s.sap_order(prime=True), "Prime", FULFIL, prime=True)
        self.add("sap", s.sap_order(mixed=True), "mixed (+ plant 1010 item)", FULFIL, mixed=True)
        self.add("sap", s.sap_order(ship_to=False), "invalid: no ship-to", REJECT)
        self.add("sap", s.sap_non_amazon_order(), "not for Amazon (plant 1010)", IGNORE)
        self.add("netsuite", s.netsuite_order(), "unheld", FULFIL)
        self.add("netsuite", s.netsuite_order(held=True), "held (pending approval)", FULFIL, held=True)
        self.add("netsuite", s.netsuite_order(prime=True), "Prime", FULFIL, prime=True)
        self.add("netsuite", s.netsuite_order(mixed=True), "mixed (+ location 1 line)", FULFIL, mixed=True)
        self.add("netsuite", s.netsuite_order(item="NOT-IN-CATALOG"), "invalid: unknown SKU", REJECT)
        self.add("netsuite", s.netsuite_order(qty="0"), "invalid: quantity 0", REJECT)
        self.add("netsuite", s.netsuite_non_amazon_order(), "not for Amazon (location 1)", IGNORE)

    def detect(self, orders: list[DemoOrder]) -> None:
        """Push what the OMSs would push, then run the scheduled pulls that catch everything else."""
        sap = [o for o in orders if o.oms == "sap" and o.expect != IGNORE]
        for order in sap:
            if order.expect == REJECT:  # one SOAP notification, as middleware would push it
                receipt = self.push("/events/sap/soap", content=sap_soap_notification(order.order_id))
                label = "SOAP"
            else:
                receipt = self.push("/events/sap/business-events",
                                    json_body=sap_business_event(order.order_id))
                label = "CloudEvent"
            if receipt.get("jobs"):
                order.detected_by.append(label)
        for order in (o for o in orders if o.oms == "netsuite" and o.expect != IGNORE):
            if self.push("/events/netsuite", json_body=netsuite_event(order.order_id)).get("jobs"):
                order.detected_by.append("UE push")
        pushed = self._queued_keys()
        for oms in ("sap", "netsuite"):
            self.service.pull_orders(oms)
        pulled = self._queued_keys() - pushed
        for order in orders:
            if order_key(order.oms, order.order_id) in pulled:
                order.detected_by.append("pull")

    def redelivery(self) -> None:
        """A sender's retry of the same CloudEvent must be acknowledged and do nothing."""
        order = next(o for o in self.orders if o.oms == "sap" and o.expect == FULFIL)
        event = sap_business_event(order.order_id, event_id=f"redelivered-{uuid.uuid4()}")
        first = self.push("/events/sap/business-events", json_body=event)
        again = self.push("/events/sap/business-events", json_body=event)
        if again.get("status") != "duplicate" or again.get("jobs") != 0 or first.get("status") != "accepted":
            self.problems.append(f"a redelivered CloudEvent was not recognised as a duplicate: {again}")

    def run_worker(self) -> None:
        self.service.worker(name="demo").run_until_idle(timeout=IDLE_TIMEOUT)

    def release_held(self) -> None:
        by_alias = self._amazon_by_alias()
        for order in (o for o in self.orders if o.held):
            amazon = by_alias.get(self._alias(order), [])
            order.state_before_release = amazon[0]["metadata"]["executionState"] if amazon else None
            if order.oms == "sap":
                self.seeder.sap_release(order.order_id)
                self.push("/events/sap/business-events", json_body=sap_business_event(order.order_id))
            else:
                self.seeder.netsuite_release(order.order_id)
                self.push("/events/netsuite", json_body=netsuite_event(order.order_id))
        for oms in ("sap", "netsuite"):
            self.service.pull_orders(oms)

    # -- reading back ---------------------------------------------------------------------------------

    def _queued_keys(self) -> set[str]:
        return {job.ordering_key for job in _jobs(self.service, "queued", 1000)}

    def _alias(self, order: DemoOrder) -> tuple[str, str]:
        return self.service.oms[order.oms].policy.alias_type, order.order_id

    def _amazon_by_alias(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for amazon in self.seeder.amazon_orders():
            for alias in amazon.get("aliases") or []:
                found.setdefault((alias["aliasType"], alias["aliasId"]), []).append(amazon)
        return found

    def _written_back(self, order: DemoOrder) -> tuple[str | None, dict[str, str]]:
        if order.oms == "sap":
            return self.seeder.sap_amazon_ids(order.order_id)
        return self.seeder.netsuite_amazon_ids(order.order_id)

    def _jobs(self, order: DemoOrder) -> list[Job]:
        """Every job of the order, oldest first (pulls repeat orders, so there may be several)."""
        with self.service.db.transaction() as session:
            return list(session.scalars(select(Job).where(
                Job.ordering_key == order_key(order.oms, order.order_id)).order_by(Job.id)).all())

    # -- the verdict ----------------------------------------------------------------------------------

    def report(self) -> None:
        by_alias = self._amazon_by_alias()
        for oms, title in (("sap", "SAP S/4HANA"), ("netsuite", "NetSuite")):
            table = Table(title=f"{title} → Buy with Prime", title_justify="left", show_lines=True)
            table.add_column("order", no_wrap=True)
            table.add_column("what it is\n(detected by)")
            table.add_column(f"Amazon order, state\nline ids in {title}", no_wrap=True)
            table.add_column("outcome", overflow="fold")
            for order in (o for o in self.orders if o.oms == oms):
                table.add_row(*self._row(order, by_alias.get(self._alias(order), [])))
            self.console.print(table)

    def _row(self, order: DemoOrder, amazon: list[dict[str, Any]]) -> list[str]:
        header, lines = self._written_back(order)
        link = self.service.store.get_order_link(order.oms, order.order_id)
        jobs = self._jobs(order)
        rejected = [job for job in jobs if job.status == "rejected"]
        where = f"{order.oms} order {order.order_id} ({order.what})"

        def check(ok: bool, what: str) -> None:
            if not ok:
                self.problems.append(f"{where}: {what}")

        state = amazon[0]["metadata"]["executionState"] if len(amazon) == 1 else ""
        if order.expect == FULFIL:
            check(len(amazon) == 1, f"expected exactly one Amazon order, found {len(amazon)}")
            if len(amazon) == 1:
                self._check_fulfilled(order, amazon[0], header, lines, check)
            outcome = "[green]fulfilled[/green]" if len(amazon) == 1 else "[red]missing[/red]"
            if order.held:
                outcome = f"[green]{order.state_before_release} → released[/green]"
        elif order.expect == REJECT:
            reason = (link.reason if link else None) or (rejected[-1].outcome if rejected else None)
            check(not amazon, f"was sent to Amazon ({len(amazon)} order(s)) although it is invalid")
            statuses = ", ".join(job.status for job in jobs) or "none"
            check(bool(rejected), f"no job was rejected (jobs: {statuses})")
            check(bool(reason), "no rejection reason recorded")
            check(header is None and not lines, "ids were written back to an invalid order")
            outcome = f"[yellow]rejected:[/yellow] {escape(reason or '')}"
        else:
            check(not amazon, f"was sent to Amazon ({len(amazon)} order(s))")
            check(header is None and not lines, "ids were written back to an order not for Amazon")
            check(link is not None and link.state is LinkState.NOT_FOR_AMAZON,
                  f"should be recorded as not for Amazon, is {link.state if link else 'unseen'}")
            outcome = f"[dim]untouched: {escape(link.reason or '') if link else 'never seen'}[/dim]"
        written = "\n".join(f"{line} → {amazon_line}" for line, amazon_line in sorted(lines.items()))
        amazon_cell = "\n".join(part for part in (
            f"{amazon[0]['id']} {_state(state)}" if len(amazon) == 1 else "", written) if part)
        detected = ", ".join(order.detected_by) or "not detected"
        return [order.order_id, f"{order.what}\n[dim]({detected})[/dim]", amazon_cell or "-", outcome]

    def _check_fulfilled(self, order: DemoOrder, amazon: dict[str, Any], header: str | None,
                         lines: dict[str, str], check: Callable[[bool, str], None]) -> None:
        state = amazon["metadata"]["executionState"]
        check(state == "STARTED", f"Amazon order {amazon['id']} is {state}, expected STARTED")
        if order.held:
            check(order.state_before_release == "NOT_STARTED",
                  f"held order was {order.state_before_release} at Amazon before the release, "
                  "expected NOT_STARTED")
        check(header == amazon["id"], f"Amazon order id written back is {header!r}, expected {amazon['id']}")
        amazon_lines = {line["id"] for line in amazon.get("lineItems") or []}
        check(bool(lines) and set(lines.values()) == amazon_lines,
              f"line ids written back {sorted(lines.values())} differ from Amazon's {sorted(amazon_lines)}")
        providers = {(line.get("deliveryOffer") or {}).get("details", {}).get("deliveryProvider")
                     for line in amazon.get("lineItems") or []}
        if order.mixed:
            check(providers == {"AMAZON", "MERCHANT"}, f"expected Amazon and merchant lines, got {providers}")
        if order.prime:
            prime = [line for line in amazon.get("lineItems") or []
                     if ((line.get("deliveryOffer") or {}).get("details") or {})
                     .get("deliveryTerms", {}).get("isPrimeEligible")]
            check(bool(prime) and bool(amazon.get("shopperIdentityGiven")),
                  "Prime order reached Amazon without Prime lines or shopper identity")


def _state(state: str) -> str:
    colour = {"STARTED": "green", "NOT_STARTED": "yellow"}.get(state)
    return f"[{colour}]{state}[/{colour}]" if colour else (state or "-")


def _fresh_store(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "primebridge.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{db.resolve()}"


def run_demo(console: Console, *, keep: bool = False) -> int:
    """Runs the demo; returns the process exit status (0 when every expected outcome was seen)."""
    configure("WARNING", "console")
    started = time.monotonic()
    store_url = _fresh_store(DEMO_DIR)
    servers = start_all()
    service: Service | None = None
    web: ThreadedServer | None = None
    urls = {name: server.url for name, server in servers.items()}
    try:
        config = sandbox_config(amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"],
                                store_url=store_url)
        # Written out so the operator commands (jobs list, audit ...) can look at the demo's store later.
        config_path = DEMO_DIR / "primebridge.toml"
        config_path.write_text(tomli_w.dumps(config))
        service = build(settings_from_dict(config))
        web = ThreadedServer(create_app(service), name="primebridge").start()
        seeder = SandboxSeeder(amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"])
        with seeder, httpx.Client(base_url=web.url, timeout=10.0) as client:
            demo = _Demo(console, service, seeder, client)
            console.print("[bold]primebridge demo[/bold]: sandboxes "
                          + ", ".join(f"{name} {url}" for name, url in urls.items())
                          + f"; primebridge on {web.url}; store {store_url}", soft_wrap=True)
            seeder.catalog(DEFAULT_SKUS)
            demo.seed()
            demo.detect(demo.orders)
            demo.redelivery()
            demo.run_worker()
            demo.release_held()
            demo.run_worker()
            demo.report()
            run_package_demo(console, service, seeder, urls, web.url, demo.problems)
            demo.problems.extend(run_inventory_demo(console, config, urls, seeder.http, DEMO_DIR))
            counts = service.queue.counts()
            console.print("jobs: " + " · ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            for stuck in ("queued", "running", "dead"):
                if counts.get(stuck):
                    demo.problems.append(f"{counts[stuck]} job(s) are {stuck} at the end")
            elapsed = time.monotonic() - started
            if demo.problems:
                console.print(f"[red bold]demo failed[/red bold] ({elapsed:.1f} s):")
                for problem in demo.problems:
                    console.print(f"  [red]✗[/red] {escape(problem)}")
            else:
                example = demo.orders[0].order_id
                console.print(f"[green bold]all expected outcomes seen[/green bold] for {len(demo.orders)} "
                              "orders "
                              f"in {elapsed:.1f} s. Look around with the operator commands: "
                              f"{cli_name()} audit {example} -c {config_path} (an order's audit trail), "
                              f"{cli_name()} events list -c {config_path} (the Amazon events received), "
                              f"{cli_name()} jobs list -c {config_path}", soft_wrap=True)
            if keep:
                _keep_running(console, service, urls, web.url)
            return 1 if demo.problems else 0
    finally:
        if web is not None:
            web.stop()
        if service is not None:
            service.close()
        for server in servers.values():
            server.stop()


def _keep_running(console: Console, service: Service, urls: dict[str, str], web_url: str) -> None:
    """Serves until Ctrl-C with a worker running, so pushes to the intake are processed too."""
    import threading

    console.print(f"primebridge       {web_url}/   (jobs: {web_url}/admin/jobs)", soft_wrap=True)
    for name, url in urls.items():
        admin = f"{url}/_sandbox/" + ("orders" if name == "amazon" else "sales-orders")
        console.print(f"{name + ' sandbox':17} {url}   (admin: {admin})", soft_wrap=True)
    console.print("running with a worker until Ctrl-C")
    stop = threading.Event()
    worker = threading.Thread(target=service.worker(name="demo-keep").run, args=(stop,), daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        stop.set()
        worker.join(timeout=10)
