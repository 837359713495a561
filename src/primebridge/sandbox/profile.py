"""Settings that point primebridge at the sandboxes, with the sandboxes' default credentials.

Used by ``primebridge demo``, the tests and the benchmarks, and printed by the docs as the
starting point of a merchant's own ``primebridge.toml``.
"""

from __future__ import annotations

from typing import Any

from primebridge.config import Settings, settings_from_dict

SAP_AMAZON_PLANT = "AMZ1"
SAP_OTHER_PLANT = "1010"
SAP_PRIME_SHIPPING_CONDITION = "P1"
NETSUITE_AMAZON_LOCATION = "7"
NETSUITE_OTHER_LOCATION = "1"
NETSUITE_PRIME_SHIP_METHOD = "501"
NETSUITE_INTEGRATION_USER = "7"
SAP_AMAZON_STORAGE_LOCATION = "AMZN"  # inventory: stock at SAP_AMAZON_PLANT / this location
NETSUITE_ADJUSTMENT_ACCOUNT = "58"  # inventory: GL account of the sandbox's inventory adjustments


def sandbox_settings(*, amazon_url: str, sap_url: str, netsuite_url: str, store_url: str,
                     overrides: dict[str, Any] | None = None, spapi_url: str | None = None) -> Settings:
    return settings_from_dict(sandbox_config(amazon_url=amazon_url, sap_url=sap_url, netsuite_url=netsuite_url,
                                             store_url=store_url, overrides=overrides, spapi_url=spapi_url))


def sandbox_config(*, amazon_url: str, sap_url: str, netsuite_url: str, store_url: str,
                   overrides: dict[str, Any] | None = None, spapi_url: str | None = None) -> dict[str, Any]:
    """The raw config (what a ``primebridge.toml`` holds): ``tomli_w.dumps`` it for another process.
    ``spapi_url`` (the SP-API sandbox, ``start_all()["spapi"]``) adds the ``spapi`` section."""
    data: dict[str, Any] = {
        "store": {"url": store_url},
        "runtime": {"backoff_base_seconds": 0.2, "backoff_max_seconds": 5.0, "lease_seconds": 15.0,
                    "poll_interval_seconds": 0.2},
        "amazon": {
            "graphql_url": f"{amazon_url}/graphql", "token_url": f"{amazon_url}/token",
            "client_id": "sandbox-client", "client_secret": "sandbox-secret", "target_id": "sandbox-target",
        },
        "sap": {
            "enabled": True, "base_url": sap_url, "username": "sandbox", "password": "sandbox",
            "routing": {
                "amazon_locations": [SAP_AMAZON_PLANT], "order_types": ["OR"], "require_control_flag": True,
                "prime_shipping_methods": [SAP_PRIME_SHIPPING_CONDITION],
                "delivery_speeds": {SAP_PRIME_SHIPPING_CONDITION: "STANDARD"},
            },
            "inventory": {"plant": SAP_AMAZON_PLANT, "storage_location": SAP_AMAZON_STORAGE_LOCATION},
        },
        # What the Amazon sandbox's auth profile presents when it delivers events (events subscribe).
        "events": {"basic_username": "bwp-sandbox", "basic_password": "sandbox-events-password",
                   "oauth_client_id": "bwp-sandbox", "oauth_client_secret": "sandbox-events-secret"},
        "netsuite": {
            "enabled": True, "account_id": "TSTDRV1234567", "base_url": netsuite_url, "auth": "tba",
            "consumer_key": "sandbox-ck", "consumer_secret": "sandbox-cs", "token_id": "sandbox-tid",
            "token_secret": "sandbox-ts",
            # The sandbox's TBA token belongs to employee 7: the change poll skips our own saves.
            "integration_user_id": NETSUITE_INTEGRATION_USER,
            "routing": {
                "amazon_locations": [NETSUITE_AMAZON_LOCATION], "use_line_flag": True,
                "statuses": ["A", "B"], "prime_shipping_methods": [NETSUITE_PRIME_SHIP_METHOD],
            },
            "inventory": {"location_id": NETSUITE_AMAZON_LOCATION, "account_id": NETSUITE_ADJUSTMENT_ACCOUNT},
        },
    }
    if spapi_url is not None:
        from primebridge.sandbox.spapi import state as spapi

        # The SP-API sandbox's defaults; its usage plan is Amazon's 2 requests/s, burst 2.
        data["spapi"] = {"endpoint": spapi_url, "lwa_url": f"{spapi_url}/auth/o2/token",
                         "client_id": spapi.DEFAULT_CLIENT_ID, "client_secret": spapi.DEFAULT_CLIENT_SECRET,
                         "refresh_token": spapi.DEFAULT_REFRESH_TOKEN, "seller_id": spapi.DEFAULT_SELLER,
                         "marketplace_id": spapi.DEFAULT_MARKETPLACE}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data
