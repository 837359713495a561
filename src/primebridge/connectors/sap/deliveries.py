"""SAP outbound deliveries (API_OUTBOUND_DELIVERY_SRV;v=0002) over the shared OData V2 client.

What the service allows, per its EDMX (the on-prem ``OP_..._0002`` edition):

- A delivery is created by a deep insert of ``A_OutbDeliveryHeader`` whose ``to_DeliveryDocumentItem``
  entries reference sales order items (``ReferenceSDDocument``/``ReferenceSDDocumentItem``) with the
  quantity; items cannot be created on their own. Header texts (``to_DeliveryDocumentText``) may ride
  along in the same request, which is what makes the Amazon package id on a delivery atomic with it.
- On the header only ``ShippingPoint`` is creatable; ``BillOfLading``, ``DeliveryDate`` and the other
  shipping fields are updatable only, so they are PATCHed right after the create, with ``If-Match``
  (the ``DeliveryVersion`` ETag; 428 without it, 412 when stale).
- ``PostGoodsIssue`` is a POST function import bound to the header (``If-Match`` required).
- Header texts have no ETag and cannot be read as a set (``sap:addressable="false"``): they are read
  through ``$expand=to_DeliveryDocumentText`` and written with POST/PATCH on ``A_OutbDeliveryHeaderText``.
- Deliveries carry no change timestamp and no filterable field long enough for an Amazon package id,
  so a package's delivery is found through the items that reference the order (see ``ids_for_order``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from primebridge.connectors.sap.odata import ODataClient
from primebridge.connectors.sap.values import entity_etag, key_predicate, results, string_literal
from primebridge.domain.errors import PermanentError, Rejected

log = structlog.get_logger()

HEADER_SET = "A_OutbDeliveryHeader"
ITEM_SET = "A_OutbDeliveryItem"
HEADER_TEXT_SET = "A_OutbDeliveryHeaderText"
ITEMS_NAV = "to_DeliveryDocumentItem"
TEXTS_NAV = "to_DeliveryDocumentText"
POST_GOODS_ISSUE = "PostGoodsIssue"
MAX_DELIVERY_ID = 10  # A_OutbDeliveryHeader.DeliveryDocument is Edm.String MaxLength 10
GOODS_ISSUED = "C"  # OverallGoodsMovementStatus "completely processed"
# How many delivery ids go into one "DeliveryDocument eq … or …" filter (keeps the URL short).
IDS_PER_QUERY = 20

# Properties primebridge sends or reads; tests check them against the EDMX.
CREATE_ITEM_PROPERTIES = ("ReferenceSDDocument", "ReferenceSDDocumentItem", "ActualDeliveryQuantity",
                          "DeliveryQuantityUnit")
TEXT_PROPERTIES = ("DeliveryDocument", "TextElement", "Language", "TextElementText")
HEADER_PROPERTIES = ("DeliveryDocument", "DeliveryVersion", "OverallGoodsMovementStatus", "DeliveryDate",
                     "BillOfLading", "DeliveryDocumentBySupplier", "MeansOfTransport", "ShippingPoint")
# Max lengths of the header fields a tracking number may go to (EDMX MaxLength).
TRACKING_FIELD_LENGTH = {"BillOfLading": 35, "DeliveryDocumentBySupplier": 35, "MeansOfTransport": 20}


def delivery_keys(delivery_id: str) -> dict[str, str]:
    if not isinstance(delivery_id, str) or not delivery_id.strip() or len(delivery_id.strip()) > MAX_DELIVERY_ID:
        raise Rejected(f"SAP outbound delivery id {delivery_id!r} is not a valid DeliveryDocument "
                       f"(1-{MAX_DELIVERY_ID} characters)")
    return {"DeliveryDocument": delivery_id.strip()}


@dataclass(frozen=True, slots=True)
class DeliveryLine:
    """``quantity`` of sales order item ``order_id``/``item`` goes into the delivery."""

    order_id: str
    item: str
    quantity: Decimal
    unit: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One delivery header as read, with its header texts in the configured language."""

    id: str
    etag: str | None
    header: Mapping[str, Any]
    texts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def goods_issued(self) -> bool:
        return self.header.get("OverallGoodsMovementStatus") == GOODS_ISSUED

    def text(self, text_id: str) -> str | None:
        row = self.texts.get(text_id)
        return None if row is None else str(row.get("TextElementText") or "")


