"""The Buy with Prime sandbox's state: tokens, catalogue, orders, alias index and call counters,
plus the event side (``subscriptions``, ``deliveries``: see subscriptions.py and delivery.py).

Orders are kept as dicts in the GraphQL ``Order`` shape, so graphql-core's default resolvers serve
them directly; every read returns a fresh copy (``order_view``), taken under the lock, so a
response is never built from an order another request is changing.

Events are published with the order lock held, right after the change that causes them, so their
order of publication is the order of the changes; delivery happens later on other threads.
"""

from __future__ import annotations

import bisect
import copy
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from primebridge.sandbox.amazon import packages as package_rules
from primebridge.sandbox.amazon.delivery import Deliverer, DeliveryKnobs
from primebridge.sandbox.amazon.events import Event, business_product_id, new_event, resource
from primebridge.sandbox.amazon.signing import Signer
from primebridge.sandbox.amazon.subscriptions import Subscriptions
from primebridge.sandbox.amazon.validation import (
    SandboxFault,
    alias_key,
    check_create_input,
    check_new_aliases,
    invalid,
)

JSON = dict[str, Any]
_ID_CHARS = string.ascii_uppercase + string.digits


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """A product the sandbox knows; each identifier kind defaults to the SKU itself."""

    sku: str
    title: str
    price: float
    currency: str = "USD"
    externalId: str | None = None  # the API's spelling, also in the admin JSON
    amazonSku: str | None = None
    productId: str | None = None
    inventoryItemId: str | None = None  # the id INVENTORY_CHANGED names; default "INV-<sku>"
    fulfillableQuantity: int = 0  # what the inventoryItem query reports

    def identifiers(self) -> dict[str, str]:
        return {"sku": self.sku, "externalId": self.externalId or self.sku,
                "amazonSku": self.amazonSku or self.sku, "productId": self.productId or self.sku}

    @classmethod
    def from_json(cls, raw: Any) -> CatalogItem:
        if not isinstance(raw, dict) or not isinstance(raw.get("sku"), str) or not raw["sku"]:
            raise ValueError(f"catalog item {raw!r} needs a non-empty 'sku'")
        try:
            price = float(raw.get("price", 0))
        except (TypeError, ValueError):
            raise ValueError(f"catalog item {raw['sku']}: price {raw.get('price')!r} is not a number") from None
        extra = set(raw) - {"sku", "title", "price", "currency", "externalId", "amazonSku", "productId",
                            "inventoryItemId", "fulfillableQuantity"}
        if extra:
            raise ValueError(f"catalog item {raw['sku']}: unknown fields {', '.join(sorted(extra))}")
        return cls(sku=raw["sku"], title=str(raw.get("title") or raw["sku"]), price=price,
                   currency=str(raw.get("currency") or "USD"), externalId=raw.get("externalId"),
                   amazonSku=raw.get("amazonSku"), productId=raw.get("productId"),
                   inventoryItemId=raw.get("inventoryItemId"),
                   fulfillableQuantity=int(raw.get("fulfillableQuantity", 0)))


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def summary_state(states: list[str]) -> str | None:
    """Documented summary rule (reference §2.4) over the package states."""
    if not states:
        return None
    if "PENDING" in states:
        return "PENDING"
    if all(s == "CANCELLED" for s in states):
        return "CANCELLED"
    if all(s in ("DELIVERED", "CANCELLED") for s in states):
        return "DELIVERED"
    return "IN_TRANSIT"


