"""The ``primebridge`` command line: serve, demo, sandboxes and the operators' tools."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from primebridge.config import Settings, load_settings
from primebridge.domain.errors import ConfigError, PrimebridgeError
from primebridge.runtime.jobs import DEAD, DONE, QUEUED, REJECTED, RUNNING

app = typer.Typer(help="primebridge: your OMS and Amazon's fulfillment network, in sync.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect and replay jobs, including dead letters.", no_args_is_help=True)
sync_app = typer.Typer(help="Run a scheduled pull now.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The local Amazon, SAP and NetSuite sandboxes.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
from primebridge.entrypoints.cli_events import events_app  # noqa: E402
from primebridge.entrypoints.cli_inventory import inventory_app  # noqa: E402

for sub, name in ((db_app, "db"), (jobs_app, "jobs"), (sync_app, "sync"), (sandbox_app, "sandbox"),
                  (config_app, "config"), (events_app, "events"), (inventory_app, "inventory")):
    app.add_typer(sub, name=name)

# Piped output (a log file, `| less`) gets a wide page instead of Rich's 80 columns, so ids and
# event types are not cut; a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 200)
JOB_STATUSES = (QUEUED, RUNNING, DONE, REJECTED, DEAD)
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML file; default $PRIMEBRIDGE_CONFIG or ./primebridge.toml.")]


def _settings(path: Path | None) -> Settings:
    from primebridge.entrypoints.logs import configure

    if path is None:
        env = os.environ.get("PRIMEBRIDGE_CONFIG")
        path = Path(env) if env else (Path("primebridge.toml") if Path("primebridge.toml").exists() else None)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    configure(settings.log_level, settings.log_format)
    return settings


def _service(path: Path | None, *, upgrade: bool = True):
    from primebridge.entrypoints.bootstrap import build

    settings = _settings(path)
    try:
        return build(settings, upgrade_db=upgrade)
    except PrimebridgeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


# -- serve / demo ---------------------------------------------------------------------------------

@app.command()
def serve(
    config: ConfigOption = None,
    role: Annotated[str, typer.Option(help="all, web, worker or scheduler.")] = "all",
    host: Annotated[str | None, typer.Option(help="Overrides web.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides web.port.")] = None,
) -> None:
    """Run the service: event intake (ASGI), workers and the scheduler, or one role per process."""
    import uvicorn

    from primebridge.entrypoints.web import create_app
    from primebridge.runtime.wakeup import PostgresListener
    from primebridge.runtime.worker import worker_name

    if role not in ("all", "web", "worker", "scheduler"):
        console.print(f"[red]--role must be all, web, worker or scheduler, not {role!r}[/red]")
        raise typer.Exit(2)
    service = _service(config)
    name = worker_name()
    background: list[threading.Thread] = []
    stop = threading.Event()
    listener = PostgresListener(service.db.url).start() if service.db.is_postgres else None
    if role in ("all", "worker"):
        background.append(threading.Thread(target=service.worker(name).run, args=(stop,), name="worker"))
    if role in ("all", "scheduler"):
        background.append(threading.Thread(target=service.scheduler(name).run, args=(stop,), name="scheduler"))
    if role in ("all", "web"):
        for thread in background:
            thread.start()
        web = service.settings.web
        try:
            uvicorn.run(create_app(service), host=host or web.host, port=port or web.port,
                        log_level="warning", access_log=False,
                        ssl_certfile=str(web.tls_certfile) if web.tls_certfile else None,
                        ssl_keyfile=str(web.tls_keyfile) if web.tls_keyfile else None,
                        proxy_headers=True, forwarded_allow_ips=",".join(web.forwarded_allow_ips))
        finally:
            stop.set()
    else:
        signal_stop = _stop_on_signals()
        for thread in background:
            thread.start()
        signal_stop.wait()
        stop.set()
    for thread in background:
        thread.join(timeout=60)
    if listener:
        listener.stop()
    service.close()


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Keep the sandboxes running afterwards (Ctrl-C stops).")] = False,
) -> None:
    """Run the whole integration against the built-in sandboxes and an embedded SQLite store."""
    from primebridge.demo import run_demo

    raise typer.Exit(run_demo(console, keep=keep))


# -- sandboxes ------------------------------------------------------------------------------------

@sandbox_app.command("serve")
def sandbox_serve(
    host: str = "127.0.0.1",
    amazon_port: int = 8101,
    sap_port: int = 8102,
    netsuite_port: int = 8103,
    spapi_port: int = 8104,
) -> None:
    """Serve the Amazon (Buy with Prime, SP-API), SAP S/4HANA and NetSuite sandboxes until Ctrl-C."""
    from primebridge.sandbox.server import start_all

    stop = _stop_on_signals()
    servers = start_all(host=host, amazon_port=amazon_port, sap_port=sap_port, netsuite_port=netsuite_port,
                        spapi_port=spapi_port)
    for name, server in servers.items():
        console.print(f"{name:9} {server.url}   (admin API: {server.url}/_sandbox/)")
    console.print("a primebridge.toml for them: primebridge sandbox config > primebridge.toml "
                  "(give it the same --host and ports)", soft_wrap=True)
    stop.wait()
    for server in servers.values():
        server.stop()


@sandbox_app.command("config")
def sandbox_config_command(
    host: str = "127.0.0.1",
    amazon_port: int = 8101,
    sap_port: int = 8102,
    netsuite_port: int = 8103,
    spapi_port: int = 8104,
    store: Annotated[str, typer.Option(help="Store URL.")] = "sqlite:///var/primebridge.db",
    web_port: Annotated[int, typer.Option(help="Port of primebridge's own HTTP app (web.port).")] = 8080,
) -> None:
    """Print a primebridge.toml that points at `sandbox serve`'s sandboxes, with their credentials.

    Written as TOML rather than documented as keys to copy, so the file is always what the sandboxes
    accept; events go to this primebridge's /events/amazon (web.public_url).
    """
    import tomli_w

    from primebridge.sandbox.profile import sandbox_config

    base = f"http://{host}"
    data = sandbox_config(amazon_url=f"{base}:{amazon_port}", sap_url=f"{base}:{sap_port}",
                          netsuite_url=f"{base}:{netsuite_port}", spapi_url=f"{base}:{spapi_port}", store_url=store)
    data["web"] = {"host": host, "port": web_port, "public_url": f"{base}:{web_port}"}
    # The SP-API sandbox is there, so inventory runs too (mapping table: inventory.mapping_file).
    data["inventory"] = {"enabled": True}
    sys.stdout.write("# primebridge against the local sandboxes (primebridge sandbox serve); literal sandbox "
                     "credentials.\n# Check it with: primebridge config check --config primebridge.toml\n\n")
    sys.stdout.write(tomli_w.dumps(data))


# -- database ------------------------------------------------------------------------------------

@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the schema to the newest revision."""
    from primebridge.runtime import migrate
    from primebridge.runtime.db import Database

    db = Database(_settings(config).store.url)
    migrate.upgrade(db)
    console.print(f"schema at revision {migrate.current_revision(db)}")


