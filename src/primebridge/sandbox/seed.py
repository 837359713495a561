"""Seeds the three sandboxes with orders shaped for the routing rules of ``sandbox/profile.py``.

The demo, the end-to-end tests, the crash tests and the benchmarks all need "an unheld Amazon
order", "a held Prime order" and so on in SAP and in NetSuite. Writing those admin payloads in one
place keeps them consistent with the routing config: a change to the profile (a plant, a ship
method, a text id) is made here once instead of in every test. Everything goes through the
sandboxes' admin APIs (``/_sandbox/...``), as a user of the OMS would act, never through
primebridge itself, so what is read back (e.g. written-back ids) is the OMS's own view.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpx

from primebridge.config import NetSuiteFieldsConfig, SapFieldsConfig
from primebridge.sandbox.profile import (
    NETSUITE_AMAZON_LOCATION,
    NETSUITE_OTHER_LOCATION,
    NETSUITE_PRIME_SHIP_METHOD,
    SAP_AMAZON_PLANT,
    SAP_OTHER_PLANT,
    SAP_PRIME_SHIPPING_CONDITION,
)

ADMIN = "/_sandbox"
# SKUs the seeded orders use; ``catalog(DEFAULT_SKUS)`` makes them known to the Amazon sandbox.
DEFAULT_SKUS: tuple[str, ...] = ("SKU-1", "SKU-2", "SKU-3", "SKU-4")
# Sold by the merchant itself, at the non-Amazon location: deliberately not in the Amazon catalogue.
LOCAL_SKU = "LOCAL-1"
SAP_DELIVERY_BLOCK = "01"
SAP_STANDARD_SHIPPING_CONDITION = "01"
SAP_FIELDS = SapFieldsConfig()
NETSUITE_FIELDS = NetSuiteFieldsConfig()
NETSUITE_STANDARD_SHIP_METHOD = {"id": "500", "name": "Standard Ground"}
NETSUITE_PRIME_METHOD = {"id": NETSUITE_PRIME_SHIP_METHOD, "name": "Amazon Prime"}
NETSUITE_AMAZON = {"id": NETSUITE_AMAZON_LOCATION, "name": "Amazon MCF"}
NETSUITE_OTHER = {"id": NETSUITE_OTHER_LOCATION, "name": "Main Warehouse"}

_BUYER = {"name": "Ann Buyer", "street": "Main St", "house_number": "1", "city": "Seattle",
          "postal_code": "98101", "region": "WA", "country": "US", "email": "ann@example.com"}
_RECEIVER = {"name": "Bob Receiver", "street": "Pine St", "house_number": "22", "city": "Tacoma",
             "postal_code": "98402", "region": "WA", "country": "US", "phone": "+1 555 0100"}
_NETSUITE_ADDRESS = {"addressee": "Bob Receiver", "addr1": "22 Pine St", "city": "Tacoma", "state": "WA",
                     "zip": "98402", "country": "US", "phone": "+1 555 0100"}


class SeedError(RuntimeError):
    """A sandbox refused a seed or a change; the message carries the sandbox's own error text."""


