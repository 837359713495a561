"""``primebridge events``: subscribe in Buy with Prime, list received events, replay them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated
from urllib.parse import urljoin

import typer
from rich.table import Table

from primebridge.domain.errors import PrimebridgeError

events_app = typer.Typer(help="Buy with Prime events: subscriptions, received events, replay.",
                         no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML file; default $PRIMEBRIDGE_CONFIG or ./primebridge.toml.")]


def _cli() -> ModuleType:
    """The main cli module (console, ``_service``); imported late because it imports this one."""
    from primebridge.entrypoints import cli

    return cli


def _destination(service: object) -> str:
    from primebridge.entrypoints.web_amazon_events import EVENTS_PATH

    settings = service.settings  # type: ignore[attr-defined]
    if settings.events.destination_url:
        return str(settings.events.destination_url)
    if settings.web.public_url:
        return str(settings.web.public_url).rstrip("/") + EVENTS_PATH
    raise PrimebridgeError("set events.destination_url or web.public_url: BwP needs the URL it delivers to")


@events_app.command("subscribe")
def events_subscribe(config: ConfigOption = None) -> None:
    """Create the auth profile and one subscription per needed event type for this primebridge."""
    from primebridge.connectors.amazon.subscriptions import (
        basic_auth_config,
        build_subscriptions,
        oauth_auth_config,
    )
    from primebridge.entrypoints.web_amazon_events import TOKEN_PATH

    cli = _cli()
    service = cli._service(config)
    cfg = service.settings.events
    try:
        url = _destination(service)
        types = list(cfg.event_types) or sorted(service.event_handlers)
        if not types:
            raise PrimebridgeError("no event type to subscribe: no flow handles Amazon events and "
                                   "events.event_types is empty")
        if cfg.subscribe_auth == "oauth":
            if not cfg.oauth_client_id or cfg.oauth_client_secret is None:
                raise PrimebridgeError("events.subscribe_auth is oauth: set events.oauth_client_id and "
                                       "events.oauth_client_secret")
            auth = oauth_auth_config(cfg.oauth_client_id, cfg.oauth_client_secret.reveal(), urljoin(url, TOKEN_PATH))
        else:
            if not cfg.basic_username or cfg.basic_password is None:
                raise PrimebridgeError("events.subscribe_auth is basic: set events.basic_username and "
                                       "events.basic_password")
            auth = basic_auth_config(cfg.basic_username, cfg.basic_password.reveal())
        bwp = build_subscriptions(service.settings.amazon, audit=service.audit)
        profile = bwp.ensure_auth_profile(cfg.auth_profile_alias, auth)
        results = bwp.subscribe(types, url, profile)
    except PrimebridgeError as exc:
        cli.console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    cli.console.print(f"auth profile {profile} ({cfg.subscribe_auth}) → {url}")
    table = Table("event type", "subscription", "")
    for result in results:
        table.add_row(result.event_type, result.subscription_id or "?", "created" if result.created else "existed")
    cli.console.print(table)


@events_app.command("subscriptions")
def events_subscriptions(config: ConfigOption = None) -> None:
    """The event subscriptions Buy with Prime has for this store."""
    from primebridge.connectors.amazon.subscriptions import build_subscriptions

    cli = _cli()
    service = cli._service(config)
    try:
        found = build_subscriptions(service.settings.amazon, audit=service.audit).subscriptions()
    except PrimebridgeError as exc:
        cli.console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    table = Table("subscription", "event type", "destination", "auth profile")
    for sub in found:
        table.add_row(sub.subscription_id, sub.event_type or "", sub.url or sub.arn or "", sub.auth_profile_id or "")
    cli.console.print(table)


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2025-01-20T12:00:00Z)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


@events_app.command("list")
def events_list(
    config: ConfigOption = None,
    since: Annotated[str | None, typer.Option(help="Received at or after this ISO 8601 time (UTC if no zone).")] = None,
    status: Annotated[str | None, typer.Option(help="queued, done, ignored, rejected or dead.")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="e.g. PACKAGE_DELIVERED.")] = None,
    order: Annotated[str | None, typer.Option(help="Amazon order id.")] = None,
    limit: int = 50,
) -> None:
    """Received Buy with Prime events, newest first, with their outcome."""
    from primebridge.runtime.events import DEAD, DONE, IGNORED, QUEUED, REJECTED, list_events

    statuses = (QUEUED, DONE, IGNORED, REJECTED, DEAD)
    if status is not None and status not in statuses:  # else a typo lists nothing, which reads as "no events"
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(statuses)}", param_hint="--status")
    cli = _cli()
    service = cli._service(config)
    views = list_events(service.db, since=_since(since), status=status, event_type=event_type, order_id=order,
                        limit=limit)
    table = Table("id", "received", "type", "order", "event id", "status", "job", "outcome / last error")
    for v in views:
        text = v.outcome or (f"attempt {v.attempts}: {v.last_error}" if v.last_error else "")
        table.add_row(str(v.id), cli._ts(v.received_at), v.event_type, v.order_id or "", v.event_id[:40], v.status,
                      str(v.job_id or ""), text[:120])
    cli.console.print(table)


@events_app.command("replay")
def events_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Event ids (as in events list) or Amazon eventIds.")] = None,
    since: Annotated[str | None, typer.Option(help="Every event received at or after this ISO 8601 time.")] = None,
    config: ConfigOption = None,
    process: Annotated[bool, typer.Option(help="Also run a worker until the queue is idle.")] = False,
) -> None:
    """Process stored events again (handlers are idempotent); events still waiting are left alone."""
    from primebridge.runtime.events import find_event_rows, replay

    cli = _cli()
    if not ids and since is None:
        cli.console.print("[red]give event ids or --since[/red]")
        raise typer.Exit(2)
    service = cli._service(config)
    rows = find_event_rows(service.db, ids=ids or (), since=_since(since))
    # Each id is looked up alone too, so a mistyped one among several is named, not skipped silently.
    unknown = [i for i in ids or () if not find_event_rows(service.db, ids=[i])]
    for missing in unknown:
        cli.console.print(f"[yellow]no such event: {missing}[/yellow]")
    if not rows:
        if not unknown:
            cli.console.print("[yellow]no event received since then[/yellow]")
        raise typer.Exit(1)
    result = replay(service.db, rows, max_attempts=service.settings.runtime.max_attempts)
    for row_id, job_id in result.items():
        cli.console.print(f"event {row_id}: " + (f"job {job_id} queued" if job_id else "still waiting, left alone"))
    if process:
        service.worker().run_until_idle(timeout=3600)
    if unknown:
        raise typer.Exit(1)
