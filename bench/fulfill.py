"""Benchmark: OMS order → Amazon order, by a plain loop and through primebridge's runtime.

    .venv/bin/python bench/fulfill.py [--orders N] [--quick] [--latency-ms 20]

Rows:

- **direct loop**: per order, read it with the OMS connector, ``createOrder`` with ``BwpOrders``,
  write the ids back; one order after the other, no store, no queue. The yardstick.
- **runtime, SQLite**: a web process (``serve --role web``) receiving pushes (``POST /events/...``)
  and one worker process (``serve --role worker``) on a SQLite file.
- **runtime, PostgreSQL**: the same with one, then three worker processes.

Each runtime row has two phases. A *burst* pushes N orders as fast as 8 pushing threads can:
throughput = N / (first push → last Amazon order created). Then a *steady* phase pushes N/2 orders
at half the burst throughput (or ``--rate``), and its latency, push sent → Amazon order created
(the Amazon sandbox's ``metadata.createdAt``), gives p50/p99: latency under a sustainable load,
not the queueing of a burst.

The sandboxes run in their own process (``primebridge sandbox serve``) so that they do not share
the GIL with what is measured. Everything talks to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import DEFAULT_PG_URL, render

from primebridge.config import settings_from_dict
from primebridge.connectors.amazon import build_amazon_orders
from primebridge.connectors.netsuite import build_netsuite_orders
from primebridge.connectors.sap import build_sap_orders
from primebridge.domain.routing import Fulfill, decide, line_alias
from primebridge.sandbox.profile import sandbox_config
from primebridge.sandbox.seed import DEFAULT_SKUS, SandboxSeeder
from primebridge.sandbox.server import free_port

HOST = "127.0.0.1"
PUSHERS = 8
NETSUITE_ACCOUNT_LIMIT = 15   # three workers × the connector's 4 slots fit a 15-slot account
WARMUP = 4
ROWS = ("direct", "sqlite", "pg1", "pg3")


@dataclass
class Row:
    name: str
    orders: int = 0
    throughput: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    steady_rate: float | None = None
    note: str = ""
    problems: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)   # CPU ms per order during the burst, by process


# -- processes ---------------------------------------------------------------------------------------

class Processes:
    """Every child process of the benchmark, stopped (TERM, then KILL) whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMEBRIDGE__")}
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "primebridge.entrypoints.cli", *args],
                                    stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir)
        self._procs.append(proc)
        return proc, log

    def stop(self, procs: list[subprocess.Popen[bytes]] | None = None) -> None:
        targets = list(self._procs) if procs is None else procs
        for proc in targets:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in targets:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc in self._procs:
                self._procs.remove(proc)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux ``/proc``); 0 where unreadable."""
    total = 0.0
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def log_says(log: Path, text: str) -> Callable[[], bool]:
    return lambda: text in log.read_text(errors="replace")


# -- sandboxes and orders ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Sandboxes:
    amazon: str
    sap: str
    netsuite: str
    pid: int


def start_sandboxes(procs: Processes, args: argparse.Namespace) -> Sandboxes:
    ports = {name: free_port(HOST) for name in ("amazon", "sap", "netsuite")}
    proc, log = procs.start("sandboxes", "sandbox", "serve", "--host", HOST,
                            "--amazon-port", str(ports["amazon"]), "--sap-port", str(ports["sap"]),
                            "--netsuite-port", str(ports["netsuite"]))
    urls = Sandboxes(**{name: f"http://{HOST}:{port}" for name, port in ports.items()}, pid=proc.pid)
    for url in (urls.amazon, urls.sap, urls.netsuite):
        wait_for(lambda url=url: httpx.get(f"{url}/_sandbox/knobs").status_code == 200, 30, url, log)
    httpx.put(f"{urls.amazon}/_sandbox/knobs", json={"latency_ms": args.latency_ms}).raise_for_status()
    for url in (urls.sap, urls.netsuite):
        httpx.put(f"{url}/_sandbox/knobs", json={"latency_ms": args.oms_latency_ms}).raise_for_status()
    httpx.put(f"{urls.netsuite}/_sandbox/governance",
              json={"concurrency_limit": NETSUITE_ACCOUNT_LIMIT}).raise_for_status()
    return urls


def seed_orders(seeder: SandboxSeeder, n: int) -> list[tuple[str, str]]:
    """``n`` unheld orders, alternating SAP and NetSuite, every other pair Prime."""
    orders = []
    for i in range(n):
        sku = DEFAULT_SKUS[i % len(DEFAULT_SKUS)]
        prime = (i // 2) % 2 == 1
        if i % 2 == 0:
            orders.append(("sap", seeder.sap_order(material=sku, prime=prime)))
        else:
            orders.append(("netsuite", seeder.netsuite_order(item=sku, prime=prime)))
    return orders


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values (a row that measured nothing prints as such)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def config_for(urls: Sandboxes, store_url: str, web_port: int, concurrency: int) -> dict[str, Any]:
    return sandbox_config(amazon_url=urls.amazon, sap_url=urls.sap, netsuite_url=urls.netsuite,
                          store_url=store_url,
                          overrides={"web.port": web_port, "runtime.worker_concurrency": concurrency})


# -- (a) the direct loop -----------------------------------------------------------------------------

def direct_loop(urls: Sandboxes, seeder: SandboxSeeder, n: int, workdir: Path) -> Row:
    settings = settings_from_dict(config_for(urls, f"sqlite:///{workdir / 'unused.db'}", 1, 1))
    amazon = build_amazon_orders(settings.amazon)
    systems = {"sap": (build_sap_orders(settings.sap), settings.sap.routing.policy()),
               "netsuite": (build_netsuite_orders(settings.netsuite), settings.netsuite.routing.policy())}

    def one(oms: str, order_id: str) -> None:
        system, policy = systems[oms]
        order = system.read_order(order_id)
        if order is None:
            raise RuntimeError(f"{oms} order {order_id} not found")
        decision = decide(order, policy)
        if not isinstance(decision, Fulfill):
            raise RuntimeError(f"{oms} order {order_id} is not for Amazon: {decision!r}")
        created = amazon.create_order(decision.request)
        line_ids = {}
        for line in order.lines:
            match = created.line_for_alias(line_alias(order, line, policy))
            if match is not None:
                line_ids[line.line_id] = match.line_id
        system.write_amazon_ids(order, created.order_id, line_ids)

    for oms, order_id in seed_orders(seeder, WARMUP):
        one(oms, order_id)
    orders = seed_orders(seeder, n)
    latencies = []
    cpu_before = (cpu_seconds([urls.pid]), time.process_time())
    started = time.perf_counter()
    for oms, order_id in orders:
        t0 = time.perf_counter()
        one(oms, order_id)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    cpu = {"sandboxes": (cpu_seconds([urls.pid]) - cpu_before[0]) * 1000 / n,
           "bench": (time.process_time() - cpu_before[1]) * 1000 / n, "wall": wall * 1000 / n}
    return Row("direct loop (sequential)", n, n / wall, percentile(latencies, 50) * 1000,
               percentile(latencies, 99) * 1000, note="per-order latency, one at a time", cpu=cpu)


# -- (b, c) through the runtime ----------------------------------------------------------------------

class Pusher:
    """Posts one order-change event per order to the web process, paced to a rate (or unpaced)."""

    def __init__(self, web_url: str) -> None:
        self.web_url = web_url
        self.http = httpx.Client(timeout=30.0, limits=httpx.Limits(max_connections=PUSHERS))

    def close(self) -> None:
        self.http.close()

    def _post(self, oms: str, order_id: str) -> httpx.Response:
        if oms == "sap":
            body = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/bench/sap",
                    "type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1",
                    "data": {"SalesOrder": order_id}}
            return self.http.post(f"{self.web_url}/events/sap/business-events", json=body)
        body = {"recordType": "salesorder", "id": order_id, "eventId": str(uuid.uuid4())}
        return self.http.post(f"{self.web_url}/events/netsuite", json=body)

    def push(self, orders: list[tuple[str, str]], rate: float | None) -> dict[tuple[str, str], float]:
        """Returns the wall-clock time each push was sent; raises if the intake refused one."""
        sent: dict[tuple[str, str], float] = {}
        lock = threading.Lock()
        start = time.monotonic() + 0.05

        def send(index: int, oms: str, order_id: str) -> None:
            if rate:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            at = time.time()
            response = self._post(oms, order_id)
            if response.status_code != 202:
                raise RuntimeError(f"push of {oms} {order_id}: {response.status_code} {response.text[:200]}")
            with lock:
                sent[(oms, order_id)] = at

        with ThreadPoolExecutor(PUSHERS) as pool:
            for future in [pool.submit(send, i, oms, oid) for i, (oms, oid) in enumerate(orders)]:
                future.result()
        return sent


OrderKey = tuple[str, str]   # (oms, order id), or (alias type, alias id)


def created_times(seeder: SandboxSeeder, aliases: dict[OrderKey, OrderKey]) -> dict[OrderKey, float]:
    """``{(oms, order id): Amazon createdAt}`` for the orders among ``aliases`` Amazon holds."""
    found: dict[OrderKey, float] = {}
    for order in seeder.amazon_orders():
        for alias in order["aliases"]:
            key = aliases.get((alias["aliasType"], alias["aliasId"]))
            if key is not None:
                created = order["metadata"]["createdAt"].replace("Z", "+00:00")
                found[key] = datetime.fromisoformat(created).timestamp()
    return found


def created_count(seeder: SandboxSeeder) -> int:
    return int(seeder.amazon_stats().get("createOrder.created", 0))


class Runtime:
    """One web process and ``workers`` worker processes on one store."""

    def __init__(self, procs: Processes, urls: Sandboxes, seeder: SandboxSeeder, store_url: str, name: str,
                 workers: int, concurrency: int) -> None:
        self.procs, self.urls, self.seeder, self.name = procs, urls, seeder, name
        self.web_port = free_port(HOST)
        self.config = config_for(urls, store_url, self.web_port, concurrency)
        self.config_path = procs.workdir / f"{name}.toml"
        self.config_path.write_text(tomli_w.dumps(self.config))
        self.workers = workers
        self.started: list[subprocess.Popen[bytes]] = []
        self.web_pid = 0
        self.worker_pids: list[int] = []
        self.aliases: dict[tuple[str, str], tuple[str, str]] = {}
        self.policies = {"sap": settings_from_dict(self.config).sap.routing.alias_type,
                         "netsuite": settings_from_dict(self.config).netsuite.routing.alias_type}

    @contextmanager
    def running(self) -> Iterator[Pusher]:
        web, web_log = self.procs.start(f"{self.name}-web", "serve", "--role", "web", "--config",
                                        str(self.config_path))
        self.started.append(web)
        self.web_pid, self.worker_pids = web.pid, []
        pusher = Pusher(f"http://{HOST}:{self.web_port}")
        try:
            wait_for(lambda: httpx.get(f"{pusher.web_url}/health").status_code == 200, 60, "the web process",
                     web_log)
            for n in range(self.workers):
                proc, log = self.procs.start(f"{self.name}-worker{n}", "serve", "--role", "worker",
                                             "--config", str(self.config_path))
                self.started.append(proc)
                self.worker_pids.append(proc.pid)
                wait_for(log_says(log, "worker.start"), 60, f"worker {n}", log)
            yield pusher
        finally:
            pusher.close()
            self.procs.stop(self.started)
            self.started = []

    def run_phase(self, pusher: Pusher, n: int, rate: float | None, timeout: float
                  ) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float], float]:
        orders = seed_orders(self.seeder, n)
        for oms, order_id in orders:
            self.aliases[(self.policies[oms], order_id)] = (oms, order_id)
        before = created_count(self.seeder)
        sent = pusher.push(orders, rate)
        wait_for(lambda: created_count(self.seeder) >= before + n, timeout,
                 f"{n} Amazon orders ({self.name})")
        wall_end = time.time()
        created = created_times(self.seeder, {a: k for a, k in self.aliases.items() if k in sent})
        return sent, created, wall_end

    def cpu(self) -> dict[str, float]:
        return {"sandboxes": cpu_seconds([self.urls.pid]), "web": cpu_seconds([self.web_pid]),
                "workers": cpu_seconds(self.worker_pids), "postgres": cpu_seconds(postgres_pids()),
                "bench": time.process_time()}

    def measure(self, n: int, rate: float | None) -> Row:
        row = Row(f"runtime, {self.name}", n)
        with self.running() as pusher:
            self.run_phase(pusher, WARMUP, None, 60)
            before, wall = self.cpu(), time.monotonic()
            sent, created, _ = self.run_phase(pusher, n, None, max(60.0, n * 0.5))
            after, wall = self.cpu(), time.monotonic() - wall
            row.cpu = {name: (after[name] - before[name]) * 1000 / n for name in before}
            row.cpu["wall"] = wall * 1000 / n
            row.throughput = n / (max(created.values()) - min(sent.values()))
            steady = rate or row.throughput / 2
            m = max(10, n // 2)
            sent, created, _ = self.run_phase(pusher, m, steady, max(60.0, m / steady * 3))
            latencies = [created[key] - sent[key] for key in sent]
            row.p50_ms, row.p99_ms = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
            row.steady_rate = steady
            row.note = f"burst of {n}; latency: {m} pushes at {steady:.1f}/s"
        return row


def store_problems(store_url: str) -> list[str]:
    """Jobs that did not end ``done`` (a benchmark that silently drops orders would measure nothing)."""
    from sqlalchemy import func, select

    from primebridge.runtime.db import Database
    from primebridge.runtime.tables import Job, JobAttempt

    db = Database(store_url)
    try:
        with db.engine.connect() as conn:
            counts = dict(conn.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            attempts = conn.scalar(select(func.count()).select_from(JobAttempt))
    finally:
        db.dispose()
    jobs = sum(counts.values())
    problems = [f"{status}: {count}" for status, count in counts.items() if status != "done"]
    if attempts and attempts > jobs:
        problems.append(f"{attempts - jobs} retried attempts")
    return problems


@contextmanager
def postgres_database(url: str) -> Iterator[str | None]:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            name = f"pb_bench_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"PostgreSQL rows skipped: {url} not usable ({type(exc).__name__}: {exc})")
        yield None
        return
    try:
        yield f"{url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- report ------------------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(rows: list[Row]) -> None:
    header = f"{'row':<34} {'orders':>6} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8}  note"
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        print(f"{row.name:<34} {row.orders:>6} {fmt(row.throughput):>9} {fmt(row.p50_ms, 0):>8} "
              f"{fmt(row.p99_ms, 0):>8}  {row.note}")
        for problem in row.problems:
            print(f"{'':<34} !! {problem}")
    print("\nCPU ms per order during the burst (wall ms per order for comparison; "
          "the bench process runs the direct loop or the pushers):")
    names = ("sandboxes", "web", "workers", "postgres", "bench", "wall")
    print(f"{'row':<34} " + " ".join(f"{name:>9}" for name in names))
    for row in rows:
        print(f"{row.name:<34} " + " ".join(f"{fmt(row.cpu.get(name)):>9}" for name in names))
    by = {row.name: row for row in rows}

    def ratio(a: str, b: str) -> float | None:
        ra, rb = by.get(a), by.get(b)
        if ra is None or rb is None or not ra.throughput or not rb.throughput:
            return None
        return ra.throughput / rb.throughput

    direct = "direct loop (sequential)"
    sqlite_ratio = ratio("runtime, SQLite, 1 worker", direct)
    pg_ratio = ratio("runtime, PostgreSQL, 3 workers", "runtime, PostgreSQL, 1 worker")
    p99s = [row.p99_ms for row in rows if row.name.startswith("runtime") and row.p99_ms is not None]
    print()
    print(f"runtime (SQLite) / direct loop:  {fmt(sqlite_ratio, 2)}   target >= 0.5   "
          f"{verdict(sqlite_ratio, lambda r: r >= 0.5)}")
    print(f"worst runtime p99 push→created:  {fmt(max(p99s) if p99s else None, 0)} ms   target < 2000 ms   "
          f"{verdict(max(p99s) if p99s else None, lambda p: p < 2000)}")
    print(f"PostgreSQL 3 workers / 1 worker: {fmt(pg_ratio, 2)}   target >= 2.0   "
          f"{verdict(pg_ratio, lambda r: r >= 2.0)}")


def verdict(value: float | None, ok: Callable[[float], bool]) -> str:
    return "n/a" if value is None else ("met" if ok(value) else "MISSED")


# -- main --------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300, help="orders per measured burst (default 300)")
    parser.add_argument("--quick", action="store_true", help="60 orders: a smoke run of a minute or so")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="latency knob of the Amazon sandbox, ms per request (default 20)")
    parser.add_argument("--oms-latency-ms", type=float, default=0.0,
                        help="latency knob of the SAP and NetSuite sandboxes (default 0)")
    parser.add_argument("--rate", type=float, default=None,
                        help="pushes/s of the steady phase (default: half the row's burst throughput)")
    parser.add_argument("--concurrency", type=int, default=4, help="runtime.worker_concurrency (default 4)")
    parser.add_argument("--pg-url", default=os.environ.get("PRIMEBRIDGE_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="a PostgreSQL database to create the benchmark database from")
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"which rows to run, comma-separated (default {','.join(ROWS)})")
    args = parser.parse_args()
    n = 60 if args.quick else args.orders
    if n < 10:
        parser.error("--orders must be at least 10")
    only = {row.strip() for row in args.rows.split(",") if row.strip()}
    if not only or only - set(ROWS):
        parser.error(f"--rows takes some of {', '.join(ROWS)}")

    from primebridge.entrypoints.logs import configure

    configure("WARNING")  # the direct loop's connectors log like a worker's; keep the table readable
    print(render(args.pg_url))
    print(f"\norders per burst {n}; Amazon sandbox latency {args.latency_ms:g} ms/request; SAP and NetSuite "
          f"sandbox latency {args.oms_latency_ms:g} ms/request; worker concurrency {args.concurrency}; "
          f"NetSuite account concurrency limit {NETSUITE_ACCOUNT_LIMIT}; {PUSHERS} pushing threads")
    workdir = Path(tempfile.mkdtemp(prefix="primebridge-bench-"))
    procs = Processes(workdir)
    rows: list[Row] = []
    try:
        urls = start_sandboxes(procs, args)
        with SandboxSeeder(amazon_url=urls.amazon, sap_url=urls.sap, netsuite_url=urls.netsuite) as seeder:
            seeder.catalog(DEFAULT_SKUS)
            if "direct" in only:
                print("\n(a) direct loop ...", flush=True)
                rows.append(direct_loop(urls, seeder, n, workdir))
            if "sqlite" in only:
                print("(b) runtime on SQLite, 1 worker ...", flush=True)
                store = f"sqlite:///{workdir / 'bench.db'}"
                runtime = Runtime(procs, urls, seeder, store, "SQLite, 1 worker", 1, args.concurrency)
                rows.append(runtime.measure(n, args.rate))
                rows[-1].problems = store_problems(store)
            for workers in [w for w, key in ((1, "pg1"), (3, "pg3")) if key in only]:
                with postgres_database(args.pg_url) as pg:
                    if pg is None:
                        break
                    name = f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}"
                    print(f"(c) runtime on {name} ...", flush=True)
                    runtime = Runtime(procs, urls, seeder, pg, name, workers, args.concurrency)
                    rows.append(runtime.measure(n, args.rate))
                    rows[-1].problems = store_problems(pg)
    finally:
        procs.stop()
    report(rows)
    print(f"\nlogs: {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
