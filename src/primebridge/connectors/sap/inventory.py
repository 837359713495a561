"""SAP S/4HANA stock at the Amazon plant / storage location as an ``InventoryLedger``.

Reading: ``A_MatlStkInAcctMod`` of API_MATERIAL_STOCK_SRV, one row per stock segment (batch,
supplier, special stock, stock type...), filtered to the configured plant, storage location, stock
type (``01`` unrestricted [O]) and special stock type, many materials per ``$filter``; the rows of a
material are summed. A material without any row there is ``None`` ("not at the location"), unless
``missing_as_zero``: [U] SAP may have no row for a material extended to the location but never moved.

Posting: a deep insert of ``A_MaterialDocumentHeader`` with ``to_MaterialDocumentItem`` (items are
not creatable on their own). Why these fields carry our marks (EDMX of API_MATERIAL_DOCUMENT_SRV):

* ``MaterialDocumentItemText`` (String 50, case kept) holds each adjustment's ``reference``: it is the
  only free text per item, and a rerun must find *each* adjustment, whichever document it went into
  (a resumed run may batch differently). ``A_MaterialDocumentItem`` is filtered on it before posting.
* ``MaterialDocumentHeaderText`` (String 25) says the document comes from Amazon (``header_text``);
  25 characters cannot hold the references of a many-item document.
* ``ReferenceDocument`` (String 16, upper case) holds a digest of the document's references, so an
  operator can find the document of one call in MIGO/MB51 by that value.

Increases and decreases use different movement types and may need different goods movement codes
(one per header), so one call can post two documents; a document holds at most
``items_per_document`` items. The call returns, per adjustment reference, the id of the one document
that holds it (``<MaterialDocument>/<MaterialDocumentYear>``): the new document it went into, or the
earlier one its item text was found in.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from primebridge.config import SapInventoryConfig
from primebridge.connectors.sap.odata import ODataClient
from primebridge.connectors.sap.values import format_json_datetime, parse_decimal, string_literal
from primebridge.domain.errors import ConfigError, PermanentError, Rejected
from primebridge.domain.inventory import StockAdjustment

log = structlog.get_logger()

STOCK_SET = "A_MatlStkInAcctMod"
STOCK_SELECT = ("Material", "MaterialBaseUnit", "MatlWrhsStkQtyInMatlBaseUnit")
HEADER_SET = "A_MaterialDocumentHeader"
ITEM_SET = "A_MaterialDocumentItem"
ITEM_NAV = "to_MaterialDocumentItem"
POSTED_SELECT = ("MaterialDocumentYear", "MaterialDocument", "MaterialDocumentItemText")
MAX_MATERIAL = 40          # A_MatlStkInAcctMod.Material, A_MaterialDocumentItem.Material
MAX_ITEM_TEXT = 50         # A_MaterialDocumentItem.MaterialDocumentItemText
MAX_REFERENCE_DOCUMENT = 16
QUANTITY_SCALE = 3         # A_MaterialDocumentItem.QuantityInEntryUnit: Precision 13, Scale 3


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def reference_text(reference: str) -> str:
    """The item text that stands for ``reference``: the reference itself when it fits the 50
    characters of ``MaterialDocumentItemText``, else a stable digest of it (same input, same text)."""
    if 0 < len(reference) <= MAX_ITEM_TEXT and reference.isprintable():
        return reference
    digest = hashlib.sha256(reference.encode()).hexdigest()
    return ("pb#" + digest)[:MAX_ITEM_TEXT]


def reference_document(texts: Sequence[str]) -> str:
    """16 upper-case characters identifying one document's set of references."""
    digest = hashlib.sha256("\n".join(sorted(texts)).encode()).digest()
    return base64.b32encode(digest).decode()[:MAX_REFERENCE_DOCUMENT]


def _material(value: str) -> str | None:
    """SAP keeps material numbers in upper case (``sap:display-format="UpperCase"``)."""
    text = value.strip().upper() if isinstance(value, str) else ""
    return text if 0 < len(text) <= MAX_MATERIAL else None


