"""SAP S/4HANA over OData V2 (API_SALES_ORDER_SRV, API_OUTBOUND_DELIVERY_SRV): client, auth, errors, mapping,
notifications, shipments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from primebridge.config import SapConfig
from primebridge.connectors.http import AuditSink, build_client
from primebridge.connectors.sap.auth import SapAuth, SapBasicAuth, SapClientCredentials
from primebridge.connectors.sap.deliveries import OutboundDeliveries
from primebridge.connectors.sap.inventory import SapInventoryLedger
from primebridge.connectors.sap.odata import ODataClient
from primebridge.connectors.sap.sales_orders import SapSalesOrders
from primebridge.connectors.sap.shipments import SapShipments
from primebridge.domain.errors import ConfigError

__all__ = ["ODataClient", "SapAuth", "SapBasicAuth", "SapClientCredentials", "SapInventoryLedger",
           "SapSalesOrders", "SapShipments", "build_sap_auth", "build_sap_inventory", "build_sap_orders",
           "build_sap_shipments"]


def build_sap_auth(cfg: SapConfig, *, audit: AuditSink | None = None,
                   transport: httpx.BaseTransport | None = None) -> SapAuth:
    """The configured auth; checks the keys it needs so a gap shows at start, not on first call."""
    if cfg.auth == "basic":
        if not cfg.username or cfg.password is None:
            raise ConfigError("sap.username and sap.password must be set for sap.auth = \"basic\"")
        return SapBasicAuth(cfg.username, cfg.password)
    if not cfg.token_url or not cfg.client_id or cfg.client_secret is None:
        raise ConfigError("sap.token_url, sap.client_id and sap.client_secret must be set for "
                          "sap.auth = \"oauth\"")
    token_http = build_client(system="sap", base_url=cfg.token_url, timeout=cfg.timeout_seconds,
                              audit=audit, transport=transport)
    return SapClientCredentials(token_http, cfg.token_url, cfg.client_id, cfg.client_secret)


def sensitive_text_redactor(text_ids: set[str]) -> Callable[[Any], Any]:
    """Masks ``LongText`` of texts whose ``LongTextID`` holds a secret (the shopper identity token):
    the generic redaction only sees key names, and here the key name is the harmless ``LongText``."""

    def redact(value: Any) -> Any:
        if isinstance(value, dict):
            hidden = value.get("LongTextID") in text_ids and "LongText" in value
            return {k: ("***" if hidden and k == "LongText" else redact(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        return value

    return redact


def build_sap_orders(cfg: SapConfig, *, audit: AuditSink | None = None,
                     transport: httpx.BaseTransport | None = None) -> SapSalesOrders:
    http = build_client(system="sap", base_url=cfg.base_url, timeout=cfg.timeout_seconds, audit=audit,
                        transport=transport,
                        redact=sensitive_text_redactor({cfg.fields.shopper_token_text_id}))
    auth = build_sap_auth(cfg, audit=audit, transport=transport)
    client = ODataClient(http, cfg.sales_order_service, auth=auth, sap_client=cfg.sap_client,
                         page_size=cfg.page_size)
    return SapSalesOrders(client, cfg)


def build_sap_shipments(cfg: SapConfig, *, audit: AuditSink | None = None,
                        transport: httpx.BaseTransport | None = None) -> SapShipments:
    """Outbound deliveries (``sap.shipments.delivery_service``) plus the sales order service for item
    rejection; both share one HTTP client (one SAP session, one cookie jar) and one auth."""
    http = build_client(system="sap", base_url=cfg.base_url, timeout=cfg.timeout_seconds, audit=audit,
                        transport=transport)
    auth = build_sap_auth(cfg, audit=audit, transport=transport)
    deliveries = ODataClient(http, cfg.shipments.delivery_service, auth=auth, sap_client=cfg.sap_client,
                             page_size=cfg.page_size)
    orders = ODataClient(http, cfg.sales_order_service, auth=auth, sap_client=cfg.sap_client,
                         page_size=cfg.page_size)
    return SapShipments(OutboundDeliveries(deliveries, language=cfg.fields.text_language), orders, cfg)


def build_sap_inventory(cfg: SapConfig, *, audit: AuditSink | None = None,
                        transport: httpx.BaseTransport | None = None) -> SapInventoryLedger:
    """Stock (``sap.inventory.stock_service``) and goods movements (``sap.inventory.document_service``)
    over one HTTP client and one auth, at ``sap.inventory.plant`` / ``storage_location``."""
    http = build_client(system="sap", base_url=cfg.base_url, timeout=cfg.timeout_seconds, audit=audit,
                        transport=transport)
    auth = build_sap_auth(cfg, audit=audit, transport=transport)
    stock = ODataClient(http, cfg.inventory.stock_service, auth=auth, sap_client=cfg.sap_client,
                        page_size=cfg.page_size)
    documents = ODataClient(http, cfg.inventory.document_service, auth=auth, sap_client=cfg.sap_client,
                            page_size=cfg.page_size)
    return SapInventoryLedger(stock, documents, cfg.inventory)