class OutboundDeliveries:
    """The calls primebridge makes on API_OUTBOUND_DELIVERY_SRV; no business rules here."""

    def __init__(self, client: ODataClient, *, language: str) -> None:
        self._client = client
        self._language = language

    def close(self) -> None:
        self._client.close()

    # -- reading -------------------------------------------------------------------------------

    def _delivery(self, entity: Mapping[str, Any]) -> Delivery:
        delivery_id = entity.get("DeliveryDocument")
        if not isinstance(delivery_id, str) or not delivery_id:
            raise PermanentError(f"SAP {HEADER_SET}: an entity without DeliveryDocument: {dict(entity)!r}")
        texts: dict[str, Mapping[str, Any]] = {}
        try:
            rows = results(entity.get(TEXTS_NAV))
        except ValueError as exc:
            raise PermanentError(f"SAP {HEADER_SET}('{delivery_id}')/{TEXTS_NAV}: {exc}") from None
        for row in rows:
            if str(row.get("Language", "")).upper() == self._language.upper():
                texts[str(row.get("TextElement"))] = row
        return Delivery(delivery_id, entity_etag(entity), entity, texts)

    def read(self, delivery_id: str) -> Delivery | None:
        """The header and its texts, fresh; ``None`` when SAP does not know the delivery."""
        path = HEADER_SET + key_predicate(delivery_keys(delivery_id))
        entity = self._client.get_entity(path, expand=TEXTS_NAV)
        return None if entity is None else self._delivery(entity)

    def ids_for_order(self, order_id: str) -> list[str]:
        """Deliveries with an item that references the sales order, lowest number first.

        [U] SAP keeps ``ReferenceSDDocument`` with ALPHA conversion; Gateway converts the filter
        literal, so the order id as the sales order API returns it is used as it is.
        """
        rows = self._client.query(ITEM_SET, filter=f"ReferenceSDDocument eq {string_literal(order_id)}",
                                  select=("DeliveryDocument", "DeliveryDocumentItem"))
        ids = {str(row.get("DeliveryDocument")) for row in rows if row.get("DeliveryDocument")}
        return sorted(ids, key=lambda d: (len(d), d))

    def read_many(self, delivery_ids: Iterable[str]) -> list[Delivery]:
        """Headers with texts, ``IDS_PER_QUERY`` ids per request."""
        ids = list(dict.fromkeys(delivery_ids))
        found: list[Delivery] = []
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            clause = " or ".join(f"DeliveryDocument eq {string_literal(d)}" for d in chunk)
            found += [self._delivery(e) for e in self._client.query(HEADER_SET, filter=clause, expand=TEXTS_NAV)]
        return found

    # -- writing -------------------------------------------------------------------------------

    def create(self, lines: list[DeliveryLine], texts: Mapping[str, str], *,
               shipping_point: str | None = None) -> Delivery:
        """One deep insert: header, the referencing items and the header texts, all or nothing."""
        if not lines:
            raise Rejected("an outbound delivery needs at least one item")
        items = []
        for line in lines:
            item: dict[str, str] = {"ReferenceSDDocument": line.order_id, "ReferenceSDDocumentItem": line.item,
                                    "ActualDeliveryQuantity": format(line.quantity.normalize(), "f")}
            if line.unit:
                item["DeliveryQuantityUnit"] = line.unit
            items.append(item)
        body: dict[str, Any] = {ITEMS_NAV: {"results": items}}
        if texts:
            body[TEXTS_NAV] = {"results": [
                {"TextElement": text_id, "Language": self._language, "TextElementText": value}
                for text_id, value in texts.items()]}
        if shipping_point:
            body["ShippingPoint"] = shipping_point
        entity = self._client.create(HEADER_SET, body)
        if not entity.get("DeliveryDocument"):
            raise PermanentError(f"SAP POST {HEADER_SET}: the answer names no DeliveryDocument")
        return self._delivery(entity)

    def update_header(self, delivery: Delivery, changes: Mapping[str, Any]) -> None:
        """PATCH header fields with ``If-Match`` (``*`` only when SAP sent no ETag at all)."""
        path = HEADER_SET + key_predicate(delivery_keys(delivery.id))
        self._client.update(path, changes, etag=delivery.etag or "*")

    def upsert_text(self, delivery: Delivery, text_id: str, value: str) -> str:
        """``created``, ``updated`` or ``unchanged``: a text that already says ``value`` is left alone."""
        current = delivery.texts.get(text_id)
        if current is not None:
            if str(current.get("TextElementText") or "").strip() == value.strip():
                return "unchanged"
            keys = {"DeliveryDocument": delivery.id, "TextElement": text_id,
                    "Language": str(current.get("Language") or self._language)}
            self._client.update(HEADER_TEXT_SET + key_predicate(keys), {"TextElementText": value},
                                etag=entity_etag(current))
            return "updated"
        self._client.create(HEADER_TEXT_SET, {"DeliveryDocument": delivery.id, "TextElement": text_id,
                                              "Language": self._language, "TextElementText": value})
        return "created"

    def post_goods_issue(self, delivery: Delivery) -> None:
        """``PostGoodsIssue`` with the header's ETag; the caller checks ``goods_issued`` first."""
        self._client.call_function(POST_GOODS_ISSUE, {"DeliveryDocument": string_literal(delivery.id)},
                                   etag=delivery.etag or "*")
