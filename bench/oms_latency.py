"""Event → OMS document latency, for ``bench/intake.py --oms-latency N``.

The real path, each part in its own process: the three sandboxes (``primebridge sandbox serve``),
primebridge's web role (``POST /events/amazon``) and one worker (``serve --role worker``) on the
store being measured. N OMS orders (SAP and NetSuite alternating) are fulfilled with Amazon first;
then their packages are shipped in the Amazon sandbox at a steady rate (``SandboxDriver.ship``,
which publishes ``PACKAGE_DELIVERY_IN_TRANSIT``), the sandbox delivers each event to the subscribed
intake, and the worker creates the outbound delivery (SAP) or item fulfillment (NetSuite).

Latency is measured two ways, per package: from the event's ``eventTime`` (stamped by the sandbox
when it publishes) and from the moment of the ship call, to the first poll of the OMS sandboxes'
admin views (``/_sandbox/deliveries``, ``/_sandbox/item-fulfillments``) that shows a document for
that package; the poll runs every ``POLL_SECONDS``, so figures are late by at most that much.
Everything talks to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import tomli_w
from fulfill import HOST, Processes, config_for, log_says, percentile, start_sandboxes, wait_for

from primebridge.config import settings_from_dict
from primebridge.demo_packages import subscribe_package_events
from primebridge.entrypoints.bootstrap import build
from primebridge.entrypoints.logs import configure
from primebridge.sandbox.amazon.driver import SandboxDriver
from primebridge.sandbox.seed import DEFAULT_SKUS, SandboxSeeder
from primebridge.sandbox.server import free_port

POLL_SECONDS = 0.02
SETTLE_SECONDS = 60.0     # bound on waiting for the last documents after the last ship


def measure_oms_latency(store: str, store_url: str, n: int, rate: float, workdir: Path) -> dict[str, Any]:
    configure("WARNING")   # this process fulfils the orders; its info lines would bury the figures
    procs = Processes(workdir)
    try:
        urls = start_sandboxes(procs, argparse.Namespace(latency_ms=0, oms_latency_ms=0))
        port = free_port(HOST)
        config = config_for(urls, store_url, port, 4)
        settings = settings_from_dict(config)
        path = workdir / f"oms-{store}.toml"
        path.write_text(tomli_w.dumps(config))
        seeder = SandboxSeeder(amazon_url=urls.amazon, sap_url=urls.sap, netsuite_url=urls.netsuite)
        seeder.catalog(DEFAULT_SKUS)
        service = build(settings)   # migrates the store; fulfils the orders in this process
        driver = SandboxDriver(urls.amazon)
        http = httpx.Client(timeout=30.0, trust_env=False)
        try:
            packages = _fulfilled_packages(service, seeder, driver, n)
            _, web_log = procs.start(f"oms-{store}-web", "serve", "--role", "web", "--config", str(path))
            web_url = f"http://{HOST}:{port}"
            wait_for(lambda: http.get(f"{web_url}/health").status_code == 200, 60, "the web process", web_log)
            _, worker_log = procs.start(f"oms-{store}-worker", "serve", "--role", "worker", "--config", str(path))
            wait_for(log_says(worker_log, "worker.start"), 60, "the worker", worker_log)
            subscribe_package_events(settings, f"{web_url}/events/amazon")
            shipped, seen = _ship_and_watch(packages, driver, http, urls, settings, rate)
            event_times = _event_times(http, urls.amazon)
        finally:
            http.close()
            driver.close()
            seeder.close()
            service.close()
    finally:
        procs.stop()
    from_ship = [seen[p] - shipped[p] for p in seen]
    from_event = [seen[p] - event_times[p] for p in seen if p in event_times]
    result = {"store": store, "packages": n, "rate": rate, "documents": len(seen),
              "ship_p50_ms": percentile(from_ship, 50) * 1000,
              "ship_p99_ms": percentile(from_ship, 99) * 1000,
              "event_p50_ms": percentile(from_event, 50) * 1000,
              "event_p99_ms": percentile(from_event, 99) * 1000}
    print(f"  event → OMS  {store:10} {len(seen)}/{n} documents  event→doc p50 {result['event_p50_ms']:.0f} ms"
          f"  p99 {result['event_p99_ms']:.0f} ms  (ship→doc p50 {result['ship_p50_ms']:.0f} ms"
          f"  p99 {result['ship_p99_ms']:.0f} ms)", flush=True)
    return result


def _fulfilled_packages(service: Any, seeder: SandboxSeeder, driver: SandboxDriver,
                        n: int) -> list[tuple[str, str, str]]:
    """``n`` OMS orders fulfilled with Amazon: (oms, Amazon order id, its package id) each."""
    packages = []
    for i in range(n):
        oms = "sap" if i % 2 == 0 else "netsuite"
        order_id = seeder.sap_order() if oms == "sap" else seeder.netsuite_order()
        service.fulfill[oms].sync_order(order_id)
        link = service.store.get_order_link(oms, order_id)
        if link is None or not link.amazon_order_id:
            raise RuntimeError(f"{oms} order {order_id} was not fulfilled with Amazon")
        packages.append((oms, link.amazon_order_id, str(driver.packages(link.amazon_order_id)[0]["id"])))
    return packages


def _documents(http: httpx.Client, urls: Any, settings: Any) -> set[str]:
    """Package ids that have an OMS document now (SAP outbound delivery, NetSuite item fulfillment)."""
    found: set[str] = set()
    sap_text = settings.sap.shipments.package_text_id
    for view in http.get(f"{urls.sap}/_sandbox/deliveries").json()["deliveries"]:
        package = (view.get("texts") or {}).get(sap_text)
        if package:
            found.add(str(package))
    ns_field = settings.netsuite.shipments.package_id_field
    for view in http.get(f"{urls.netsuite}/_sandbox/item-fulfillments").json()["items"]:
        package = view.get(ns_field) if ns_field else None
        if package:
            found.add(str(package))
    return found


def _ship_and_watch(packages: list[tuple[str, str, str]], driver: SandboxDriver, http: httpx.Client, urls: Any,
                    settings: Any, rate: float) -> tuple[dict[str, float], dict[str, float]]:
    """Ships one package every ``1/rate`` s while polling the OMSs; returns ship and first-seen times."""
    shipped: dict[str, float] = {}
    seen: dict[str, float] = {}
    start = time.time()
    todo = list(enumerate(packages))
    deadline = start + len(packages) / rate + SETTLE_SECONDS
    while time.time() < deadline and len(seen) < len(packages):
        while todo and time.time() >= start + todo[0][0] / rate:
            _, (_, amazon_order, package) = todo.pop(0)
            shipped[package] = time.time()
            driver.ship(amazon_order, package)
        with suppress(httpx.HTTPError):
            now_found = _documents(http, urls, settings)
            now = time.time()
            for package in now_found:
                if package in shipped and package not in seen:
                    seen[package] = now
        time.sleep(POLL_SECONDS)
    return shipped, seen


def _event_times(http: httpx.Client, amazon_url: str) -> dict[str, float]:
    """Package id → ``eventTime`` of its PACKAGE_DELIVERY_IN_TRANSIT event, as the sandbox published it."""
    times: dict[str, float] = {}
    for event in http.get(f"{amazon_url}/_sandbox/events").json():
        if event.get("eventType") != "PACKAGE_DELIVERY_IN_TRANSIT":
            continue
        at = datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00")).timestamp()
        for resource in event.get("resources") or []:
            parts = resource.split("/")
            if "delivery" in parts[:-1]:
                times.setdefault(parts[parts.index("delivery") + 1], at)
    return times
