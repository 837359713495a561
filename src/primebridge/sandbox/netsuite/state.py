"""The NetSuite sandbox's data: sales orders, fulfilments, reference records, auth and counters.

Everything is guarded by one ``threading.Lock`` (the app runs in a uvicorn thread while tests read
stats from theirs). Record timestamps come from ``now()``, which tests can freeze or move through
``PUT /_sandbox/clock``; the TBA timestamp check always uses the real clock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from primebridge.sandbox.netsuite.inventory import InventoryBook

ORDER_STATUS_NAMES = {
    "A": "Pending Approval", "B": "Pending Fulfillment", "C": "Cancelled", "D": "Partially Fulfilled",
    "E": "Pending Billing/Partially Fulfilled", "F": "Pending Billing", "G": "Billed", "H": "Closed",
}
SHIP_STATUS_NAMES = {"A": "Picked", "B": "Packed", "C": "Shipped"}
ITEM_TYPE_NAMES = {
    "InvtPart": "Inventory Item", "NonInvtPart": "Non-inventory Item", "Kit": "Kit/Package", "Service": "Service",
    "Discount": "Discount", "Description": "Description", "Subtotal": "Subtotal", "Markup": "Markup",
    "Group": "Item Group", "EndGroup": "End of Group", "ShipItem": "Shipping Item",
}
# Default currency records of a NetSuite account: the record *name* is not the ISO code.
DEFAULT_CURRENCIES = (("1", "USA", "USD"), ("2", "British pound", "GBP"), ("3", "Canadian Dollar", "CAD"),
                      ("4", "Euro", "EUR"))
COUNTRY_NAMES = {"US": "United States", "CA": "Canada", "GB": "United Kingdom", "DE": "Germany",
                 "FR": "France", "MX": "Mexico", "JP": "Japan"}

# The custom fields primebridge expects (extras/netsuite/README.md); names match NetSuiteFieldsConfig.
HOLD_FIELD = "custbody_pb_hold"
AMAZON_ORDER_FIELD = "custbody_pb_amazon_order_id"
SHOPPER_TOKEN_FIELD = "custbody_pb_shopper_token"
AMAZON_LINE_FIELD = "custcol_pb_amazon_line_id"
AMAZON_FLAG_FIELD = "custcol_pb_amazon_fulfilled"
PREVIEW_FIELD = "custcol_pb_delivery_preview_id"
OFFER_FIELD = "custcol_pb_delivery_offer_id"

INTEGRATION_USER_ID = "7"
UI_USER_ID = "3"
NONCE_MEMORY_SECONDS = 600.0


@dataclass
class Ref:
    id: str
    name: str
    extra: dict[str, Any] = field(default_factory=dict)


class Catalog:
    """Reference records of one kind (customers, items, locations...), findable by id or name."""

    def __init__(self, kind: str, first_id: int) -> None:
        self.kind = kind
        self.by_id: dict[str, Ref] = {}
        self._next = first_id

    def get(self, ref_id: str) -> Ref | None:
        return self.by_id.get(str(ref_id))

    def find(self, name: str) -> Ref | None:
        return next((r for r in self.by_id.values() if r.name == name), None)

    def add(self, name: str, ref_id: str | None = None, **extra: Any) -> Ref:
        if ref_id is None:
            while str(self._next) in self.by_id:
                self._next += 1
            ref_id = str(self._next)
            self._next += 1
        ref = Ref(str(ref_id), name, dict(extra))
        self.by_id[ref.id] = ref
        return ref

    def ensure(self, value: Any, **extra: Any) -> Ref:
        """A name (found or created) or ``{"id", "name"}`` (created with that id if new)."""
        if isinstance(value, str) and value.strip():
            ref = self.find(value.strip()) or self.add(value.strip())
        elif isinstance(value, dict) and (value.get("id") or value.get("name") or value.get("refName")):
            ref_id = str(value["id"]) if value.get("id") not in (None, "") else None
            name = str(value.get("name") or value.get("refName") or "")
            ref = (self.get(ref_id) if ref_id else None) or (self.find(name) if name and not ref_id else None)
            if ref is None:
                ref = self.add(name or f"{self.kind} {ref_id}", ref_id)
            elif name:
                ref.name = name
        else:
            raise ValueError(f"{self.kind} must be a name or an object with id/name, not {value!r}")
        for key, val in extra.items():
            if val is not None:
                ref.extra[key] = val
        return ref


@dataclass
class Line:
    line: int
    item: Ref
    quantity: Decimal
    rate: Decimal | None = None
    location: Ref | None = None
    description: str | None = None
    is_closed: bool = False
    item_type: str = "InvtPart"
    quantity_fulfilled: Decimal = Decimal(0)
    custom: dict[str, Any] = field(default_factory=dict)

    @property
    def amount(self) -> Decimal | None:
        return None if self.rate is None else (self.rate * self.quantity).quantize(Decimal("0.01"))


@dataclass
class SalesOrder:
    id: int
    tran_id: str
    entity: Ref
    currency: Ref
    order_status: str
    created: datetime
    last_modified: datetime
    last_modified_by: str
    tran_date: date
    email: str | None = None
    external_id: str | None = None
    ship_method: Ref | None = None
    shipping_address: dict[str, Any] | None = None
    memo: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    next_line: int = 1

    def status(self) -> str:
        goods = [ln for ln in self.lines if ln.item_type not in ("Description", "Subtotal", "Discount",
                                                                 "Markup", "EndGroup", "Group")]
        if goods and all(ln.is_closed for ln in goods):
            return "H"
        if self.order_status == "A":
            return "A"
        open_lines = [ln for ln in goods if not ln.is_closed]
        fulfilled = [ln for ln in open_lines if ln.quantity_fulfilled > 0]
        if not fulfilled:
            return "B"
        if all(ln.quantity_fulfilled >= ln.quantity for ln in open_lines):
            return "F"
        return "D"

    def line(self, number: int) -> Line | None:
        return next((ln for ln in self.lines if ln.line == number), None)

    def add_line(self, **values: Any) -> Line:
        line = Line(line=self.next_line, **values)
        self.next_line += 1
        self.lines.append(line)
        return line


@dataclass
class Fulfillment:
    id: int
    tran_id: str
    created_from: int
    entity: Ref
    ship_status: str
    created: datetime
    last_modified: datetime
    last_modified_by: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    packages: list[dict[str, Any]] = field(default_factory=list)
    external_id: str | None = None
    memo: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class IssuedToken:
    user_id: str
    expires_at: float
    scopes: frozenset[str]


@dataclass
class Certificate:
    certificate_id: str
    client_id: str
    public_key_pem: str
    user_id: str


@dataclass
class TbaCredentials:
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str
    user_id: str = INTEGRATION_USER_ID


class SandboxState:
    def __init__(self, *, account_id: str, credentials: TbaCredentials, concurrency_limit: int = 5,
                 token_ttl_seconds: float = 3600.0) -> None:
        self.lock = threading.Lock()
        self.account_id = account_id
        self.realm = account_id.strip().upper().replace("-", "_")
        self.credentials = credentials
        self.concurrency_limit = concurrency_limit
        self.token_ttl_seconds = token_ttl_seconds
        self.certificates: dict[str, Certificate] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every record, token, nonce and counter; keep credentials and certificates."""
        self.orders: dict[int, SalesOrder] = {}
        self.fulfillments: dict[int, Fulfillment] = {}
        self.customers = Catalog("customer", 101)
        self.items = Catalog("inventoryItem", 201)
        self.locations = Catalog("location", 1)
        # The Amazon location of sandbox/profile.py exists from the start, as in an account set up for
        # Amazon: `config check` finds it and inventory adjustments can post before any order is seeded.
        self.locations.add("Amazon MCF", "7")
        self.ship_items = Catalog("shipItem", 301)
        self.currencies = Catalog("currency", 10)
        for ref_id, name, symbol in DEFAULT_CURRENCIES:
            self.currencies.add(name, ref_id, symbol=symbol)
        self.employees = Catalog("employee", 1)
        self.employees.add("Sandbox Administrator", UI_USER_ID)
        self.employees.add("primebridge integration", self.credentials.user_id)
        self.next_transaction_id = 1001
        self.operations: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.throttled = 0
        self.token_requests = 0
        self.login_audit: list[dict[str, Any]] = []
        self.nonces: dict[tuple[str, str], float] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.frozen_now: datetime | None = None
        self.gate_closed = False
        self.inventory = InventoryBook()  # items, quantities per location, adjustments (inventory.py)

    def now(self) -> datetime:
        current = self.frozen_now or datetime.now(UTC)
        return current.replace(microsecond=0)

    def new_transaction_id(self) -> int:
        value = self.next_transaction_id
        self.next_transaction_id += 1
        return value

    def currency_for_code(self, code: str) -> Ref:
        code = code.strip().upper()
        found = next((r for r in self.currencies.by_id.values() if r.extra.get("symbol") == code), None)
        return found or self.currencies.add(code, symbol=code)

    def audit_login(self, outcome: str, reason: str, detail: str = "") -> None:
        self.login_audit.append({"at": time.time(), "outcome": outcome, "reason": reason, "detail": detail})
        del self.login_audit[:-200]

    def remember_nonce(self, token: str, nonce: str, now: float) -> bool:
        """False when the nonce was already used with this token within the memory window."""
        for key in [k for k, seen in self.nonces.items() if now - seen > NONCE_MEMORY_SECONDS]:
            del self.nonces[key]
        if (token, nonce) in self.nonces:
            return False
        self.nonces[(token, nonce)] = now
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "operations": dict(self.operations),
            "requests": sum(self.operations.values()),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "throttled": self.throttled,
            "token_requests": self.token_requests,
            "auth_failures": sum(1 for e in self.login_audit if e["outcome"] == "failure"),
            "sales_orders": len(self.orders),
            "fulfillments": len(self.fulfillments),
            "concurrency_limit": self.concurrency_limit,
            "gate_closed": self.gate_closed,
        }