@db_app.command("current")
def db_current(config: ConfigOption = None) -> None:
    """Show the schema revision."""
    from primebridge.runtime import migrate
    from primebridge.runtime.db import Database

    db = Database(_settings(config).store.url)
    console.print(f"current: {migrate.current_revision(db)}   head: {migrate.head_revision()}")


# -- sync -----------------------------------------------------------------------------------------

@sync_app.command("orders")
def sync_orders(
    config: ConfigOption = None,
    oms: Annotated[str | None, typer.Option(help="sap or netsuite; default every enabled OMS.")] = None,
    process: Annotated[bool, typer.Option(help="Also run a worker until the queue is idle.")] = False,
) -> None:
    """Pull sales orders changed since the watermark now and enqueue their sync."""
    service = _service(config)
    targets = [oms] if oms else list(service.fulfill)
    if not targets:
        console.print("[yellow]no OMS is enabled (set sap.enabled or netsuite.enabled)[/yellow]")
        raise typer.Exit(1)
    for target in targets:
        try:
            added = service.pull_orders(target)
        except PrimebridgeError as exc:
            console.print(f"[red]{target}: {exc}[/red]")
            raise typer.Exit(1) from None
        console.print(f"{target}: {added} order sync job(s) enqueued")
    if process:
        service.worker().run_until_idle(timeout=3600)
        _print_jobs(service, None, 50)