class SandboxSeeder:
    """Creates and changes orders in the SAP and NetSuite sandboxes and reads back what they hold.

    ``http`` lets a caller share a client (and its connection pool); otherwise one is made and closed
    by ``close()`` / the context manager.
    """

    def __init__(self, *, amazon_url: str, sap_url: str, netsuite_url: str,
                 http: httpx.Client | None = None) -> None:
        self.amazon_url = amazon_url.rstrip("/")
        self.sap_url = sap_url.rstrip("/")
        self.netsuite_url = netsuite_url.rstrip("/")
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=10.0)
        # Unique delivery preview/offer ids per seeded line, as a real checkout would produce.
        self._counter = itertools.count(1)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> SandboxSeeder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        response = self.http.request(method, url, json=body)
        if response.status_code >= 400:
            raise SeedError(f"{method} {url} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    # -- Amazon ------------------------------------------------------------------------------------

    def catalog(self, skus: Iterable[str]) -> None:
        items = [{"sku": sku, "title": f"Sandbox product {sku}", "price": 19.99} for sku in skus]
        if items:
            self._call("POST", f"{self.amazon_url}{ADMIN}/catalog", items)

    def amazon_orders(self) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{self.amazon_url}{ADMIN}/orders"))

    def amazon_order(self, order_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"{self.amazon_url}{ADMIN}/orders/{order_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise SeedError(f"Amazon sandbox order {order_id}: {response.status_code} {response.text[:300]}")
        return dict(response.json())

    def amazon_stats(self) -> dict[str, int]:
        return dict(self._call("GET", f"{self.amazon_url}{ADMIN}/stats"))

    def amazon_knobs(self, **knobs: float) -> None:
        """``throttle_rate``, ``error_rate``, ``latency_ms``, ``retry_after_seconds``."""
        self._call("PUT", f"{self.amazon_url}{ADMIN}/knobs", knobs)

    # -- SAP ---------------------------------------------------------------------------------------

    def _prime_ids(self) -> tuple[str, str]:
        n = next(self._counter)
        return f"preview-{n}", f"offer-{n}"

    def sap_order(self, *, held: bool = False, prime: bool = False, mixed: bool = False, ship_to: bool = True,
                  material: str = "SKU-1", qty: str = "1", lines: int = 1, control: bool = True) -> str:
        """An ``OR`` order with ``lines`` items at the Amazon plant; returns the SAP order number.

        ``control=False`` leaves out the control text, which makes the order not Amazon's business.
        """
        items: list[dict[str, Any]] = []
        for index in range(lines):
            item: dict[str, Any] = {"material": material, "qty": qty, "plant": SAP_AMAZON_PLANT,
                                    "price": "19.99", "tax": "1.60", "title": f"Widget {index + 1}"}
            if prime:
                preview, offer = self._prime_ids()
                item["texts"] = {SAP_FIELDS.delivery_preview_text_id: preview,
                                 SAP_FIELDS.delivery_offer_text_id: offer}
            items.append(item)
        if mixed:
            items.append({"material": LOCAL_SKU, "qty": "1", "plant": SAP_OTHER_PLANT, "price": "5.00",
                          "tax": "0.40", "title": "Gift wrap (shipped by the merchant)"})
        texts: dict[str, str] = {}
        if control:
            texts[SAP_FIELDS.control_text_id] = "X"
        if prime:
            texts[SAP_FIELDS.shopper_token_text_id] = f"shopper-token-{next(self._counter)}"
        spec = {
            "type": "OR",
            "delivery_block": SAP_DELIVERY_BLOCK if held else "",
            "shipping_condition": SAP_PRIME_SHIPPING_CONDITION if prime else SAP_STANDARD_SHIPPING_CONDITION,
            "currency": "USD",
            "sold_to": dict(_BUYER),
            "ship_to": dict(_RECEIVER) if ship_to else None,
            "items": items,
            "texts": texts,
        }
        return str(self._call("POST", f"{self.sap_url}{ADMIN}/sales-orders", spec)["id"])

    def sap_non_amazon_order(self) -> str:
        """Every item at the merchant's own plant: no line for Amazon."""
        spec = {"type": "OR", "currency": "USD", "sold_to": dict(_BUYER), "ship_to": dict(_RECEIVER),
                "items": [{"material": LOCAL_SKU, "qty": "2", "plant": SAP_OTHER_PLANT, "price": "5.00"}],
                "texts": {SAP_FIELDS.control_text_id: "X"}}
        return str(self._call("POST", f"{self.sap_url}{ADMIN}/sales-orders", spec)["id"])

    def sap_change(self, order_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """Any user change (admin PATCH format of ``sandbox/sap/admin.py``); returns the order view."""
        return dict(self._call("PATCH", f"{self.sap_url}{ADMIN}/sales-orders/{order_id}", change))

    def sap_release(self, order_id: str) -> None:
        self.sap_change(order_id, {"delivery_block": ""})

    def sap_view(self, order_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{self.sap_url}{ADMIN}/sales-orders/{order_id}"))

    def sap_amazon_ids(self, order_id: str) -> tuple[str | None, dict[str, str]]:
        """The Amazon order id (header text) and line ids (item texts) as SAP holds them now."""
        view = self.sap_view(order_id)
        header = _text(view.get("texts") or [], SAP_FIELDS.amazon_order_text_id)
        lines: dict[str, str] = {}
        for item in view.get("items") or []:
            value = _text(item.get("texts") or [], SAP_FIELDS.amazon_line_text_id)
            if value is not None:
                lines[str(item["SalesOrderItem"])] = value
        return header, lines

    # -- NetSuite ----------------------------------------------------------------------------------

    def netsuite_order(self, *, held: bool = False, prime: bool = False, mixed: bool = False,
                       ship_to: bool = True, item: str = "SKU-1", qty: str = "1", lines: int = 1) -> str:
        """A sales order with ``lines`` flagged lines at the Amazon location; returns its internal id.

        ``held`` makes it "pending approval" (status A), NetSuite's usual hold; the release approves it.
        """
        rows: list[dict[str, Any]] = []
        for index in range(lines):
            row: dict[str, Any] = {"item": item, "quantity": qty, "rate": "19.99",
                                   "location": NETSUITE_AMAZON, "amazon": True,
                                   "description": f"Widget {index + 1}"}
            if prime:
                row["delivery_preview_id"], row["delivery_offer_id"] = self._prime_ids()
            rows.append(row)
        if mixed:
            rows.append({"item": LOCAL_SKU, "quantity": "1", "rate": "5.00", "location": NETSUITE_OTHER,
                         "description": "Gift wrap (shipped by the merchant)"})
        spec: dict[str, Any] = {
            "customer": {"name": "Ann Buyer", "email": "ann@example.com"},
            "status": "A" if held else "B",
            "ship_method": NETSUITE_PRIME_METHOD if prime else NETSUITE_STANDARD_SHIP_METHOD,
            "shipping_address": dict(_NETSUITE_ADDRESS) if ship_to else None,
            "lines": rows,
        }
        if prime:
            spec["shopper_token"] = f"shopper-token-{next(self._counter)}"
        return str(self._call("POST", f"{self.netsuite_url}{ADMIN}/sales-orders", spec)["id"])

    def netsuite_non_amazon_order(self) -> str:
        """Every line at the merchant's own location and unflagged: nothing for Amazon."""
        spec = {"customer": {"name": "Ann Buyer", "email": "ann@example.com"}, "status": "B",
                "ship_method": NETSUITE_STANDARD_SHIP_METHOD, "shipping_address": dict(_NETSUITE_ADDRESS),
                "lines": [{"item": LOCAL_SKU, "quantity": "2", "rate": "5.00", "location": NETSUITE_OTHER}]}
        return str(self._call("POST", f"{self.netsuite_url}{ADMIN}/sales-orders", spec)["id"])

    def netsuite_change(self, order_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """Any user change (admin PATCH format of ``sandbox/netsuite/admin.py``); returns the record."""
        return dict(self._call("PATCH", f"{self.netsuite_url}{ADMIN}/sales-orders/{order_id}", change))

    def netsuite_release(self, order_id: str) -> None:
        self.netsuite_change(order_id, {"status": "B", "hold": None})

    def netsuite_view(self, order_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{self.netsuite_url}{ADMIN}/sales-orders/{order_id}"))

    def netsuite_amazon_ids(self, order_id: str) -> tuple[str | None, dict[str, str]]:
        """The Amazon order id (body field) and line ids (column field) as NetSuite holds them now."""
        record = self.netsuite_view(order_id)
        header = record.get(NETSUITE_FIELDS.amazon_order_field) or None
        lines = {str(row["line"]): str(row[NETSUITE_FIELDS.amazon_line_field])
                 for row in (record.get("item") or {}).get("items") or []
                 if row.get(NETSUITE_FIELDS.amazon_line_field)}
        return (str(header) if header else None), lines


def _text(texts: Iterable[dict[str, Any]], text_id: str) -> str | None:
    for text in texts:
        if text.get("LongTextID") == text_id and text.get("LongText"):
            return str(text["LongText"])
    return None