def _quantity(value: Decimal) -> str:
    """``Edm.Decimal`` as a JSON string, at most 3 decimals (the item's scale)."""
    exact = value.quantize(Decimal(1).scaleb(-QUANTITY_SCALE))
    if exact != value:
        raise Rejected(f"SAP goods movement quantity {value} has more than {QUANTITY_SCALE} decimals")
    return format(exact.normalize(), "f")


class SapInventoryLedger:
    """The SAP adapter of the ``InventoryLedger`` port (stock service + material document service)."""

    name = "sap"

    def __init__(self, stock: ODataClient, documents: ODataClient, cfg: SapInventoryConfig) -> None:
        if not cfg.plant or not cfg.storage_location:
            raise ConfigError("sap.inventory.plant and sap.inventory.storage_location must be set for the "
                              "inventory sync")
        self._stock = stock
        self._documents = documents
        self._cfg = cfg
        self.items_per_document = cfg.items_per_document

    def close(self) -> None:
        self._stock.close()
        self._documents.close()

    def check(self) -> str:
        """For ``config check``: both services answer this user, and whether the plant / storage location
        holds stock. A typo in either would otherwise only show as every mapped SKU reported ``unknown``."""
        cfg = self._cfg
        where = f"plant {cfg.plant} storage location {cfg.storage_location}"
        rows = list(self._stock.query(STOCK_SET, filter=self._location_filter(), select=STOCK_SELECT, top=1))
        self.posted(["primebridge-config-check"])
        # An empty location is not an error (a new Amazon location starts empty), but say what it means.
        stock = "holds stock" if rows or cfg.missing_as_zero else (
            "holds NO stock: if plant or storage location is mistyped, every mapped SKU will be reported unknown")
        return (f"stock and material document services answered; {where} {stock}; movement types "
                f"{cfg.increase_movement_type}/{cfg.decrease_movement_type}")

    def _location_filter(self) -> str:
        return (f"Plant eq {string_literal(self._cfg.plant)} and "
                f"StorageLocation eq {string_literal(self._cfg.storage_location)}")

    # -- reading -----------------------------------------------------------------------------------

    def quantities(self, oms_items: list[str]) -> dict[str, Decimal | None]:
        """Unrestricted stock per material at the plant / storage location (rows summed)."""
        result: dict[str, Decimal | None] = {item: None for item in oms_items}
        wanted: dict[str, list[str]] = {}
        for item in oms_items:
            material = _material(item)
            if material is not None:
                wanted.setdefault(material, []).append(item)
        cfg = self._cfg
        segment = (f" and InventoryStockType eq {string_literal(cfg.stock_type)}"
                   f" and InventorySpecialStockType eq {string_literal(cfg.special_stock_type)}")
        totals: dict[str, Decimal] = {}
        for group in chunks(sorted(wanted), cfg.values_per_query):
            either = " or ".join(f"Material eq {string_literal(m)}" for m in group)
            query = f"({either}) and {self._location_filter()}{segment}"
            for row in self._stock.query(STOCK_SET, filter=query, select=STOCK_SELECT):
                material = str(row.get("Material") or "").upper()
                try:
                    quantity = parse_decimal(row.get("MatlWrhsStkQtyInMatlBaseUnit"))
                except ValueError as exc:
                    raise PermanentError(f"SAP {STOCK_SET} {material}: {exc}") from None
                if material in wanted:
                    totals[material] = totals.get(material, Decimal(0)) + (quantity or Decimal(0))
        for material, items in wanted.items():
            found = totals.get(material)
            if found is None and cfg.missing_as_zero:
                found = Decimal(0)
            for item in items:
                result[item] = found
        return result

    # -- posting -----------------------------------------------------------------------------------

    def posted(self, texts: Sequence[str]) -> dict[str, str]:
        """``{item text: document id}`` of the items already posted at the location with these texts."""
        found: dict[str, str] = {}
        for group in chunks(sorted(set(texts)), self._cfg.values_per_query):
            either = " or ".join(f"MaterialDocumentItemText eq {string_literal(t)}" for t in group)
            query = f"({either}) and {self._location_filter()}"
            for row in self._documents.query(ITEM_SET, filter=query, select=POSTED_SELECT):
                text = row.get("MaterialDocumentItemText")
                if isinstance(text, str) and text in group:
                    found.setdefault(text, f"{row.get('MaterialDocument')}/{row.get('MaterialDocumentYear')}")
        return found

    def post_adjustments(self, adjustments: list[StockAdjustment], *, unposted: bool = False) -> dict[str, str]:
        """Post what was not posted yet; returns ``{reference: document id}``, each reference mapped to
        the document that holds its item (a new one, or one found from an earlier run). ``unposted``
        (the caller knows no reference was ever sent) skips the lookup of earlier items."""
        todo: list[tuple[StockAdjustment, str, str]] = []
        for adj in adjustments:
            material = _material(adj.oms_item)
            if material is None:
                raise Rejected(f"SAP material {adj.oms_item!r} is not a valid material number "
                               f"(1-{MAX_MATERIAL} characters)")
            if adj.delta != 0:
                todo.append((adj, material, reference_text(adj.reference)))
        if not todo:
            return {}
        texts = [text for _, _, text in todo]
        if len(set(texts)) != len(texts):
            raise Rejected("SAP goods movement: two adjustments share one reference")
        earlier = {} if unposted else self.posted(texts)
        remaining = [entry for entry in todo if entry[2] not in earlier]
        if earlier:
            log.info("sap.inventory.already_posted", count=len(todo) - len(remaining),
                     documents=sorted(set(earlier.values())))
        documents = {adj.reference: earlier[text] for adj, _, text in todo if text in earlier}
        for increase in (True, False):
            batch = [entry for entry in remaining if (entry[0].delta > 0) == increase]
            for group in chunks(batch, self._cfg.items_per_document):
                doc_id = self._post_document(list(group), increase=increase)
                documents.update((adj.reference, doc_id) for adj, _, _ in group)
        return documents

    def _post_document(self, group: list[tuple[StockAdjustment, str, str]], *, increase: bool) -> str:
        cfg = self._cfg
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        items = [self._item(adj, material, text, increase=increase) for adj, material, text in group]
        body = {
            "GoodsMovementCode": cfg.increase_movement_code if increase else cfg.decrease_movement_code,
            "PostingDate": format_json_datetime(today, offset=False),
            "DocumentDate": format_json_datetime(today, offset=False),
            "MaterialDocumentHeaderText": cfg.header_text,
            "ReferenceDocument": reference_document([text for _, _, text in group]),
            ITEM_NAV: {"results": items},
        }
        created = self._documents.create(HEADER_SET, body)
        number, year = created.get("MaterialDocument"), created.get("MaterialDocumentYear")
        if not number or not year:
            raise PermanentError(f"SAP {HEADER_SET}: the created document has no MaterialDocument/Year "
                                 f"({sorted(created)})")
        doc_id = f"{number}/{year}"
        log.info("sap.inventory.posted", document=doc_id, items=len(items),
                 direction="increase" if increase else "decrease")
        return doc_id

    def _item(self, adj: StockAdjustment, material: str, text: str, *, increase: bool) -> dict[str, Any]:
        cfg = self._cfg
        item: dict[str, Any] = {
            "Material": material, "Plant": cfg.plant, "StorageLocation": cfg.storage_location,
            "GoodsMovementType": cfg.increase_movement_type if increase else cfg.decrease_movement_type,
            "QuantityInEntryUnit": _quantity(abs(adj.delta)),
            "MaterialDocumentItemText": text,
        }
        if cfg.entry_unit:
            item["EntryUnit"] = cfg.entry_unit
        if cfg.reason_code:
            item["GoodsMovementReasonCode"] = cfg.reason_code
        if cfg.cost_center:
            item["CostCenter"] = cfg.cost_center
        return item
