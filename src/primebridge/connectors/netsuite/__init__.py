"""NetSuite connector: TBA / OAuth 2.0 auth, REST records, SuiteQL and the sales-order adapter.

The factories are the only place that reads secrets (``Secret.reveal()``) and the only place that
picks the shared per-account concurrency semaphore (see ``governance``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from primebridge.config import NetSuiteConfig
from primebridge.connectors.http import AuditSink, build_client
from primebridge.connectors.netsuite.governance import shared_semaphore
from primebridge.connectors.netsuite.inventory import NetSuiteInventoryLedger
from primebridge.connectors.netsuite.m2m import M2MAuth
from primebridge.connectors.netsuite.rest import RECORD_PATH, NetSuiteRest
from primebridge.connectors.netsuite.sales_orders import NetSuiteSalesOrders
from primebridge.connectors.netsuite.shipments import NetSuiteShipments
from primebridge.connectors.netsuite.tba import TbaAuth
from primebridge.domain.errors import ConfigError

__all__ = [
    "M2MAuth",
    "NetSuiteInventoryLedger",
    "NetSuiteRest",
    "NetSuiteSalesOrders",
    "NetSuiteShipments",
    "TbaAuth",
    "build_netsuite_auth",
    "build_netsuite_inventory",
    "build_netsuite_orders",
    "build_netsuite_rest",
    "build_netsuite_shipments",
]

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"


def _operation(request: httpx.Request) -> str:
    """Audit names without record ids, so the audit log groups calls by kind."""
    path = request.url.path
    if path.startswith(RECORD_PATH + "/"):
        parts = path[len(RECORD_PATH) + 1:].split("/")
        kind = parts[0] + (f" !transform {parts[3]}" if len(parts) > 3 and parts[2] == "!transform" else "")
        return f"{request.method} {kind}"
    if path.endswith("/suiteql"):
        return "SuiteQL"
    if path.endswith(TOKEN_PATH):
        return "OAuth2 token"
    return f"{request.method} {path}"


def _masking(field: str) -> Callable[[Any], Any]:
    """The shopper identity token's field id is the merchant's choice and need not contain
    "token", so the generic key-based redaction alone may miss it in the audit log."""
    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "***" if k == field else mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        return value

    return mask


def _required(secret: object, key: str) -> str:
    if secret is None:
        raise ConfigError(f"netsuite.{key} must be set")
    return secret.reveal()  # type: ignore[attr-defined]


def build_netsuite_auth(cfg: NetSuiteConfig) -> httpx.Auth:
    if cfg.auth == "tba":
        return TbaAuth(
            account_id=cfg.account_id,
            consumer_key=cfg.consumer_key,
            consumer_secret=_required(cfg.consumer_secret, "consumer_secret"),
            token_id=cfg.token_id,
            token_secret=_required(cfg.token_secret, "token_secret"),
        )
    return M2MAuth(
        token_url=cfg.token_url or cfg.resolved_base_url() + TOKEN_PATH,
        client_id=cfg.client_id,
        certificate_id=cfg.certificate_id,
        private_key_pem=_required(cfg.private_key, "private_key"),
    )


def build_netsuite_rest(cfg: NetSuiteConfig, *, audit: AuditSink | None = None,
                        transport: httpx.BaseTransport | None = None) -> NetSuiteRest:
    base_url = cfg.resolved_base_url()
    http = build_client(system="netsuite", base_url=base_url, timeout=cfg.timeout_seconds, audit=audit,
                        transport=transport, operation=_operation,
                        headers={"Accept": "application/json"}, max_connections=cfg.concurrency + 2,
                        redact=_masking(cfg.fields.shopper_token_field))
    http.auth = build_netsuite_auth(cfg)
    return NetSuiteRest(http, concurrency=shared_semaphore(base_url, cfg.concurrency))


def build_netsuite_orders(cfg: NetSuiteConfig, *, audit: AuditSink | None = None,
                          transport: httpx.BaseTransport | None = None) -> NetSuiteSalesOrders:
    return NetSuiteSalesOrders(build_netsuite_rest(cfg, audit=audit, transport=transport), cfg)


def build_netsuite_shipments(cfg: NetSuiteConfig, *, audit: AuditSink | None = None,
                             transport: httpx.BaseTransport | None = None) -> NetSuiteShipments:
    """Item fulfillments and line cancellations; same account semaphore as ``build_netsuite_orders``."""
    return NetSuiteShipments(build_netsuite_rest(cfg, audit=audit, transport=transport), cfg)


def build_netsuite_inventory(cfg: NetSuiteConfig, *, audit: AuditSink | None = None,
                             transport: httpx.BaseTransport | None = None) -> NetSuiteInventoryLedger:
    """Stock and inventory adjustments at ``netsuite.inventory.location_id``; same account semaphore as
    ``build_netsuite_orders``, so parallel inventory writes stay within ``netsuite.concurrency``."""
    return NetSuiteInventoryLedger(build_netsuite_rest(cfg, audit=audit, transport=transport), cfg.inventory)
