"""Amazon Selling Partner API: Login with Amazon tokens, per-operation rate limits, FBA inventory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from primebridge.connectors.http import AuditSink, build_client
from primebridge.connectors.spapi.inventory import SpApiInventory
from primebridge.connectors.spapi.lwa import LwaTokens
from primebridge.connectors.spapi.rate_limit import RateLimiter

if TYPE_CHECKING:
    from primebridge.config import SpApiConfig


def build_rate_limiter(cfg: SpApiConfig) -> RateLimiter:
    return RateLimiter(cfg.rate_per_second, cfg.burst, margin=cfg.pacing_margin_ms / 1000,
                       adjust_from_header=cfg.adjust_rate_from_header)


def build_inventory_source(cfg: SpApiConfig, audit: AuditSink | None = None,
                           transport: httpx.BaseTransport | None = None, *,
                           limiter: RateLimiter | None = None) -> SpApiInventory:
    """The ``InventorySource`` for ``spapi`` settings. Build it once per process: its rate limiter is
    what keeps all workers of the process within the seller's usage plan."""
    http = build_client(system="spapi", base_url=cfg.resolved_endpoint(), timeout=cfg.timeout_seconds,
                        audit=audit, transport=transport)
    tokens = LwaTokens(http, cfg.lwa_url, cfg.client_id, cfg.client_secret.reveal(), cfg.refresh_token.reveal(),
                       renew_before=cfg.token_renew_before_seconds)
    return SpApiInventory(
        http, tokens, limiter or build_rate_limiter(cfg), seller_id=cfg.seller_id or cfg.client_id,
        marketplace_id=cfg.marketplace_id, sku_batch_size=cfg.sku_batch_size, max_retries=cfg.max_retries,
        backoff_base=cfg.backoff_base_seconds, backoff_max=cfg.backoff_max_seconds,
        max_scan_restarts=cfg.max_scan_restarts)


__all__ = ["LwaTokens", "RateLimiter", "SpApiInventory", "build_inventory_source", "build_rate_limiter"]
