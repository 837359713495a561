"""Amazon Buy with Prime: OAuth client-credentials tokens, the GraphQL client and ``AmazonOrders``."""

from __future__ import annotations

import httpx

from primebridge.config import AmazonConfig
from primebridge.connectors.amazon.client import BwpGraphQLClient, request_operation
from primebridge.connectors.amazon.orders import BwpOrders
from primebridge.connectors.amazon.products import BwpProducts
from primebridge.connectors.http import AuditSink, build_client
from primebridge.connectors.oauth import ClientCredentialsTokens
from primebridge.domain.errors import ConfigError

__all__ = ["BwpGraphQLClient", "BwpOrders", "BwpProducts", "ClientCredentialsTokens", "build_amazon_orders",
           "build_bwp_products"]


def build_bwp_client(cfg: AmazonConfig, *, audit: AuditSink | None = None,
                     transport: httpx.BaseTransport | None = None) -> BwpGraphQLClient:
    """The GraphQL client of the configured BwP instance (token and GraphQL calls share one audited
    HTTP client)."""
    missing = [key for key in ("client_id", "target_id") if not getattr(cfg, key)]
    if missing:
        raise ConfigError(", ".join(f"amazon.{key}" for key in missing) + " must be set")
    http = build_client(system="amazon", base_url="", timeout=cfg.timeout_seconds, audit=audit,
                        transport=transport, operation=request_operation)
    tokens = ClientCredentialsTokens(http, cfg.token_url, cfg.client_id, cfg.client_secret.reveal(),
                                     renew_before=cfg.token_renew_before_seconds,
                                     client_auth=cfg.token_client_auth)
    return BwpGraphQLClient(
        http, tokens, target_id=cfg.target_id, target_id_header=cfg.target_id_header,
        api_version=cfg.api_version, url=cfg.graphql_url,
        api_access_key=cfg.api_access_key.reveal() if cfg.api_access_key is not None else None)


def build_bwp_products(cfg: AmazonConfig, *, audit: AuditSink | None = None,
                       transport: httpx.BaseTransport | None = None) -> BwpProducts:
    """``products`` and ``inventoryItem`` for the inventory flows, on a client of their own (its own
    token: the orders connector's client is not shared across connectors)."""
    return BwpProducts(build_bwp_client(cfg, audit=audit, transport=transport))


def build_amazon_orders(cfg: AmazonConfig, *, audit: AuditSink | None = None,
                        transport: httpx.BaseTransport | None = None) -> BwpOrders:
    """``BwpOrders`` for the configured BwP instance; token and GraphQL calls share one audited client.

    ``amazon.token_client_auth`` and ``amazon.product_identifier`` are config keys because both are
    unconfirmed details of the API (see auth.py and mapping.py).
    """
    return BwpOrders(build_bwp_client(cfg, audit=audit, transport=transport), identifier=cfg.product_identifier)
