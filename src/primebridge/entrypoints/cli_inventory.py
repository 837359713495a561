"""``primebridge inventory``: real-time and full reconciliation from Amazon into the OMS."""

from __future__ import annotations

import typer

inventory_app = typer.Typer(help="Inventory from Amazon into the OMS: sync, reports.", no_args_is_help=True)
