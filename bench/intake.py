"""Benchmark: Buy with Prime event intake, durable endpoint next to a bare one, in the same run.

    .venv/bin/python bench/intake.py [--seconds 10] [--rate 500] [--connections 32] [--rounds 3]
                                     [--no-postgres] [--oms-latency 100 [--ship-rate 10]]

Rows, each served by uvicorn on 127.0.0.1 in its own process, loaded from another process:

- **bare**: a Starlette endpoint that reads the body and answers 200, storing nothing. The yardstick
  for what the web stack (uvicorn, Starlette, the client) costs on this machine. (The durable route
  is a plain ASGI app mounted in the same Starlette router, skipping ``Request``/``JSONResponse``;
  a bare endpoint written that way too runs about 5-10 % faster than this one.)
- **durable, SQLite / PostgreSQL**: ``POST /events/amazon`` of ``primebridge serve``'s app (web role,
  no worker): Basic auth, envelope parsing, then message + event + job committed before the 200.

Each row is measured twice:

- at a **fixed offered rate** (``--rate``, 500 events/s by default): requests are scheduled at
  fixed times over up to ``--connections`` keep-alive connections, and latency counts from the
  scheduled time (so a stall is not hidden by requests that were simply sent later);
- at **max rate**: ``--connections`` connections send back to back for ``--seconds``, in
  ``--rounds`` rounds in which the endpoints take turns; the durable/bare ratio is taken per round
  and its median reported, so load from neighbours on a shared machine hits both sides alike. The
  server's CPU per request (all its threads, from /proc) is printed too: a figure that load from
  other processes disturbs less than throughput. On PostgreSQL the database server's own CPU comes
  on top, on the same two cores.

Acknowledgement latency is request scheduled/sent → response read. Every durable run is checked
afterwards: the store must hold exactly one event per 200 "accepted" answer.

With ``--oms-latency N``, ``oms_latency.py`` then measures event → OMS document through the real
path (sandboxes, web and worker processes), on SQLite and on a fresh PostgreSQL database.

Targets (2 cores): durable throughput ≥ half the bare throughput; p99 acknowledgement < 50 ms at
500 events/s; p99 event → OMS document < 2 s. The load generator is a minimal asyncio HTTP/1.1
client written here because a general client (httpx) costs more CPU per request than the endpoint
being measured, on the same two cores; it uses about a third of a core when the bare endpoint
saturates its one (checked with /proc), so the bare row is limited by the server, not by the
generator. The durable server runs at the default log level (INFO). Everything talks to
127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fulfill import percentile
from machine import DEFAULT_PG_URL, render

from primebridge.sandbox.server import free_port

HOST = "127.0.0.1"
EVENT_TYPE = "PACKAGE_DELIVERED"
USER, PASSWORD = "bwp-bench", "bench-password"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
WARMUP = 300
BP = "businessProduct/bp-00000000-0000-4000-8000-0000000be0c4"


# -- servers (run in child processes) --------------------------------------------------------------

def serve_bare(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def bare(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "accepted"})

    uvicorn.run(Starlette(routes=[Route("/events/amazon", bare, methods=["POST"])]), host=HOST, port=port,
                log_level="warning", access_log=False)


def serve_durable(port: int, store_url: str) -> None:
    import uvicorn

    from primebridge.entrypoints.bootstrap import build
    from primebridge.entrypoints.logs import configure
    from primebridge.entrypoints.web import create_app
    from primebridge.sandbox.profile import sandbox_settings

    closed = f"http://{HOST}:9"   # the intake calls no remote system
    settings = sandbox_settings(amazon_url=closed, sap_url=closed, netsuite_url=closed, store_url=store_url,
                                overrides={"events.basic_username": USER, "events.basic_password": PASSWORD})
    configure(settings.log_level, settings.log_format)
    service = build(settings)
    # As in production an accepted event gets its job; register a handler if no flow did.
    service.event_handlers.setdefault(EVENT_TYPE, lambda event: "bench")
    uvicorn.run(create_app(service), host=HOST, port=port, log_level="warning", access_log=False)


# -- load generator (runs in a child process) -------------------------------------------------------

def bodies(n: int, prefix: str) -> list[bytes]:
    """``n`` distinct events over 200 orders, webhook envelope, built before the clock starts."""
    out = []
    for i in range(n):
        event_id = f"{prefix}-{i}"
        out.append(json.dumps({
            "idempotencyKey": base64.b64encode(f"sub#{event_id}".encode()).decode(), "eventDescriptor": EVENT_TYPE,
            "resources": [f"{BP}/order/ORD-{i % 200}/delivery/{event_id}"], "eventId": event_id,
            "apiVersion": "2024-11-01", "subscriptionId": "sub", "eventTime": "2025-01-20T12:34:56Z",
            "data": {}}).encode())
    return out


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        self.writer.write(b"POST /events/amazon HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + AUTH.encode()
                          + b"\r\nContent-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


@dataclass
class Tally:
    latencies: list[float]
    accepted: int = 0
    errors: int = 0

    def record(self, started: float, status: int, answer: bytes) -> None:
        self.latencies.append(time.perf_counter() - started)
        if status == 200 and b'"accepted"' in answer:
            self.accepted += 1
        else:
            self.errors += 1


async def load(port: int, mode: str, seconds: float, rate: float, connections: int, prefix: str) -> dict[str, Any]:
    # Max mode: enough distinct events that even the bare endpoint cannot run out before the deadline.
    total = int(rate * seconds) if mode == "rate" else int(seconds * 15000)
    events = bodies(WARMUP + total, prefix)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    warm = Tally([])
    for body in events[:WARMUP]:
        conn = await pool.get()
        warm.record(time.perf_counter(), *await conn.post(body))
        pool.put_nowait(conn)
    tally = Tally([])
    todo = iter(events[WARMUP:])
    start = time.perf_counter()
    if mode == "rate":
        tasks = []

        async def one(body: bytes, due: float) -> None:
            conn = await pool.get()
            try:
                tally.record(due, *await conn.post(body))
            finally:
                pool.put_nowait(conn)

        for i, body in enumerate(todo):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(body, due)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
    else:
        deadline = start + seconds

        async def sender() -> None:
            conn = await pool.get()
            for body in todo:
                if time.perf_counter() >= deadline:
                    break
                sent = time.perf_counter()
                tally.record(sent, *await conn.post(body))

        await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(connections))), timeout=seconds + 60)
    elapsed = time.perf_counter() - start
    done = len(tally.latencies)
    return {"requests": done, "accepted": tally.accepted, "errors": tally.errors + warm.errors,
            "warm_accepted": warm.accepted, "elapsed": elapsed, "throughput": done / elapsed,
            "p50_ms": percentile(tally.latencies, 50) * 1000, "p99_ms": percentile(tally.latencies, 99) * 1000}


# -- orchestration ----------------------------------------------------------------------------------

class Server:
    """One server child process, stopped (TERM, then KILL) whatever happens."""

    def __init__(self, kind: str, workdir: Path, store_url: str | None = None) -> None:
        self.port = free_port()
        args = [sys.executable, __file__, "--serve", kind, "--port", str(self.port)]
        if store_url:
            args += ["--store", store_url]
        self.log = workdir / f"{kind}-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMEBRIDGE__")}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited:\n{self.log.read_text(errors='replace')[-2000:]}")
            with suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{kind} server did not listen within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def run_load(port: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--load", mode, "--port", str(port), "--seconds", str(args.seconds),
           "--rate", str(args.rate), "--connections", str(args.connections), "--prefix", uuid.uuid4().hex[:12]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds * 3 + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stored_events(store_url: str) -> int:
    from sqlalchemy import func, select

    from primebridge.runtime.db import Database
    from primebridge.runtime.tables import AmazonEventRow

    db = Database(store_url)
    try:
        with db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(AmazonEventRow)) or 0)
    finally:
        db.dispose()


class PgDatabase:
    """A fresh database on the benchmark's PostgreSQL server, dropped afterwards."""

    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.admin_url = admin_url
        self.name = f"pb_bench_intake_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = f"{admin_url.rsplit('/', 1)[0]}/{self.name}"
        self.extra: list[str] = []

    def fresh_url(self, suffix: str) -> str:
        """Another fresh database next to this one (dropped with it)."""
        import psycopg

        name = f"{self.name}_{suffix}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.extra.append(name)
        return f"{self.admin_url.rsplit('/', 1)[0]}/{name}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in [self.name, *self.extra]:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Row:
    endpoint: str
    store: str
    mode: str
    result: dict[str, Any]
    stored: int | None = None
    cpu_us: float | None = None     # server process CPU per request, µs (all its threads)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(kind: str, store: str, store_url: str | None, mode: str, workdir: Path,
            args: argparse.Namespace) -> Row:
    server = Server(kind, workdir, store_url)
    try:
        before = stored_events(store_url) if store_url else None
        cpu_before = process_cpu(server.proc.pid)
        result = run_load(server.port, mode, args)
        cpu = process_cpu(server.proc.pid) - cpu_before
        stored = stored_events(store_url) - before if store_url and before is not None else None
        if stored is not None:
            stored -= result["warm_accepted"]
    finally:
        server.stop()
    row = Row(kind, store, mode, result, stored, cpu / max(1, result["requests"] + WARMUP) * 1e6)
    print(f"  {kind:8} {store:10} {mode:4}  {result['throughput']:7.0f}/s  p50 {result['p50_ms']:6.1f} ms"
          f"  p99 {result['p99_ms']:6.1f} ms  errors {result['errors']}  server CPU {row.cpu_us:5.0f} µs/request",
          flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3,
                        help="max-rate rounds; each runs every endpoint back to back, and the ratio is per round")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--oms-latency", type=int, default=0, metavar="N",
                        help="also ship N packages through the sandboxes and measure event → OMS document latency")
    parser.add_argument("--ship-rate", type=float, default=10.0, help="packages shipped per second (--oms-latency)")
    parser.add_argument("--pg-url", default=os.environ.get("PRIMEBRIDGE_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--serve", choices=["bare", "durable"], help=argparse.SUPPRESS)
    parser.add_argument("--load", choices=["rate", "max"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="ev", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "bare":
        serve_bare(args.port)
        return 0
    if args.serve == "durable":
        serve_durable(args.port, args.store)
        return 0
    if args.load:
        print(json.dumps(asyncio.run(load(args.port, args.load, args.seconds, args.rate, args.connections,
                                          args.prefix))))
        return 0

    print(render())
    print(f"\nintake: {args.seconds:.0f} s per run, offered rate {args.rate:.0f}/s, max rate with "
          f"{args.connections} connections, {args.rounds} max-rate rounds\n", flush=True)
    rows: list[Row] = []
    latency: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pb-bench-intake-") as tmp:
        workdir = Path(tmp)
        pg: PgDatabase | None = None
        if not args.no_postgres:
            try:
                pg = PgDatabase(args.pg_url.replace("postgresql+psycopg://", "postgresql://"))
            except Exception as exc:
                print(f"  PostgreSQL skipped: {type(exc).__name__}: {exc}")
        try:
            targets: list[tuple[str, str, str | None]] = [
                ("bare", "-", None), ("durable", "sqlite", f"sqlite:///{workdir / 'intake.db'}")]
            if pg is not None:
                targets.append(("durable", "postgresql", pg.url))
            for kind, store, url in targets:
                rows.append(measure(kind, store, url, "rate", workdir, args))
            # Max rate: the endpoints take turns within each round, so a neighbour's load on this
            # shared machine hits both sides of a ratio alike.
            for _ in range(args.rounds):
                for kind, store, url in targets:
                    rows.append(measure(kind, store, url, "max", workdir, args))
            if args.oms_latency:
                from oms_latency import measure_oms_latency

                for store, url in [("sqlite", f"sqlite:///{workdir / 'oms.db'}")] + (
                        [("postgresql", pg.fresh_url("oms"))] if pg is not None else []):
                    latency.append(measure_oms_latency(store, url, args.oms_latency, args.ship_rate, workdir))
        finally:
            if pg is not None:
                pg.drop()
    report(rows, latency, args)
    return 0


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def report(rows: list[Row], latency: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("\n| endpoint | store | load | events/s | p50 ack ms | p99 ack ms | server CPU µs/event | errors |"
          " stored = accepted |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        r = row.result
        load_text = f"{args.rate:.0f}/s offered" if row.mode == "rate" else f"max, {args.connections} conn"
        check = "" if row.stored is None else ("yes" if row.stored == r["accepted"] else
                                               f"NO ({row.stored} stored, {r['accepted']} accepted)")
        print(f"| {row.endpoint} | {row.store} | {load_text} | {r['throughput']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {row.cpu_us or 0:.0f} | {r['errors']} | {check} |")
    print()
    bare = [r for r in rows if r.endpoint == "bare" and r.mode == "max"]
    for store in dict.fromkeys(r.store for r in rows if r.endpoint == "durable"):
        durable = [r for r in rows if r.store == store and r.mode == "max"]
        ratios = [d.result["throughput"] / b.result["throughput"] for d, b in zip(durable, bare, strict=False)]
        if ratios:
            ratio = median(ratios)
            cpu = median([b.cpu_us or 0 for b in bare]) / max(1e-9, median([d.cpu_us or 0 for d in durable]))
            print(f"{store}: durable/bare max throughput, median of rounds {ratio:.2f} "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}; target ≥ 0.50) "
                  f"{'ok' if ratio >= 0.5 else 'MISSED'}"
                  f"; bare/durable server CPU per event {cpu:.2f}")
        for row in rows:
            if row.store == store and row.mode == "rate":
                p99 = row.result["p99_ms"]
                print(f"{store}: p99 ack at {args.rate:.0f}/s {p99:.1f} ms (target < 50 ms) "
                      f"{'ok' if p99 < 50 else 'MISSED'}")
    if latency:
        print("\n| store | packages | ship rate /s | OMS documents | p50 event → OMS ms | p99 event → OMS ms |"
              " p50 ship → OMS ms | p99 ship → OMS ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for lat in latency:
            print(f"| {lat['store']} | {lat['packages']} | {lat['rate']:.0f} | {lat['documents']} | "
                  f"{lat['event_p50_ms']:.0f} | {lat['event_p99_ms']:.0f} | {lat['ship_p50_ms']:.0f} | "
                  f"{lat['ship_p99_ms']:.0f} |")
        for lat in latency:
            print(f"{lat['store']}: p99 event → OMS document {lat['event_p99_ms']:.0f} ms (target < 2000 ms) "
                  f"{'ok' if lat['event_p99_ms'] < 2000 and lat['documents'] == lat['packages'] else 'MISSED'}")


if __name__ == "__main__":
    raise SystemExit(main())
