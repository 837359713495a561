"""A stateful local Selling Partner API: LWA tokens, FBA inventory summaries, admin API under ``/_sandbox/``."""

from primebridge.sandbox.spapi.app import create_app
from primebridge.sandbox.spapi.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_MARKETPLACE,
    DEFAULT_REFRESH_TOKEN,
    DEFAULT_SELLER,
)

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_MARKETPLACE", "DEFAULT_REFRESH_TOKEN",
           "DEFAULT_SELLER", "create_app"]
