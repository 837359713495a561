"""A stateful local Buy with Prime API (tokens, GraphQL orders, admin API under ``/_sandbox/``)."""

from primebridge.sandbox.amazon.app import create_app

__all__ = ["create_app"]
