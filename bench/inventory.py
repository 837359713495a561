"""Benchmark: full inventory reconciliation against the SP-API, SAP and NetSuite sandboxes.

    .venv/bin/python bench/inventory.py [--sizes 10000,100000] [--rate 20] [--burst 2]
                                        [--slow-pages 60] [--oms sap,netsuite] [--parallel 4]
                                        [--differ-fraction 0.05]

Rows:

- **2 req/s, burst 2** (the real usage plan) over ``--slow-pages`` pages only (60 pages = 3,000 SKUs,
  about half a minute) so the run stays short; the ratio is what the target is about.
- **20 req/s, burst 2** at each of ``--sizes`` SKUs, twice: with ``--differ-fraction`` of the SKUs
  differing between Amazon and the OMSs (default 5 %, a realistic daily drift) and with every SKU
  differing (the worst case for the OMS side: an adjustment line per SKU and OMS).

Each row is one ``FullReconciliation.run`` in a *child process* built exactly as ``serve`` builds it
(``bootstrap.build``), so its peak RSS (``ru_maxrss``) is the reconciliation's alone. The sandboxes run
in processes of their own (one each), so they share no GIL with each other or with what is
measured. Every SKU of the generated catalogue is mapped through the mapping table (a CSV of all
SKUs, as a merchant would keep it). The OMS stock is
generated equal to Amazon's quantity except for the chosen fraction of SKUs (picked by a seeded
random draw), which get Amazon's quantity + 1000 and are adjusted in both OMSs.

Printed per row: pages, wall time, bound = (pages − burst) ÷ rate, wall ÷ bound, 429s the SP-API sandbox
answered, OMS adjustments posted per second (both OMSs together), the measured process's CPU time
over its wall time (``cpu``: how close its one GIL is to saturation, the thing that first gives way
when the machine is shared), and peak RSS. Targets: ratio ≤ 1.02 at 2 req/s and ≤ 1.05 at 20 req/s
with no 429; peak RSS < 200 MB at 100k SKUs and < 1.5 × the 10k figure.
Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import render

HOST = "127.0.0.1"
PAGE_SIZE = 50
PREFIX = "SKU-"
SAP_PLANT, SAP_SLOC, NS_LOCATION = "AMZ1", "0001", "7"


# -- the sandboxes' process -----------------------------------------------------------------------------

def serve_sandbox(name: str, url_file: Path) -> None:
    """Child: one sandbox until killed (one process each: they must not share one GIL, nor this one's);
    writes its URL to ``url_file``."""
    import importlib
    import threading

    from primebridge.sandbox.server import ThreadedServer

    create_app = importlib.import_module(f"primebridge.sandbox.{name}").create_app
    app = create_app(catalogue_size=0, page_size=PAGE_SIZE) if name == "spapi" else create_app()
    server = ThreadedServer(app, name=name).start()
    url_file.write_text(server.url)
    threading.Event().wait()


# -- the measured process -------------------------------------------------------------------------------

def measure(config_path: Path) -> None:
    """Child: one full reconciliation; prints a JSON line with the figures."""
    from primebridge.config import load_settings
    from primebridge.entrypoints.bootstrap import build
    from primebridge.entrypoints.logs import configure

    settings = load_settings(config_path)
    configure("WARNING", "console")
    service = build(settings)
    inventory = service.inventory
    assert inventory is not None
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.monotonic()
    run = inventory.reconciliation.run()
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall, "status": run.status, "counters": run.counters.as_dict(),
                      "peak_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime - cpu_before}))
    service.close()


# -- the driver -----------------------------------------------------------------------------------------

def width(size: int) -> int:
    return max(6, len(str(max(size - 1, 0))))


def oms_quantities(size: int, differ: float) -> Iterator[tuple[str, int]]:
    """(SKU, OMS quantity): Amazon's generated quantity (the sandbox's own formula), + 1000 for the
    ``differ`` fraction of SKUs."""
    from primebridge.sandbox.spapi.catalogue import Catalogue

    catalogue = Catalogue(size=size, seed=size, prefix=PREFIX)
    draw = random.Random(size)
    for i in range(size):
        quantity = catalogue.generated_quantity(i)
        yield catalogue.generated(i), quantity + 1000 if draw.random() < differ else quantity


def prepare(http: httpx.Client, urls: dict[str, str], size: int, rate: float, burst: int, oms: list[str],
            differ: float) -> None:
    spapi = urls["spapi"]
    http.post(f"{spapi}/_sandbox/reset").raise_for_status()
    http.put(f"{spapi}/_sandbox/catalogue", json={"size": size, "page_size": PAGE_SIZE, "prefix": PREFIX,
                                                  "seed": size}).raise_for_status()
    http.put(f"{spapi}/_sandbox/rate-limit", json={"rate": rate, "burst": burst}).raise_for_status()
    if differ < 1.0:
        rows = list(oms_quantities(size, differ))
        for start in range(0, size, 10_000):
            chunk = rows[start:start + 10_000]
            if "sap" in oms:
                http.post(f"{urls['sap']}/_sandbox/stock", json={"items": [
                    {"material": sku, "plant": SAP_PLANT, "storage_location": SAP_SLOC, "quantity": qty}
                    for sku, qty in chunk]}, timeout=600).raise_for_status()
            if "netsuite" in oms:
                http.post(f"{urls['netsuite']}/_sandbox/inventory", json={"location": NS_LOCATION, "items": [
                    {"item": sku, "quantity": qty} for sku, qty in chunk]}, timeout=600).raise_for_status()
        return
    # OMS quantity 1000 is above the generated Amazon quantities (0..500): every item differs.
    if "sap" in oms:
        http.post(f"{urls['sap']}/_sandbox/stock", json={"generate": {
            "count": size, "prefix": PREFIX, "plant": SAP_PLANT, "storage_location": SAP_SLOC, "quantity": 1000,
            "start": 0, "width": width(size)}}, timeout=600).raise_for_status()
    if "netsuite" in oms:
        http.post(f"{urls['netsuite']}/_sandbox/inventory", json={"location": NS_LOCATION, "generate": {
            "count": size, "prefix": PREFIX, "quantity": 1000, "start": 0, "width": width(size)}},
            timeout=600).raise_for_status()


def config(urls: dict[str, str], workdir: Path, size: int, rate: float, burst: int, oms: list[str],
           parallel: int) -> Path:
    from primebridge.sandbox.profile import sandbox_config
    from primebridge.sandbox.spapi import DEFAULT_REFRESH_TOKEN

    mapping = workdir / f"mapping-{size}.csv"
    if not mapping.exists():
        with mapping.open("w") as fh:
            fh.write("seller_sku,oms_item\n")
            for i in range(size):
                sku = f"{PREFIX}{i:0{width(size)}d}"
                fh.write(f"{sku},{sku}\n")
    db = workdir / f"run-{size}-{rate}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    data = sandbox_config(amazon_url=urls["amazon"], sap_url=urls["sap"], netsuite_url=urls["netsuite"],
                          store_url=f"sqlite:///{db}", overrides={
                              "log_level": "WARNING",
                              "spapi.endpoint": urls["spapi"], "spapi.lwa_url": f"{urls['spapi']}/auth/o2/token",
                              "spapi.client_id": "sandbox-lwa-client", "spapi.client_secret": "sandbox-lwa-secret",
                              "spapi.refresh_token": DEFAULT_REFRESH_TOKEN, "spapi.rate_per_second": rate,
                              "spapi.burst": burst,
                              "sap.inventory.plant": SAP_PLANT, "sap.inventory.storage_location": SAP_SLOC,
                              "netsuite.inventory.location_id": NS_LOCATION, "netsuite.inventory.account_id": "500",
                              "inventory.enabled": True, "inventory.oms": oms, "inventory.use_products": False,
                              "inventory.mapping_file": str(mapping), "inventory.parallel": parallel,
                              "inventory.report_dir": str(workdir / "reports"),
                              "inventory.full_sync_interval_seconds": 0})
    path = workdir / f"config-{size}-{rate}.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def row(http: httpx.Client, urls: dict[str, str], workdir: Path, label: str, size: int, rate: float, burst: int,
        oms: list[str], parallel: int, differ: float) -> dict[str, Any]:
    prepare(http, urls, size, rate, burst, oms, differ)
    path = config(urls, workdir, size, rate, burst, oms, parallel)
    done = subprocess.run([sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{label}: the measured run failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stats = http.get(f"{urls['spapi']}/_sandbox/stats").json()["counters"]
    pages = math.ceil(size / PAGE_SIZE)
    bound = (pages - burst) / rate
    c = result["counters"]
    return {"label": label, "differ": differ, "skus": size, "pages": pages, "wall": result["wall"], "bound": bound,
            "ratio": result["wall"] / bound, "throttled": stats.get("throttled", 0), "posted": c["posted"],
            "adj_per_s": c["posted"] / result["wall"], "peak_mb": result["peak_mb"], "status": result["status"],
            "cpu_share": result["cpu"] / result["wall"],
            "scanned": c["scanned"], "failed": c["failed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=2)
    parser.add_argument("--slow-pages", type=int, default=60)
    parser.add_argument("--oms", default="sap,netsuite")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--differ-fraction", type=float, default=0.05,
                        help="fraction of SKUs whose OMS stock differs from Amazon's (the 20 req/s rows also run "
                             "with 1.0, every SKU differing)")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_sandbox(args.serve[0], Path(args.serve[1]))
        return
    if args.measure:
        measure(args.measure)
        return
    oms = [o for o in args.oms.split(",") if o]
    differ = min(1.0, max(0.0, args.differ_fraction))
    print(render())
    print()
    with tempfile.TemporaryDirectory(prefix="pb-bench-inventory-") as tmp:
        workdir = Path(tmp)
        names = ["spapi", "amazon", *oms]
        sandboxes = {name: subprocess.Popen([sys.executable, __file__, "--serve", name, str(workdir / name)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in names}
        try:
            deadline = time.monotonic() + 60
            while not all((workdir / name).exists() for name in names):
                if time.monotonic() > deadline or any(p.poll() is not None for p in sandboxes.values()):
                    raise SystemExit("the sandboxes did not start")
                time.sleep(0.2)
            time.sleep(0.2)
            urls = {name: (workdir / name).read_text() for name in names}
            urls.setdefault("sap", "http://127.0.0.1:9")
            urls.setdefault("netsuite", "http://127.0.0.1:9")
            rows = []
            with httpx.Client(timeout=60) as http:
                slow = args.slow_pages * PAGE_SIZE
                rows.append(row(http, urls, workdir, f"2 req/s, burst 2, {args.slow_pages} pages", slow, 2.0, 2,
                                oms, args.parallel, differ))
                for size in (int(s) for s in args.sizes.split(",") if s):
                    for fraction in dict.fromkeys((differ, 1.0)):
                        rows.append(row(http, urls, workdir, f"{args.rate:g} req/s, burst {args.burst}", size,
                                        args.rate, args.burst, oms, args.parallel, fraction))
        finally:
            for process in sandboxes.values():
                process.terminate()
                process.wait(timeout=30)
    print(f"full reconciliation, OMS: {', '.join(oms)}; page size {PAGE_SIZE}; parallel {args.parallel}; "
          f"pid {os.getpid()}")
    head = f"{'row':30} {'differ':>6} {'SKUs':>7} {'pages':>5} {'wall s':>8} {'bound s':>8} {'ratio':>6} {'429s':>5} " \
           f"{'adj/s':>7} {'cpu':>5} {'peak MB':>8} {'status':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['label']:30} {r['differ']:>6.0%} {r['skus']:>7} {r['pages']:>5} {r['wall']:>8.2f} "
              f"{r['bound']:>8.2f} {r['ratio']:>6.3f} {r['throttled']:>5} {r['adj_per_s']:>7.0f} "
              f"{r['cpu_share']:>5.0%} {r['peak_mb']:>8.1f} "
              f"{r['status']:>7}"
              + (f"  ({r['failed']} failed)" if r["failed"] else ""))
    for fraction in dict.fromkeys(r["differ"] for r in rows[1:]):
        sized = {r["skus"]: r for r in rows[1:] if r["differ"] == fraction}
        if len(sized) >= 2:
            small, large = sized[min(sized)], sized[max(sized)]
            print(f"peak RSS {large['skus']} vs {small['skus']} ({fraction:.0%} differ): "
                  f"{large['peak_mb'] / small['peak_mb']:.2f} ×")


if __name__ == "__main__":
    main()