# -- jobs -----------------------------------------------------------------------------------------

def _ts(value: float | None) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _print_jobs(service: object, status: str | None, limit: int) -> None:
    from primebridge.entrypoints.web import _jobs

    table = Table("id", "kind", "order", "status", "attempts", "next attempt", "outcome / last error")
    for job in _jobs(service, status, limit):  # type: ignore[arg-type]
        text = job.outcome if job.status in ("done", "rejected") else (job.last_error or "")
        table.add_row(str(job.id), job.kind, job.ordering_key, job.status, f"{job.attempts}/{job.max_attempts}",
                      _ts(job.next_attempt_at) if job.status == "queued" else "", (text or "")[:120])
    console.print(table)


@jobs_app.command("list")
def jobs_list(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option(help="queued, running, done, rejected or dead.")] = None,
    limit: int = 50,
) -> None:
    """List the newest jobs (filter by status, e.g. dead for the dead letters)."""
    if status is not None and status not in JOB_STATUSES:
        raise typer.BadParameter(f"unknown status {status!r}; one of {', '.join(JOB_STATUSES)}",
                                 param_hint="--status")
    service = _service(config)
    console.print(" · ".join(f"{k}: {v}" for k, v in sorted(service.queue.counts().items())) or "no jobs")
    _print_jobs(service, status, limit)


@jobs_app.command("show")
def jobs_show(job_id: int, config: ConfigOption = None) -> None:
    """Show one job with every attempt and its error."""
    from primebridge.entrypoints.web import _job_json, job_detail

    service = _service(config)
    try:
        job, attempts = job_detail(service, job_id)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(_job_json(job)))
    table = Table("attempt", "worker", "started", "finished", "status", "error")
    for a in attempts:
        table.add_row(str(a.attempt), a.worker, _ts(a.started_at), _ts(a.finished_at), a.status,
                      (a.error or "")[:200])
    console.print(table)


def _requeue(job_id: int, config: Path | None, reset: bool) -> None:
    service = _service(config)
    try:
        done = service.queue.requeue(job_id, reset_attempts=reset)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if not done:
        console.print(f"[yellow]job {job_id} is not in a state that can be "
                      f"{'replayed (it must be finished)' if reset else 'retried (it must be dead or rejected)'}"
                      "[/yellow]")
        raise typer.Exit(1)
    console.print(f"job {job_id} queued again")


@jobs_app.command("retry")
def jobs_retry(job_id: int, config: ConfigOption = None) -> None:
    """Queue a dead-lettered or rejected job again (after fixing the cause)."""
    _requeue(job_id, config, reset=False)


@jobs_app.command("replay")
def jobs_replay(job_id: int, config: ConfigOption = None) -> None:
    """Run any finished job again from its first attempt; handlers are idempotent."""
    _requeue(job_id, config, reset=True)


# -- audit / config -------------------------------------------------------------------------------

@app.command()
def audit(order: str, config: ConfigOption = None,
          full: Annotated[bool, typer.Option(help="Print request and response bodies.")] = False) -> None:
    """Every API call and decision about one order (OMS or Amazon id), in time order."""
    service = _service(config)
    rows = service.audit.for_order(order)
    if not rows:
        console.print(f"[yellow]nothing recorded for {order}[/yellow]")
        raise typer.Exit(1)
    table = Table("time", "system", "operation", "status", "http", "ms", "job", "detail")
    for r in rows:
        detail = (r.response or "") if r.system == "primebridge" else ""
        table.add_row(_ts(r.at), r.system, r.operation, r.status, str(r.http_status or ""),
                      f"{r.duration_ms:.0f}" if r.duration_ms else "", str(r.job_id or ""), detail[:100])
    console.print(table)
    if full:
        for r in rows:
            console.print(f"[bold]{r.system} {r.operation}[/bold]\n  request:  {r.request}\n  response: {r.response}")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration and reach every configured system."""
    from primebridge.entrypoints.checks import run_checks

    settings = _settings(config)
    ok = run_checks(settings, console)
    raise typer.Exit(0 if ok else 1)


def main() -> None:  # pragma: no cover - console script
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
