"""NetSuite stock at the Amazon location as an ``InventoryLedger``.

Reading is SuiteQL (reference §3.2): ``inventoryitemlocations`` gives the quantity on hand per item
and location; with ``item_key = "itemid"`` (the item name, what merchants use as SKU and what the
SKU maps are written in) the names are first resolved to internal ids in ``item``. A name unknown
(or inactive) in NetSuite, or an item without a row at the location, is ``None``. A row without
``quantityonhand`` is 0: SuiteQL leaves NULL columns out of a row [U].

Posting is one ``inventoryAdjustment`` (reference §6.6) per ``lines_per_document`` adjustments:
``account``, ``adjLocation``, the Amazon memo, and one ``inventory`` line per item with the signed
``adjustQtyBy`` and the adjustment's ``reference`` as the line memo. Idempotency is the record's
``externalId``: a digest of the document's references, looked up (``GET .../eid:<id>``) before the
POST, unless the caller passes ``unposted`` (its drift rows were created just now, so no reference
can have been sent). The internal ids resolved by the stock read are reused by the post right after.
Not the ``PUT .../eid:`` upsert: on a record that exists, an upsert is an update, and whether
an update of a posted adjustment replaces or appends its non-keyed ``inventory`` lines is
unconfirmed [U] — a rerun must change nothing, so it only ever creates. A POST refused because the
``externalId`` exists meanwhile (two runs racing) is answered by that record. The guarantee is per
document: a retry sends the same adjustments (the flow's job payload), hence the same ``externalId``.

Every call goes through ``NetSuiteRest``, so it holds one slot of the account's shared concurrency
semaphore (``governance.py``) like every other NetSuite call of the process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog

from primebridge.config import NetSuiteInventoryConfig
from primebridge.connectors.netsuite.fulfillments import json_number
from primebridge.connectors.netsuite.rest import NetSuiteRest
from primebridge.connectors.netsuite.suiteql import sql_literal
from primebridge.domain.errors import ConfigError, PermanentError, Rejected
from primebridge.domain.inventory import StockAdjustment

log = structlog.get_logger()

RECORD = "inventoryAdjustment"
MAX_ITEM_NAME = 250
RECENT_IDS = 2000  # item ids kept from recent reads: the pages in flight, a few times over


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def external_id(prefix: str, references: Iterable[str]) -> str:
    """``<prefix><32 hex>``: letters, digits, ``_`` and ``-`` only, as ``eid:`` requires (§2.4)."""
    digest = hashlib.sha256("\n".join(sorted(references)).encode()).hexdigest()[:32]
    return f"{prefix}{digest}"


class NetSuiteInventoryLedger:
    """The NetSuite adapter of the ``InventoryLedger`` port."""

    name = "netsuite"

    def __init__(self, rest: NetSuiteRest, cfg: NetSuiteInventoryConfig) -> None:
        if not cfg.location_id or not cfg.account_id:
            raise ConfigError("netsuite.inventory.location_id and netsuite.inventory.account_id must be set for "
                              "the inventory sync")
        self.rest = rest
        self.cfg = cfg
        self.items_per_document = cfg.lines_per_document
        # Internal ids of the items just read, so posting the page's adjustment right after does not
        # resolve the same names again (one SuiteQL call fewer per page). Small and short-lived: an
        # id that went stale meanwhile (item inactivated) makes NetSuite refuse the line, which the
        # flow reports; it never adjusts another item, because internal ids are never reused.
        self._recent_ids: OrderedDict[str, int] = OrderedDict()
        self._recent_lock = threading.Lock()

    def close(self) -> None:
        self.rest.http.close()

    def check(self) -> str:
        """For ``config check``: the Amazon location exists and both SuiteQL tables answer. The GL
        account is not read (whether the REST ``account`` record is readable is unconfirmed); NetSuite
        names it in its refusal of the first adjustment."""
        cfg = self.cfg
        location = self.rest.get("location", cfg.location_id, expand_sub_resources=False)
        if location is None:
            raise ConfigError(f"netsuite.inventory.location_id {cfg.location_id}: NetSuite has no location with "
                              "this internal id")
        list(self.rest.suiteql("SELECT id, itemid FROM item WHERE itemid IN ('primebridge-config-check')"))
        list(self.rest.suiteql(f"SELECT item, quantityonhand FROM inventoryitemlocations "
                               f"WHERE location = {int(cfg.location_id)} AND item IN (0)"))
        name = location.get("name") or location.get("refName") or ""
        return (f"location {cfg.location_id}{f' ({name})' if name else ''} found; SuiteQL stock query answered; "
                f"adjustments to account {cfg.account_id} (checked by the first adjustment)")

    # -- reading -----------------------------------------------------------------------------------

    def item_ids(self, oms_items: Sequence[str]) -> dict[str, int]:
        """``{oms item: internal id}`` of the items NetSuite knows (active ones, by name or by id)."""
        if self.cfg.item_key == "id":
            return {item: int(item) for item in oms_items if item.strip().isdigit()}
        names = sorted({item for item in oms_items if 0 < len(item) <= MAX_ITEM_NAME})
        found: dict[str, int] = {}
        for group in chunks(names, self.cfg.items_per_query):
            listed = ", ".join(sql_literal(name) for name in group)
            query = f"SELECT id, itemid FROM item WHERE itemid IN ({listed}) AND isinactive = 'F'"
            for row in self.rest.suiteql(query):
                name, item_id = row.get("itemid"), str(row.get("id") or "")
                if name in group and item_id.isdigit():
                    found[str(name)] = int(item_id)
        return {item: found[item] for item in oms_items if item in found}

    def _remember(self, ids: dict[str, int]) -> None:
        with self._recent_lock:
            for name, item_id in ids.items():
                self._recent_ids[name] = item_id
                self._recent_ids.move_to_end(name)
            while len(self._recent_ids) > RECENT_IDS:
                self._recent_ids.popitem(last=False)

    def _known_ids(self, oms_items: Sequence[str]) -> dict[str, int]:
        """``item_ids`` answered from the recent reads where possible."""
        if self.cfg.item_key == "id":
            return self.item_ids(oms_items)
        with self._recent_lock:
            found = {item: self._recent_ids[item] for item in oms_items if item in self._recent_ids}
        missing = [item for item in oms_items if item not in found]
        if missing:
            found.update(self.item_ids(missing))
        return found

    def quantities(self, oms_items: list[str]) -> dict[str, Decimal | None]:
        result: dict[str, Decimal | None] = {item: None for item in oms_items}
        ids = self.item_ids(oms_items)
        self._remember(ids)
        on_hand: dict[int, Decimal] = {}
        location = int(self.cfg.location_id)
        for group in chunks(sorted(set(ids.values())), self.cfg.items_per_query):
            listed = ", ".join(str(i) for i in group)
            query = (f"SELECT item, quantityonhand FROM inventoryitemlocations "
                     f"WHERE location = {location} AND item IN ({listed})")
            for row in self.rest.suiteql(query):
                try:
                    item_id = int(str(row.get("item")))
                    on_hand[item_id] = Decimal(str(row.get("quantityonhand") or "0"))
                except (ValueError, InvalidOperation):
                    raise PermanentError(f"NetSuite inventoryitemlocations returned an unreadable row {row!r}") \
                        from None
        for item, item_id in ids.items():
            result[item] = on_hand.get(item_id)
        return result

    # -- posting -----------------------------------------------------------------------------------

    def post_adjustments(self, adjustments: list[StockAdjustment], *, unposted: bool = False) -> dict[str, str]:
        """One adjustment record per ``lines_per_document`` adjustments; returns ``{reference: record
        id}`` (every reference of a record maps to it, whether posted now or found by its
        ``externalId``). ``unposted`` (the caller knows no reference was ever sent) skips the lookup."""
        todo = [adj for adj in adjustments if adj.delta != 0]
        if not todo:
            return {}
        if len({adj.reference for adj in todo}) != len(todo):
            raise Rejected("NetSuite inventory adjustment: two adjustments share one reference")
        ids = self._known_ids([adj.oms_item for adj in todo])
        unknown = sorted({adj.oms_item for adj in todo if adj.oms_item not in ids})
        if unknown:
            raise Rejected(f"NetSuite has no active item {', '.join(unknown)}; nothing was posted",
                           code="UnknownItem")
        documents: dict[str, str] = {}
        for group in chunks(todo, self.cfg.lines_per_document):
            record_id = self._post(list(group), ids, unposted=unposted)
            documents.update((adj.reference, record_id) for adj in group)
        return documents

    def _post(self, group: list[StockAdjustment], ids: dict[str, int], *, unposted: bool) -> str:
        cfg = self.cfg
        eid = external_id(cfg.external_id_prefix, (adj.reference for adj in group))
        existing = None if unposted else self._find(eid)
        if existing is not None:
            log.info("netsuite.inventory.already_posted", adjustment=existing, external_id=eid)
            return existing
        location = {"id": cfg.location_id}
        body: dict[str, Any] = {
            "externalId": eid, "account": {"id": cfg.account_id}, "adjLocation": location, "memo": cfg.memo,
            "inventory": {"items": [{"item": {"id": str(ids[adj.oms_item])}, "location": location,
                                     "adjustQtyBy": json_number(adj.delta), "memo": adj.reference} for adj in group]},
        }
        for key, value in (("subsidiary", cfg.subsidiary_id), ("department", cfg.department_id),
                           ("class", cfg.class_id)):
            if value is not None:
                body[key] = {"id": value}
        try:
            record_id = self.rest.create(RECORD, body)
        except Rejected:
            raced = self._find(eid)
            if raced is None:
                raise
            log.info("netsuite.inventory.already_posted", adjustment=raced, external_id=eid)
            return raced
        log.info("netsuite.inventory.posted", adjustment=record_id, lines=len(group), external_id=eid)
        return record_id

    def _find(self, eid: str) -> str | None:
        record = self.rest.get(RECORD, f"eid:{eid}", expand_sub_resources=False)
        return None if record is None else str(record.get("id"))
