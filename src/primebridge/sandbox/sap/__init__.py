"""Local SAP S/4HANA sandbox (API_SALES_ORDER_SRV, OData V2) with an admin API under ``/_sandbox/``."""

from primebridge.sandbox.sap.app import DEFAULT_SERVICE_PATH, create_app

__all__ = ["DEFAULT_SERVICE_PATH", "create_app"]