class SandboxState:
    """All mutable state of one sandbox instance, guarded by one lock."""

    def __init__(self, *, client_id: str, client_secret: str, target_id: str, token_ttl_seconds: float,
                 accept_unknown_skus: bool = False, catalog: Iterable[CatalogItem] = (),
                 api_access_key: str | None = None, clock: Callable[[], float] = time.monotonic,
                 carrier_code: str = "ups", delivery_knobs: DeliveryKnobs | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.target_id = target_id
        self.api_access_key = api_access_key
        self.token_ttl_seconds = token_ttl_seconds
        self.accept_unknown_skus = accept_unknown_skus
        self._clock = clock
        self._seed = tuple(catalog)
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._catalog: dict[str, CatalogItem] = {}
        self._sorted_skus: list[str] | None = None  # products paging order, rebuilt after a change
        self._orders: dict[str, JSON] = {}
        self._alias_index: dict[tuple[str, str], str] = {}
        self.stats: Counter[str] = Counter()
        self.carrier_code = carrier_code
        self.business_product_id = business_product_id(target_id)
        self.subscriptions = Subscriptions(target_id)
        self.signer = Signer()
        self.deliveries = Deliverer(self.subscriptions, self.signer, delivery_knobs, now_iso=now_iso)
        self.reset()

    # -- admin -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the start: no orders, tokens, counters, subscriptions, events or deliveries; the
        catalogue as seeded at creation. Delivery knobs and signing keys stay."""
        with self._lock:
            self._tokens.clear()
            self._orders.clear()
            self._alias_index.clear()
            self.stats.clear()
            self._catalog = {item.sku: item for item in self._seed}
            self._sorted_skus = None
            self.subscriptions.reset()
            self.deliveries.reset()

    def count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def stats_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.stats.items()))

    def seed_catalog(self, items: Iterable[CatalogItem]) -> int:
        with self._lock:
            for item in items:
                self._catalog[item.sku] = item
            self._sorted_skus = None
            return len(self._catalog)

    def catalog(self) -> list[JSON]:
        with self._lock:
            return [asdict(item) for item in self._catalog.values()]

    def catalog_page(self, after_sku: str | None, first: int) -> tuple[list[JSON], bool, bool]:
        """``first`` products after ``after_sku`` in SKU order, whether more follow and whether any
        come before; copies only the page (the SKU order is rebuilt only when the catalogue changed)."""
        with self._lock:
            if self._sorted_skus is None:
                self._sorted_skus = sorted(self._catalog)
            skus = self._sorted_skus
            start = 0 if after_sku is None else bisect.bisect_right(skus, after_sku)
            chosen = skus[start:start + first]
            return [asdict(self._catalog[sku]) for sku in chosen], start + len(chosen) < len(skus), start > 0

    def inventory_item(self, inventory_item_id: str) -> JSON | None:
        """The product whose inventory item this is (its own id, or ``INV-<sku>`` by default)."""
        with self._lock:
            for item in self._catalog.values():
                if (item.inventoryItemId or f"INV-{item.sku}") == inventory_item_id:
                    return asdict(item)
            return None

    def known_product(self, kind: str, value: str) -> bool:
        """Called with the lock held, from inside ``create_order``."""
        if self.accept_unknown_skus:
            return True
        return any(item.identifiers()[kind] == value for item in self._catalog.values())

    # -- tokens ----------------------------------------------------------------------------------

    def credentials_match(self, client_id: str | None, client_secret: str | None) -> bool:
        return (client_id is not None and client_secret is not None
                and secrets.compare_digest(client_id, self.client_id)
                and secrets.compare_digest(client_secret, self.client_secret))

    def mint_token(self) -> str:
        token = "Atza|" + secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self.token_ttl_seconds
            self.stats["token.minted"] += 1
        return token

    def token_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expires = self._tokens.get(token)
            return expires is not None and self._clock() < expires

    def revoke_tokens(self) -> int:
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
            return revoked

    # -- orders ----------------------------------------------------------------------------------

    def list_orders(self) -> list[JSON]:
        with self._lock:
            return [self._view(order, admin=True) for order in self._orders.values()]

    def admin_order(self, order_id: str) -> JSON | None:
        with self._lock:
            order = self._orders.get(order_id)
            return None if order is None else self._view(order, admin=True)

    def get_order(self, identifier: JSON) -> JSON:
        with self._lock:
            self.stats["order"] += 1
            return self._view(self._find(identifier, "order"))

    def create_order(self, data: JSON) -> JSON:
        with self._lock:
            self.stats["createOrder"] += 1
            try:
                check_create_input(data, known_product=self.known_product)
                self._check_alias_owner(data.get("aliases"), None)
            except SandboxFault as fault:
                self.stats["createOrder.conflict" if fault.type == "ConflictError" else "createOrder.rejected"] += 1
                raise
            order = self._new_order(data)
            self._orders[order["id"]] = order
            for alias in order["aliases"]:
                self._alias_index[alias_key(alias)] = order["id"]
            if data.get("desiredExecutionState") == "STARTED":
                self._start(order)
            self.stats["createOrder.created"] += 1
            return self._view(order)

    def update_order(self, identifier: JSON, data: JSON) -> JSON:
        """Validate the whole update first, then apply it: an invalid update changes nothing."""
        with self._lock:
            self.stats["updateOrder"] += 1
            order = self._find(identifier, "updateOrder")
            new_aliases = check_new_aliases(order["aliases"], data.get("aliases"), f"order {order['id']}")
            self._check_alias_owner(new_aliases, order["id"])
            state = data.get("desiredExecutionState")
            current = order["metadata"]["executionState"]
            if state == "NOT_STARTED" and current == "STARTED":
                # [UNCONFIRMED] whether BwP allows a way back; the sandbox refuses it.
                raise invalid("InvalidExecutionStateTransition",
                              f"order {order['id']} has started fulfillment and cannot go back to NOT_STARTED")
            line_updates = self._line_alias_updates(order, data.get("lineItems"))
            package_updates = self._package_alias_updates(order, data.get("packageInformation"))

            order["aliases"].extend(new_aliases)
            for alias in new_aliases:
                self._alias_index[alias_key(alias)] = order["id"]
            for line, aliases in line_updates:
                line["aliases"].extend(aliases)
            for package, aliases in package_updates:
                package["aliases"].extend(aliases)
            for key in ("orderLinks", "totalPrice", "taxes", "discounts"):
                if data.get(key) is not None:
                    order[key] = copy.deepcopy(data[key])
            if state == "STARTED" and current == "NOT_STARTED":
                self._start(order)
                self.stats["updateOrder.released"] += 1
            order["metadata"]["updatedAt"] = now_iso()
            return self._view(order)

    def update_package_information(self, identifier: JSON, data: JSON) -> JSON:
        """The sandbox mutation, applied before answering (see packages.py); publishes its events."""
        with self._lock:
            self.stats["updateOrderPackageInformation"] += 1
            order = self._find(identifier, "updateOrderPackageInformation")
            ctx = package_rules.Context(now_iso=now_iso, carrier_code=self.carrier_code)
            try:
                emitted = package_rules.update_packages(order, data["packageInformation"]["details"], ctx)
            except SandboxFault:
                self.stats["updateOrderPackageInformation.rejected"] += 1
                raise
            order["metadata"]["updatedAt"] = now_iso()
            for event_type, segments in emitted:
                self._publish(event_type, (resource(self.business_product_id, "order", order["id"], *segments),))
            return self._view(order)

    def package_tracker(self, identifier: JSON) -> JSON:
        with self._lock:
            self.stats["packageTracker"] += 1
            for order in self._orders.values():
                for package in order["packages"]:
                    if package_rules.tracker_matches(package.get("tracker"), identifier):
                        return copy.deepcopy(package["tracker"])
        raise SandboxFault("ResourceNotFoundError", "PackageTrackerNotFound",
                           f"no tracker {identifier['carrierCode']} {identifier['trackingNumber']}")

    def emit(self, event_type: str, resources: Iterable[str], data: JSON | None = None) -> tuple[Event, int]:
        """Publish an arbitrary event (admin API): for what the sandbox never publishes itself, such
        as INVENTORY_CHANGED. Relative resources get the ``businessProduct/{bp}/`` prefix."""
        paths = tuple(resource(self.business_product_id, path.strip("/")) for path in resources)
        with self._lock:
            return self._publish(event_type, paths, data)

    # -- internals (lock held) -------------------------------------------------------------------

    def _publish(self, event_type: str, resources: tuple[str, ...], data: JSON | None = None) -> tuple[Event, int]:
        event = new_event(event_type, resources, now_iso(), data)
        self.stats[f"event.{event_type}"] += 1
        return event, self.deliveries.publish(event)

    def _find(self, identifier: JSON, operation: str) -> JSON:
        order_id, alias = identifier.get("orderId"), identifier.get("alias")
        if (order_id is None) == (alias is None):
            raise invalid("InvalidOrderIdentifier", "orderIdentifier needs exactly one of orderId, alias")
        if alias is not None:
            order_id = self._alias_index.get(alias_key(alias))
        order = self._orders.get(order_id) if order_id is not None else None
        if order is None:
            self.stats[f"{operation}.not_found"] += 1
            what = f"order {identifier['orderId']}" if alias is None else \
                f"order with alias {alias['aliasType']}={alias['aliasId']}"
            raise SandboxFault("ResourceNotFoundError", "OrderNotFound", f"{what} does not exist")
        return order

    def _check_alias_owner(self, aliases: list[JSON] | None, order_id: str | None) -> None:
        for alias in aliases or []:
            owner = self._alias_index.get(alias_key(alias))
            if owner is not None and owner != order_id:
                raise SandboxFault("ConflictError", "AliasValueAlreadyExists",
                                   f"alias {alias['aliasType']}={alias['aliasId']} already belongs to order {owner}")

    def _new_id(self) -> str:
        while True:
            order_id = "322-{}-{}".format(*("".join(secrets.choice(_ID_CHARS) for _ in range(n)) for n in (4, 6)))
            if order_id not in self._orders:
                return order_id

    def _new_order(self, data: JSON) -> JSON:
        created = now_iso()
        lines = [self._new_line(line, created) for line in data["lineItems"] if line is not None]
        contact = ((data.get("customer") or {}).get("contact") or {}).get("emailData") or {}
        return {
            "id": self._new_id(),
            "aliases": check_new_aliases((), data.get("aliases"), "order"),
            "customer": {"id": (data.get("customer") or {}).get("id"),
                         "contact": {"name": contact.get("name"), "email": contact.get("email")}},
            "recipient": copy.deepcopy(data.get("recipient")),
            "shopperIdentityGiven": bool(data.get("shopperIdentity")),
            "lineItems": lines,
            "metadata": {"createdAt": created, "updatedAt": created, "executionState": "NOT_STARTED"},
            "orderLinks": copy.deepcopy(data.get("orderLinks") or []),
            "packages": [],
            "taxes": copy.deepcopy(data.get("taxes")),
            "discounts": copy.deepcopy(data.get("discounts")),
            "totalPrice": copy.deepcopy(data.get("totalPrice")),
        }

    def _new_line(self, line: JSON, created: str) -> JSON:
        offer = line["selectedDeliveryOffer"]
        details = copy.deepcopy(offer.get("details") or {"deliveryProvider": offer["summary"]["deliveryProvider"]})
        product = copy.deepcopy(line.get("product"))
        if product and isinstance((product.get("identifier") or {}).get("amazonSku"), dict):
            product["identifier"]["amazonSku"] = {"value": product["identifier"]["amazonSku"]["value"]}
        return {
            "id": f"{secrets.token_hex(5)}-{secrets.token_hex(5)}",
            "aliases": check_new_aliases((), line.get("aliases"), "line item"),
            "amount": {"value": line["amount"]["value"], "unit": line["amount"].get("unit") or "ONE"},
            "createdAt": created,
            "deliveryOffer": {"details": details},
            "discounts": copy.deepcopy(line.get("discounts")),
            "product": product,
            "taxes": copy.deepcopy(line.get("taxes")),
        }

    def _start(self, order: JSON) -> None:
        """Release to fulfillment: one PENDING package with every Amazon-fulfilled line."""
        order["metadata"]["executionState"] = "STARTED"
        contents = [(line["id"], line["amount"]["value"]) for line in order["lineItems"]
                    if line["deliveryOffer"]["details"].get("deliveryProvider") == "AMAZON"]
        if contents:
            order["packages"].append(package_rules.new_package(contents))

    def _line_alias_updates(self, order: JSON, updates: list[JSON] | None) -> list[tuple[JSON, list[JSON]]]:
        lines = {line["id"]: line for line in order["lineItems"]}
        taken = {alias_key(a): line["id"] for line in order["lineItems"] for a in line["aliases"]}
        result = []
        for update in updates or []:
            if update is None:
                continue
            line_id = update["id"]["lineItemId"]
            line = lines.get(line_id)
            if line is None:
                raise invalid("InvalidLineItemId", f"order {order['id']} has no line item {line_id}")
            added = check_new_aliases(line["aliases"], update.get("aliases"), f"line item {line_id}")
            for alias in added:
                owner = taken.setdefault(alias_key(alias), line_id)
                if owner != line_id:
                    raise SandboxFault("ConflictError", "AliasValueAlreadyExists",
                                       f"alias {alias['aliasType']}={alias['aliasId']} already belongs to "
                                       f"line item {owner} of order {order['id']}")
            result.append((line, added))
        return result

    def _package_alias_updates(self, order: JSON, update: JSON | None) -> list[tuple[JSON, list[JSON]]]:
        packages = {package["id"]: package for package in order["packages"]}
        result = []
        for detail in (update or {}).get("details") or []:
            if detail is None:
                continue
            package = packages.get(detail["id"])
            if package is None:
                raise invalid("PackageInformationDetailIdNotFound",
                              f"order {order['id']} has no package {detail['id']}")
            result.append((package, check_new_aliases(package["aliases"], detail.get("aliases"),
                                                      f"package {detail['id']}")))
        return result

    def _view(self, order: JSON, *, admin: bool = False) -> JSON:
        """A deep copy in the GraphQL ``Order`` shape, with package information computed."""
        view = copy.deepcopy(order)
        packages = view.pop("packages")
        lines = {line["id"]: line for line in view["lineItems"]}
        details = [self._package_view(package, lines) for package in packages]
        view["packageInformation"] = {"summary": _summary(details), "details": details}
        for line in view["lineItems"]:
            mine = [d for d, p in zip(details, packages, strict=True) if any(c[0] == line["id"] for c in p["contents"])]
            line["packageInformation"] = {"summary": _summary(mine), "details": mine}
        if not admin:
            view.pop("recipient")
            view.pop("shopperIdentityGiven")
        return view

    @staticmethod
    def _package_view(package: JSON, lines: dict[str, JSON]) -> JSON:
        amounts = []
        for line_id, value in package["contents"]:
            line = lines[line_id]
            reference = {k: copy.deepcopy(line[k]) for k in ("id", "aliases", "amount", "product")}
            amounts.append({"lineItem": reference, "amount": {"value": value, "unit": "ONE"}})
        return {"id": package["id"], "aliases": copy.deepcopy(package["aliases"]), "state": package["state"],
                "reason": package["reason"], "packageTracker": copy.deepcopy(package.get("tracker")),
                "deliverFromAddress": None,
                "packageInformationDetailsFor": {"orderLineItemAmounts": amounts}}


def _summary(details: list[JSON]) -> JSON | None:
    state = summary_state([d["state"] for d in details])
    return None if state is None else {"state": state}

