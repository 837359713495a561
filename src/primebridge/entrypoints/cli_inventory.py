"""``primebridge inventory``: real-time and full reconciliation from Amazon into the OMS."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import Progress as Bar
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from primebridge.domain.errors import PrimebridgeError

if TYPE_CHECKING:
    from rich.console import Console

    from primebridge.runtime.inventory_store import InventoryStore

inventory_app = typer.Typer(help="Inventory from Amazon into the OMS: sync, reports.", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML file; default $PRIMEBRIDGE_CONFIG or ./primebridge.toml.")]


def _inventory(config: Path | None):  # type: ignore[no-untyped-def]
    from primebridge.entrypoints.cli import _service, console

    service = _service(config)
    if service.inventory is None:
        console.print("[yellow]inventory sync is not enabled (set inventory.enabled = true and spapi.*)[/yellow]")
        raise typer.Exit(2)
    return service, console


def _when(value: float | None) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _resume_hint(console: Console, store: InventoryStore) -> None:
    """How to continue the run that ``--resume`` would pick up, unless it is still running."""
    from primebridge.flows.amazon_to_oms.inventory_reconciliation import shown_status

    unfinished = store.unfinished_run()
    if unfinished is not None and (status := shown_status(store, unfinished)) != "running":
        console.print(f"[yellow]run {unfinished.id} stopped {status}; continue it with "
                      "inventory sync --full --resume (or start over with inventory sync --full)[/yellow]")


@inventory_app.command("sync")
def sync(
    config: ConfigOption = None,
    full: Annotated[bool, typer.Option("--full", help="Reconcile every SKU Amazon reports.")] = False,
    sku: Annotated[list[str] | None, typer.Option("--sku", help="Sync these seller SKUs now (repeatable).")] = None,
    oms: Annotated[list[str] | None, typer.Option("--oms", help="sap or netsuite; default every one "
                                                  "inventory.oms covers (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted full run instead of "
                                         "starting a new one.")] = False,
) -> None:
    """Sync inventory now: a full reconciliation (--full) or single SKUs (--sku)."""
    from primebridge.flows.amazon_to_oms.inventory_reconciliation import Progress, report_paths

    if full == bool(sku):
        typer.echo("give either --full or --sku SKU", err=True)
        raise typer.Exit(2)
    service, console = _inventory(config)
    inventory = service.inventory
    try:
        if sku:
            failed = False
            for one in sku:
                try:
                    console.print(escape(inventory.realtime.sync_sku(one, oms=oms or None)))
                except PrimebridgeError as exc:
                    failed = True
                    console.print(f"[red]{escape(one)}: {escape(str(exc))}[/red]")
            raise typer.Exit(1 if failed else 0)
        stop = threading.Event()
        # One text column that wraps: in an 80-column terminal rich would otherwise squeeze fixed
        # columns and cut digits off the counters (or drop the clock).
        with Bar(SpinnerColumn(), TimeElapsedColumn(table_column=Column(min_width=7, no_wrap=True)),
                 TextColumn("[bold]run {task.fields[run]}[/bold] {task.fields[scanned]} scanned, "
                            "{task.fields[diff]} differences, {task.fields[posted]} posted, "
                            "{task.fields[rate]:.0f} items/s, {task.fields[problems]} problems",
                            table_column=Column(overflow="fold")),
                 console=console, transient=False) as bar:
            task = bar.add_task("inventory", total=None, run="…", scanned=0, diff=0, posted=0, problems=0, rate=0.0)

            def show(p: Progress) -> None:
                bar.update(task, run=p.run_id, scanned=p.scanned, diff=p.differences, posted=p.posted,
                           problems=p.problems, rate=p.rate)

            try:
                run = inventory.reconciliation.run(oms or None, resume=resume, progress=show, stop=stop)
            except KeyboardInterrupt:
                stop.set()
                console.print("[yellow]interrupted: continue with inventory sync --full --resume[/yellow]")
                raise typer.Exit(130) from None
        c = run.counters
        csv_path, json_path = report_paths(inventory.reconciliation.report_dir, run.id)
        console.print(f"run {run.id} {run.status}: {c.scanned} SKUs scanned; per SKU and OMS "
                      f"({', '.join(run.oms)}): {c.equal} equal, {c.differences} differences, {c.posted} adjusted "
                      f"in {c.documents} document(s), {c.unmapped} unmapped, {c.unknown} unknown, {c.invalid} invalid, "
                      f"{c.failed} failed", highlight=False)
        console.print(f"drift report: {csv_path}  {json_path}", soft_wrap=True, highlight=False)
        if c.failed:
            console.print(f"[yellow]failed items are in the report (inventory report {run.id} --action failed); "
                          "the next run retries them[/yellow]")
        raise typer.Exit(0 if c.failed == 0 else 1)
    except PrimebridgeError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        _resume_hint(console, inventory.store)
        raise typer.Exit(1) from None
    finally:
        service.close()


@inventory_app.command("report")
def report(
    run_id: Annotated[int | None, typer.Argument(metavar="[RUN]", help="Run id; default the newest run.")] = None,
    config: ConfigOption = None,
    action: Annotated[str | None, typer.Option(help="Only rows with this action (increase, decrease, "
                                               "unmapped, unknown, invalid, failed).")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print (the CSV/JSON files hold all).")] = 100,
) -> None:
    """Show a run's drift report: every SKU that was not equal, with the action and document."""
    from primebridge.flows.amazon_to_oms.inventory_reconciliation import iter_report, report_paths, shown_status

    service, console = _inventory(config)
    store = service.inventory.store
    try:
        runs = store.runs(limit=1) if run_id is None else [r for r in [store.get_run(run_id)] if r is not None]
        if not runs:
            console.print(f"[yellow]{'no inventory run yet' if run_id is None else f'no run {run_id}'}[/yellow]")
            raise typer.Exit(1)
        run = runs[0]
        c = run.counters
        status = shown_status(store, run)
        console.print(f"[bold]run {run.id}[/bold] ({', '.join(run.oms)}, {run.trigger}) {status}; started "
                      f"{_when(run.started_at)}, finished {_when(run.finished_at) or '-'}; {c.scanned} SKUs "
                      f"scanned; per SKU and OMS: {c.equal} equal, {c.differences} differences, {c.posted} adjusted, "
                      f"{c.unmapped} unmapped, {c.unknown} unknown, {c.invalid} invalid, {c.failed} failed"
                      + (f"; error: {escape(run.error)}" if run.error else ""), soft_wrap=True)
        table = Table("OMS", "seller SKU", "OMS item", "Amazon", "OMS", "action", "document", "reason")
        shown = 0
        for row in iter_report(store, run.id):
            if action and row["action"] != action:
                continue
            if shown >= limit:
                shown += 1
                continue
            colour = {"increase": "green", "decrease": "green", "failed": "red"}.get(row["action"], "yellow")
            table.add_row(row["oms"], escape(row["seller_sku"]), escape(row["oms_item"]), row["amazon_quantity"],
                          row["oms_quantity"], f"[{colour}]{row['action']}[/{colour}]" + (
                              " (pending)" if row["status"] == "pending" else ""),
                          row["document"], escape(row["reason"][:400]))
            shown += 1
        console.print(table)
        if shown > limit:
            console.print(f"… {shown - limit} more rows")
        csv_path, json_path = report_paths(service.inventory.reconciliation.report_dir, run.id)
        if csv_path.exists():
            console.print(f"files: {csv_path}  {json_path}", soft_wrap=True)
        if status != "done":
            _resume_hint(console, store)
    finally:
        service.close()


@inventory_app.command("runs")
def runs(config: ConfigOption = None, limit: int = 20) -> None:
    """List the newest full reconciliation runs (a run whose process died shows as interrupted)."""
    from primebridge.flows.amazon_to_oms.inventory_reconciliation import shown_status

    service, console = _inventory(config)
    store = service.inventory.store
    try:
        table = Table("run", "OMS", "trigger", "status", "started", "finished", "scanned", "adjusted", "problems")
        for run in store.runs(limit):
            c = run.counters
            table.add_row(str(run.id), ", ".join(run.oms), run.trigger, shown_status(store, run),
                          _when(run.started_at), _when(run.finished_at), str(c.scanned), str(c.posted),
                          str(c.unmapped + c.unknown + c.invalid + c.failed))
        console.print(table)
        _resume_hint(console, store)
    finally:
        service.close()
