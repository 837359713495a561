"""``primebridge events``: subscribe in Buy with Prime, list received events, replay them."""

from __future__ import annotations

import typer

events_app = typer.Typer(help="Buy with Prime events: subscriptions, received events, replay.",
                         no_args_is_help=True)
