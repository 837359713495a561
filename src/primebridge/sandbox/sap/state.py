"""The sandbox's sales orders: tables keyed like SAP's entity sets, guarded by one lock.

Behaviour the connector depends on is modelled on purpose: ``LastChangeDateTime`` (the header's
ETag) moves on every change to the order, its items, texts or partners, and it strictly increases
even within one millisecond, so two changes never share an ETag although JSON shows milliseconds.
[U] Whether SAP bumps the header on item-only/text-only changes is unconfirmed (reference §1.6);
the sandbox assumes it does because the document is saved as a whole.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.connectors.sap.values import parse_datetime
from primebridge.sandbox.sap.errors import NOT_FOUND, ODataError
from primebridge.sandbox.sap.inventory import SapInventory
from primebridge.sandbox.sap.query import Row
from primebridge.sandbox.sap.schema import ENTITY_TYPES, EntityType, Nav, Prop

CHANGED = "_changed"
PRICE = "_price"
DELIVERED = "_delivered"  # quantity in outbound deliveries (kept by sandbox/sap/deliveries.py)
EXTERNAL_TO_INTERNAL = {"SP": "AG", "SH": "WE", "BP": "RE", "PY": "RG"}
INTERNAL_TO_EXTERNAL = {v: k for k, v in EXTERNAL_TO_INTERNAL.items()}
DEFAULT_PRICE = Decimal("10.00")


@dataclass
class Settings:
    """Run-time switches (``PUT /_sandbox/settings``)."""

    server_page_size: int | None = None
    subentity_etags: bool = False
    require_if_match: bool = True


def bad(message: str, target: str = "") -> ODataError:
    return ODataError(400, message, target=target)


def coerce(prop: Prop, value: Any, where: str) -> Any:
    """A JSON request value → the stored Python value, with SAP-like 400s for bad input."""
    if value is None:
        return None
    if prop.type == "Edm.String":
        if not isinstance(value, str):
            raise bad(f"Property {prop.name} of {where} expects a string, got {type(value).__name__}",
                      prop.name)
        if prop.max_length is not None and len(value) > prop.max_length:
            raise bad(f"Value '{value[:50]}' is too long for {prop.name} (max. {prop.max_length})", prop.name)
        return value
    if prop.type == "Edm.Decimal":
        if isinstance(value, bool):
            raise bad(f"Property {prop.name} of {where} expects a decimal", prop.name)
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise bad(f"Invalid decimal '{value}' for {prop.name}", prop.name) from None
        if not result.is_finite():
            raise bad(f"Invalid decimal '{value}' for {prop.name}", prop.name)
        return result
    if prop.type in ("Edm.DateTime", "Edm.DateTimeOffset"):
        try:
            return parse_datetime(value)
        except ValueError:
            raise bad(f"Invalid date '{value}' for {prop.name}", prop.name) from None
    if prop.type == "Edm.Boolean":
        if not isinstance(value, bool):
            raise bad(f"Property {prop.name} of {where} expects a boolean", prop.name)
        return value
    return value


def default_value(prop: Prop) -> Any:
    if prop.type == "Edm.String":
        return ""
    if prop.type == "Edm.Boolean":
        return False
    return None


def _midnight(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


class SapStore:
    def __init__(self, *, username: str = "sandbox", settings: Settings | None = None) -> None:
        self.lock = threading.RLock()
        self.username = username
        self.settings = settings or Settings()
        self._initial_settings = replace(self.settings)
        self.tables: dict[str, dict[tuple[str, ...], Row]] = {name: {} for name in ENTITY_TYPES}
        # (set, SalesOrder) -> rows: every key starts with SalesOrder, so navigation stays cheap
        # with many orders.
        self._by_order: dict[tuple[str, str], dict[tuple[str, ...], Row]] = {}
        self.sessions: dict[str, str | None] = {}
        self.oauth_tokens: dict[str, float] = {}
        self.stats: Counter[str] = Counter()
        # Called by ``reset`` (under the lock): the delivery service keeps its own tables.
        self.reset_hooks: list[Callable[[], None]] = []
        self.next_number = 4500
        self._last_tick = datetime(1970, 1, 1, tzinfo=UTC)
        self.inventory = SapInventory()  # stock and material documents (inventory.py)

    def reset(self) -> None:
        with self.lock:
            for table in self.tables.values():
                table.clear()
            self._by_order.clear()
            self.sessions.clear()
            self.oauth_tokens.clear()
            self.stats.clear()
            self.next_number = 4500
            self.settings = replace(self._initial_settings)
            for hook in self.reset_hooks:
                hook()
            self.inventory.reset()

    # -- time and ETags ----------------------------------------------------------------------

    def tick(self) -> datetime:
        """A change timestamp strictly after the previous one (1 µs apart at least)."""
        now = datetime.now(UTC)
        self._last_tick = max(now, self._last_tick + timedelta(microseconds=1))
        return self._last_tick

    def etag(self, etype: EntityType, row: Row) -> str | None:
        if etype.etag_prop:
            stamp = row.get(etype.etag_prop)
        elif self.settings.subentity_etags:
            stamp = row.get(CHANGED)
        else:
            return None
        if not isinstance(stamp, datetime):
            return None
        iso = stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{stamp.microsecond:06d}0Z"
        return 'W/"datetimeoffset\'' + iso.replace(":", "%3A") + '\'"'

    # -- lookup ------------------------------------------------------------------------------

    @staticmethod
    def key_of(etype: EntityType, row: Row) -> tuple[str, ...]:
        return tuple(str(row[k]) for k in etype.keys)

    def get(self, etype: EntityType, keys: dict[str, str]) -> Row | None:
        return self.tables[etype.set_name].get(tuple(keys[k] for k in etype.keys))

    def require(self, etype: EntityType, keys: dict[str, str]) -> Row:
        row = self.get(etype, keys)
        if row is None:
            raise ODataError(404, f"Resource not found for segment '{etype.type_name}'", code=NOT_FOUND)
        return row

    def follow(self, nav: Nav, row: Row) -> list[Row]:
        wanted = tuple(str(row.get(f)) for f in nav.join)
        target = ENTITY_TYPES[nav.target]
        positions = [target.keys.index(f) for f in nav.join]
        rows = self._by_order.get((nav.target, str(row.get("SalesOrder"))), {})
        return [r for k, r in rows.items() if tuple(k[p] for p in positions) == wanted]

    def rows_of(self, set_name: str, order_id: str) -> list[Row]:
        return list(self._by_order.get((set_name, order_id), {}).values())

    def header(self, order_id: str) -> Row | None:
        return self.tables["A_SalesOrder"].get((order_id,))

    # -- change bookkeeping ------------------------------------------------------------------

    def touch(self, order_id: str, *rows: Row) -> None:
        """Records a change: the rows and the order header get a new change time."""
        now = self.tick()
        for row in rows:
            row[CHANGED] = now
        header = self.header(order_id)
        if header is not None:
            header["LastChangeDateTime"] = now
            header["LastChangeDate"] = _midnight(now)
            header[CHANGED] = now
            self.recompute(order_id)

    def recompute(self, order_id: str) -> None:
        header = self.header(order_id)
        if header is None:
            return
        items = self.follow(ENTITY_TYPES["A_SalesOrder"].navs["to_Item"], header)
        for item in items:
            qty = item.get("RequestedQuantity") or Decimal(0)
            item["NetAmount"] = (item.get(PRICE, DEFAULT_PRICE) * qty).quantize(Decimal("0.01"))
            item["TransactionCurrency"] = header.get("TransactionCurrency", "")
            item["OrderQuantityUnit"] = item.get("RequestedQuantityUnit", "")
        active = [i for i in items if not i.get("SalesDocumentRjcnReason")]
        header["TotalNetAmount"] = sum((i["NetAmount"] for i in active), Decimal("0.00"))
        if not items:
            header["OverallSDDocumentRejectionSts"] = ""
        elif not active:
            header["OverallSDDocumentRejectionSts"] = "C"
        else:
            header["OverallSDDocumentRejectionSts"] = "A" if len(active) == len(items) else "B"
        statuses = []
        for item in items:
            delivered = item.get(DELIVERED) or Decimal(0)
            ordered = item.get("RequestedQuantity") or Decimal(0)
            item["DeliveryStatus"] = "A" if delivered <= 0 else ("C" if delivered >= ordered else "B")
            if not item.get("SalesDocumentRjcnReason") or delivered > 0:
                statuses.append(item["DeliveryStatus"])
        overall = ("C" if all(st == "C" for st in statuses) else "A" if all(st == "A" for st in statuses)
                   else "B") if statuses else header.get("OverallDeliveryStatus", "")
        header["OverallDeliveryStatus"] = header["OverallTotalDeliveryStatus"] = overall

    # -- create / update / delete ------------------------------------------------------------

    def _new_row(self, etype: EntityType, body: dict[str, Any], *, fixed: dict[str, str],
                 admin: bool = False) -> Row:
        where = etype.type_name
        row: Row = {name: default_value(prop) for name, prop in etype.props.items()}
        for name, value in body.items():
            if name == "__metadata" or name in etype.navs:
                continue
            prop = etype.props.get(name)
            if prop is None:
                raise bad(f"Property '{name}' is invalid for {where}", name)
            if not prop.creatable and not admin and name not in etype.keys:
                raise bad(f"Property {name} of {where} cannot be set on create (read-only)", name)
            row[name] = coerce(prop, value, where)
        for name, value in fixed.items():
            if body.get(name) not in (None, "", value):
                raise bad(f"Key {name} '{body.get(name)}' does not match the parent's '{value}'", name)
            row[name] = value
        return row

    def _insert(self, etype: EntityType, row: Row) -> Row:
        for key in etype.keys:
            if row.get(key) is None or (row[key] == "" and key != "AddressRepresentationCode"):
                raise bad(f"Key property {key} of {etype.type_name} is missing", key)
        key = self.key_of(etype, row)
        table = self.tables[etype.set_name]
        if key in table:
            raise ODataError(400, f"{etype.type_name} with key ({', '.join(key)}) already exists",
                             code="SY/530")
        row.setdefault(CHANGED, self.tick())
        table[key] = row
        self._by_order.setdefault((etype.set_name, key[0]), {})[key] = row
        return row

    def create(self, etype: EntityType, body: dict[str, Any], *, parent: Row | None = None,
               parent_type: EntityType | None = None, nav: Nav | None = None, admin: bool = False) -> Row:
        """POST on a set or through a navigation (``parent``); ``A_SalesOrder`` is a deep insert."""
        if not etype.creatable and not admin:
            raise ODataError(405, f"Entity set {etype.set_name} is not creatable; create it by deep insert "
                                  f"through its parent")
        fixed = {f: str(parent[f]) for f in nav.join} if parent is not None and nav is not None else {}
        if etype.set_name == "A_SalesOrder":
            return self._create_order(body, admin=admin)
        order_id = fixed.get("SalesOrder") or body.get("SalesOrder")
        if not isinstance(order_id, str) or self.header(order_id) is None:
            raise bad(f"Sales order {order_id!r} does not exist", "SalesOrder")
        fixed["SalesOrder"] = order_id
        if etype.set_name == "A_SalesOrderItem":
            row = self._create_item(order_id, body, admin=admin)
        elif etype.set_name == "A_SalesOrderHeaderPartner":
            row = self._create_partner(order_id, body, admin=admin)
        else:
            if etype.set_name == "A_SalesOrderItemText":
                item_no = fixed.get("SalesOrderItem") or body.get("SalesOrderItem")
                items = self.tables["A_SalesOrderItem"]
                if not isinstance(item_no, str) or items.get((order_id, item_no)) is None:
                    raise bad(f"Item {item_no!r} of sales order {order_id} does not exist", "SalesOrderItem")
                fixed["SalesOrderItem"] = item_no
            row = self._insert(etype, self._new_row(etype, body, fixed=fixed, admin=admin))
        self.touch(order_id, row)
        return row

    def _create_order(self, body: dict[str, Any], *, admin: bool) -> Row:
        etype = ENTITY_TYPES["A_SalesOrder"]
        order_id = body.get("SalesOrder") or ""
        if not order_id:
            order_id = str(self.next_number)
            while self.header(order_id) is not None:
                self.next_number += 1
                order_id = str(self.next_number)
            self.next_number += 1
        header = self._new_row(etype, {**body, "SalesOrder": order_id}, fixed={}, admin=admin)
        for required in ("SalesOrderType", "SoldToParty"):
            if not header.get(required):
                raise bad(f"{required} is required to create a sales order", required)
        today = _midnight(datetime.now(UTC))
        header.update({k: v for k, v in {
            "CreationDate": today, "CreatedByUser": self.username.upper(), "OverallSDProcessStatus": "A",
            "OverallDeliveryStatus": "A", "OverallTotalDeliveryStatus": "A", "TotalCreditCheckStatus": "",
        }.items() if not header.get(k)})
        for name in ("SalesOrderDate", "PricingDate", "RequestedDeliveryDate"):
            header[name] = header.get(name) or today
        self._insert(etype, header)
        try:
            for nav_name, creator in (("to_Item", self._create_item), ("to_Partner", self._create_partner)):
                for child in _nested(body.get(nav_name), nav_name):
                    creator(order_id, child, admin=admin)
            text_type = ENTITY_TYPES["A_SalesOrderText"]
            for text in _nested(body.get("to_Text"), "to_Text"):
                self._insert(text_type, self._new_row(text_type, text, fixed={"SalesOrder": order_id},
                                                      admin=admin))
        except ODataError:
            self._delete_order(order_id)
            raise
        self.touch(order_id)
        return header

    def _create_item(self, order_id: str, body: dict[str, Any], *, admin: bool) -> Row:
        etype = ENTITY_TYPES["A_SalesOrderItem"]
        item_no = body.get("SalesOrderItem") or ""
        if not item_no:
            numbers = [int(r["SalesOrderItem"]) for r in self.rows_of(etype.set_name, order_id)
                       if str(r["SalesOrderItem"]).isdigit()]
            item_no = str((max(numbers) // 10 + 1) * 10 if numbers else 10)
        price = body.get(PRICE) if admin else None
        clean = {k: v for k, v in body.items() if k != PRICE}
        row = self._new_row(etype, {**clean, "SalesOrderItem": item_no}, fixed={"SalesOrder": order_id},
                            admin=admin)
        if not row.get("Material"):
            raise bad("Material is required for a sales order item", "Material")
        if row.get("RequestedQuantity") is None:
            row["RequestedQuantity"] = Decimal(1)
        row["RequestedQuantityUnit"] = row.get("RequestedQuantityUnit") or "PC"
        row[PRICE] = Decimal(str(price)) if price is not None else DEFAULT_PRICE
        for name in ("SDProcessStatus", "DeliveryStatus", "OrderRelatedBillingStatus"):
            row[name] = row.get(name) or "A"
        row["SalesOrderItemCategory"] = row.get("SalesOrderItemCategory") or "TAN"
        self._insert(etype, row)
        text_type = ENTITY_TYPES["A_SalesOrderItemText"]
        for text in _nested(body.get("to_Text"), "to_Text"):
            self._insert(text_type, self._new_row(
                text_type, text, fixed={"SalesOrder": order_id, "SalesOrderItem": item_no}, admin=admin))
        return row

    def _create_partner(self, order_id: str, body: dict[str, Any], *, admin: bool) -> Row:
        etype = ENTITY_TYPES["A_SalesOrderHeaderPartner"]
        row = self._new_row(etype, body, fixed={"SalesOrder": order_id}, admin=admin)
        function = str(row.get("PartnerFunction") or "")
        row["PartnerFunctionInternalCode"] = EXTERNAL_TO_INTERNAL.get(function, function)
        self._insert(etype, row)
        address_type = ENTITY_TYPES["A_SalesOrderPartnerAddress"]
        # Partner addresses are not creatable on their own, but a deep insert may carry them.
        for address in _nested(body.get("to_Address"), "to_Address"):
            fixed = {"SalesOrder": order_id, "PartnerFunction": function}
            fields = {"AddressRepresentationCode": "", **address}
            self._insert(address_type, self._new_row(address_type, fields, fixed=fixed, admin=True))
        return row

    def update(self, etype: EntityType, row: Row, body: dict[str, Any], *, replace: bool = False,
               admin: bool = False) -> None:
        if not etype.updatable and not admin:
            raise ODataError(405, f"Entity set {etype.set_name} is not updatable")
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name == "__metadata":
                continue
            if name in etype.navs:
                raise bad(f"Navigation property {name} cannot be changed with an update", name)
            prop = etype.props.get(name)
            if prop is None:
                raise bad(f"Property '{name}' is invalid for {etype.type_name}", name)
            new = coerce(prop, value, etype.type_name)
            if name in etype.keys:
                if new != row.get(name):
                    raise bad(f"Key property {name} cannot be changed", name)
                continue
            if not prop.updatable and not admin:
                if new == row.get(name):
                    continue  # Gateway tolerates a read-only field sent back unchanged
                raise bad(f"Property {name} of {etype.type_name} is read-only and cannot be changed", name)
            changes[name] = new
        if replace:
            for name, prop in etype.props.items():
                if prop.updatable and name not in etype.keys and name not in changes:
                    changes[name] = default_value(prop)
        delivered = row.get(DELIVERED) or Decimal(0)
        if etype.set_name == "A_SalesOrderItem" and delivered and "RequestedQuantity" in changes and (
                changes["RequestedQuantity"] or Decimal(0)) < delivered:
            raise bad(f"Quantity {changes['RequestedQuantity']} of item {row['SalesOrderItem']} is less than the "
                      f"quantity already delivered ({delivered})", "RequestedQuantity")
        row.update(changes)
        self.touch(str(row["SalesOrder"]), row)

    def delete(self, etype: EntityType, row: Row) -> None:
        if not etype.deletable:
            raise ODataError(405, f"Entity set {etype.set_name} is not deletable")
        order_id = str(row["SalesOrder"])
        if etype.set_name in ("A_SalesOrder", "A_SalesOrderItem"):
            items = self.rows_of("A_SalesOrderItem", order_id) if etype.set_name == "A_SalesOrder" else [row]
            if any(item.get(DELIVERED) for item in items):
                raise bad(f"Sales document {order_id} has subsequent documents (deliveries) and cannot be deleted")
        if etype.set_name == "A_SalesOrder":
            self._delete_order(order_id)
            return
        self._delete_tree(etype, row)
        self.touch(order_id)

    def _delete_tree(self, etype: EntityType, row: Row) -> None:
        for nav in etype.navs.values():
            if nav.many:
                for child in self.follow(nav, row):
                    self._delete_tree(ENTITY_TYPES[nav.target], child)
        key = self.key_of(etype, row)
        self.tables[etype.set_name].pop(key, None)
        self._by_order.get((etype.set_name, key[0]), {}).pop(key, None)

    def _delete_order(self, order_id: str) -> None:
        for set_name, table in self.tables.items():
            for key in self._by_order.pop((set_name, order_id), {}):
                table.pop(key, None)


def _nested(value: Any, name: str) -> list[dict[str, Any]]:
    """Deep-insert children: ``{"results": [...]}`` (OpenAPI form) or a bare list (also accepted by SAP)."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("results", [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise bad(f"Deep insert {name} must be a list of objects or {{\"results\": [...]}}", name)
    return value
