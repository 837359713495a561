"""The NetSuite sandbox's inventory: items, quantity on hand per location, inventory adjustments.

Sized for the inventory benchmark (100k items): an item is two dict entries (name → id, id →
name) and a quantity one entry in a dict per location — no record objects per item. The sales-order
side keeps its own small item catalogue; an item seeded here under a name that catalogue knows takes
the catalogue's internal id, so an order line and the stock speak of the same item.

Inventory adjustments follow reference §6.6: ``account`` and ``adjLocation`` required, an
``inventory`` sublist of ``item`` / ``location`` / ``adjustQtyBy`` (signed) / ``memo`` lines; posting
is all or nothing. ``externalId`` is unique among adjustments. Taking more than is on hand is refused
([U]: NetSuite allows it where "Allow negative inventory" is on; its exact message is unconfirmed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.sandbox.netsuite.errors import NsError, invalid_value

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
FIRST_ITEM_ID = 100_000
Quantity = int | Decimal


def quantity(value: Decimal) -> Quantity:
    return int(value) if value == value.to_integral_value() else value


@dataclass(slots=True)
class Adjustment:
    id: int
    tran_id: str
    account: str
    location: str
    created: datetime
    tran_date: date
    user: str
    memo: str | None = None
    external_id: str | None = None
    subsidiary: str | None = None
    department: str | None = None
    class_id: str | None = None
    # (line, item id, location id, adjustQtyBy, quantity on hand after, memo)
    lines: list[tuple[int, int, str, Quantity, Quantity, str | None]] = field(default_factory=list)


class InventoryBook:
    """Guarded by the sandbox state's lock, like every other sandbox record."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.on_hand: dict[str, dict[int, Quantity]] = {}  # location id → item id → quantity
        self.adjustments: dict[int, Adjustment] = {}
        self.by_external_id: dict[str, int] = {}
        self._next_item = FIRST_ITEM_ID

    def add_item(self, name: str, known_id: str | None = None) -> int:
        item_id = self.ids.get(name)
        if item_id is None:
            if known_id is not None and known_id.isdigit() and int(known_id) not in self.names:
                item_id = int(known_id)
            else:
                while self._next_item in self.names:
                    self._next_item += 1
                item_id = self._next_item
                self._next_item += 1
            self.ids[name] = item_id
            self.names[item_id] = name
        return item_id

    def set_quantity(self, item_id: int, location: str, value: Quantity) -> None:
        self.on_hand.setdefault(location, {})[item_id] = value

    def quantity(self, item_id: int, location: str) -> Quantity | None:
        return self.on_hand.get(location, {}).get(item_id)

    # -- inventoryAdjustment ----------------------------------------------------------------------

    def adjust(self, body: Any, *, new_id: int, now: datetime, user: str,
               location_exists: Any) -> Adjustment:
        """Create an adjustment from a REST body (keys case-insensitive, like NetSuite's input)."""
        if not isinstance(body, dict):
            raise NsError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
        fields = {k.lower(): (k, v) for k, v in body.items()}
        known = {"account", "adjlocation", "subsidiary", "department", "class", "memo", "externalid", "trandate",
                 "inventory", "postingperiod", "customer"}
        unknown = sorted(original for key, (original, _) in fields.items() if key not in known)
        if unknown:
            raise NsError(400, "INVALID_CONTENT", f"Invalid property name '{unknown[0]}': the field does not exist "
                          "on the record.", path=unknown[0])

        def ref(name: str, required: bool) -> str | None:
            raw = fields.get(name, (name, None))[1]
            value = raw.get("id") if isinstance(raw, dict) else raw
            if value in (None, ""):
                if required:
                    label = {"account": "Adjustment Account", "adjlocation": "Adjustment Location"}[name]
                    raise NsError(400, "USER_ERROR", f"Please enter value(s) for: {label}", path=name)
                return None
            if isinstance(value, bool) or not str(value).isdigit():
                raise invalid_value(name, value, name)
            return str(value)

        account = ref("account", True)
        location = ref("adjlocation", True)
        assert account is not None and location is not None
        if not location_exists(location):
            raise invalid_value("adjLocation", location, "adjLocation")
        external = fields.get("externalid", ("", None))[1]
        if external is not None:
            if not isinstance(external, str) or not EXTERNAL_ID.match(external):
                raise invalid_value("externalId", external, "externalId")
            if external in self.by_external_id:
                raise NsError(400, "DUP_RCRD", f"A record with the external ID {external} already exists.",
                              path="externalId")
        memo = fields.get("memo", ("", None))[1]
        sublist = fields.get("inventory", ("", None))[1]
        rows = sublist.get("items") if isinstance(sublist, dict) else None
        if not isinstance(rows, list) or not rows:
            raise NsError(400, "USER_ERROR", "You must enter at least one line item for this transaction.",
                          path="inventory")
        planned: list[tuple[int, int, str, Quantity, Quantity, str | None]] = []
        after: dict[tuple[int, str], Decimal] = {}
        for index, raw in enumerate(rows):
            path = f"inventory.items[{index}]"
            if not isinstance(raw, dict):
                raise NsError(400, "INVALID_CONTENT", "Each inventory line must be an object.", path=path)
            line = {k.lower(): v for k, v in raw.items()}
            item_raw = line.get("item")
            item_value = item_raw.get("id") if isinstance(item_raw, dict) else item_raw
            item_id = int(item_value) if isinstance(item_value, str | int) and str(item_value).isdigit() else None
            if item_id is None or item_id not in self.names:
                raise invalid_value("item", item_value, f"{path}.item")
            loc_raw = line.get("location", location)
            line_location = str(loc_raw.get("id") if isinstance(loc_raw, dict) else loc_raw)
            if not location_exists(line_location):
                raise invalid_value("location", line_location, f"{path}.location")
            try:
                delta = Decimal(str(line.get("adjustqtyby")))
            except InvalidOperation:
                raise invalid_value("adjustQtyBy", line.get("adjustqtyby"), f"{path}.adjustQtyBy") from None
            if isinstance(line.get("adjustqtyby"), bool) or not delta.is_finite() or delta == 0:
                raise invalid_value("adjustQtyBy", line.get("adjustqtyby"), f"{path}.adjustQtyBy")
            key = (item_id, line_location)
            current = after.get(key, Decimal(self.quantity(item_id, line_location) or 0))
            if current + delta < 0:
                raise NsError(400, "USER_ERROR", f"You cannot adjust the quantity of {self.names[item_id]} at "
                              f"location {line_location} below zero: {current} on hand, adjusting by {delta}.",
                              path=f"{path}.adjustQtyBy")
            after[key] = current + delta
            line_memo = line.get("memo")
            planned.append((index + 1, item_id, line_location, quantity(delta), quantity(current + delta),
                            None if line_memo is None else str(line_memo)))
        tran_date = now.date()
        record = Adjustment(
            id=new_id, tran_id=f"ADJ{new_id}", account=account, location=location, created=now, tran_date=tran_date,
            user=user, memo=None if memo is None else str(memo), external_id=external,
            subsidiary=ref("subsidiary", False), department=ref("department", False), class_id=ref("class", False),
            lines=planned)
        for (item_id, line_location), value in after.items():
            self.set_quantity(item_id, line_location, quantity(value))
        self.adjustments[record.id] = record
        if external is not None:
            self.by_external_id[external] = record.id
        return record

    def find(self, record_id: str) -> Adjustment | None:
        if record_id.lower().startswith("eid:"):
            found = self.by_external_id.get(record_id[4:])
            return None if found is None else self.adjustments.get(found)
        return self.adjustments.get(int(record_id)) if record_id.isdigit() else None
