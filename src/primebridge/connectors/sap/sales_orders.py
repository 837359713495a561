"""SAP S/4HANA sales orders (API_SALES_ORDER_SRV) as a ``SalesOrderSystem`` for the flows.

Reads are always fresh from SAP (it is authoritative); the Amazon ids are written back as SAP long
texts because API_SALES_ORDER_SRV has no free field that is both writable and safe to claim:
``ExternalDocumentID`` is read-only and ``PurchaseOrderByCustomer`` usually holds the shopper's
reference. Text ids are the merchant's own text types (``SapFieldsConfig``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from primebridge.config import SapConfig
from primebridge.connectors.sap.mapping import map_order
from primebridge.connectors.sap.odata import ODataClient
from primebridge.connectors.sap.values import (
    datetimeoffset_literal,
    entity_etag,
    key_predicate,
    parse_datetime,
    results,
)
from primebridge.domain.errors import Rejected
from primebridge.domain.model import SalesOrder

log = structlog.get_logger()

HEADER_SET = "A_SalesOrder"
ITEM_SET = "A_SalesOrderItem"
HEADER_TEXT_SET = "A_SalesOrderText"
ITEM_TEXT_SET = "A_SalesOrderItemText"
READ_EXPAND = ("to_Item", "to_Item/to_Text", "to_Text", "to_Partner", "to_Partner/to_Address")
TEXTS_EXPAND = ("to_Text", "to_Item", "to_Item/to_Text")
CHANGED_SELECT = ("SalesOrder", "LastChangeDateTime")
CHANGED_ORDERBY = ("LastChangeDateTime asc", "SalesOrder asc")
MAX_ORDER_ID = 10  # A_SalesOrder.SalesOrder is Edm.String MaxLength 10


def _order_keys(order_id: str) -> dict[str, str]:
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id.strip()) > MAX_ORDER_ID:
        raise Rejected(f"SAP sales order id {order_id!r} is not a valid SalesOrder "
                       f"(1-{MAX_ORDER_ID} characters)")
    return {"SalesOrder": order_id.strip()}


class SapSalesOrders:
    """The SAP adapter of the ``SalesOrderSystem`` port."""

    name = "sap"

    def __init__(self, client: ODataClient, cfg: SapConfig) -> None:
        self._client = client
        self._cfg = cfg
        self._fields = cfg.fields

    def close(self) -> None:
        self._client.close()

    def read_order(self, order_id: str) -> SalesOrder | None:
        path = HEADER_SET + key_predicate(_order_keys(order_id))
        entity = self._client.get_entity(path, expand=READ_EXPAND)
        return None if entity is None else map_order(entity, self._fields)

    def changed_order_ids(self, since: datetime) -> Iterator[tuple[str, datetime]]:
        """Orders with ``LastChangeDateTime`` at or after ``since``, oldest first.

        ``ge`` rather than ``gt``: SAP stores 100 ns but JSON shows milliseconds, so a watermark
        taken from a response is truncated and orders changed in the same instant as the
        watermark must not be missed. Repeats are harmless because the fulfill flow is idempotent.

        Paging is keyset-based (restart at the last change time seen, skipping the rows of that
        same millisecond already delivered) rather than a growing ``$skip``: an order changed
        while we page moves to the end of the list, and with ``$skip`` the row behind it would
        slide into the page already read and be lost for good once the watermark passes it.
        """
        cursor = since if since.tzinfo else since.replace(tzinfo=UTC)
        skip = 0
        size = self._cfg.page_size
        delivered: set[tuple[str, datetime]] = set()
        while True:
            rows = [self._changed_row(row) for row in self._client.query(
                HEADER_SET, filter=f"LastChangeDateTime ge {datetimeoffset_literal(cursor)}",
                select=CHANGED_SELECT, orderby=CHANGED_ORDERBY, top=size, skip=skip, page_size=size)]
            for row in rows:
                if row not in delivered:
                    delivered.add(row)
                    yield row
            if len(rows) < size:
                return
            last = rows[-1][1]
            if last == cursor:
                skip += len(rows)
            else:
                cursor, skip = last, sum(1 for _, changed in rows if changed == last)

    @staticmethod
    def _changed_row(row: Mapping[str, Any]) -> tuple[str, datetime]:
        order_id = row.get("SalesOrder")
        try:
            changed = parse_datetime(row.get("LastChangeDateTime"))
        except ValueError as exc:
            raise Rejected(f"SAP A_SalesOrder {order_id}: LastChangeDateTime {exc}") from None
        if not isinstance(order_id, str) or not order_id or changed is None:
            raise Rejected(f"SAP A_SalesOrder change list: a row lacks SalesOrder or LastChangeDateTime: "
                           f"{row!r}")
        return order_id, changed

    def write_amazon_ids(self, order: SalesOrder, amazon_order_id: str, line_ids: Mapping[str, str]) -> None:
        """Idempotent write-back as long texts, read fresh so a retry sees what an earlier try wrote.

        Item texts go first and the header text last: a header text present means every line
        was written. A text with the same value is left alone, a different value is updated
        (``If-Match`` when SAP gives the text an ETag), a missing one is created through the
        parent's ``to_Text`` navigation (the texts' own ``SalesOrder`` keys are not creatable).
        """
        keys = _order_keys(order.order_id)
        header_path = HEADER_SET + key_predicate(keys)
        fresh = self._client.get_entity(header_path, expand=TEXTS_EXPAND)
        if fresh is None:
            raise Rejected(f"SAP sales order {keys['SalesOrder']} no longer exists; cannot store Amazon "
                           f"order {amazon_order_id}")
        items = {str(item.get("SalesOrderItem")): item for item in results(fresh.get("to_Item"))}
        unknown = sorted(set(line_ids) - set(items))
        if unknown:
            raise Rejected(f"SAP sales order {keys['SalesOrder']} has no item(s) {', '.join(unknown)}")
        outcome: dict[str, int] = {"created": 0, "updated": 0, "unchanged": 0}
        for line_id, amazon_line_id in sorted(line_ids.items()):
            if not amazon_line_id:
                continue
            item_keys = {**keys, "SalesOrderItem": line_id}
            outcome[self._upsert_text(
                texts=results(items[line_id].get("to_Text")),
                parent_path=ITEM_SET + key_predicate(item_keys),
                text_path=lambda lang, tid, k=item_keys: ITEM_TEXT_SET + key_predicate(
                    {**k, "Language": lang, "LongTextID": tid}),
                text_id=self._fields.amazon_line_text_id, value=amazon_line_id)] += 1
        outcome[self._upsert_text(
            texts=results(fresh.get("to_Text")), parent_path=header_path,
            text_path=lambda lang, tid: HEADER_TEXT_SET + key_predicate(
                {**keys, "Language": lang, "LongTextID": tid}),
            text_id=self._fields.amazon_order_text_id, value=amazon_order_id)] += 1
        log.info("sap.amazon_ids_written", sales_order=keys["SalesOrder"], amazon_order_id=amazon_order_id,
                 **outcome)

    def _upsert_text(self, *, texts: list[dict[str, Any]], parent_path: str,
                     text_path: Callable[[str, str], str],
                     text_id: str, value: str) -> str:
        language = self._fields.text_language
        current = next((t for t in texts if t.get("LongTextID") == text_id
                        and str(t.get("Language", "")).upper() == language.upper()), None)
        if current is not None:
            if str(current.get("LongText") or "").strip() == value:
                return "unchanged"
            self._client.update(text_path(str(current.get("Language")), text_id), {"LongText": value},
                                etag=entity_etag(current))
            return "updated"
        self._client.create(f"{parent_path}/to_Text",
                            {"Language": language, "LongTextID": text_id, "LongText": value})
        return "created"
