"""The SAP sandbox's stock and material documents (API_MATERIAL_STOCK_SRV, API_MATERIAL_DOCUMENT_SRV).

Sized for the inventory benchmark (100k materials): the common stock segment — unrestricted
(``01``), no batch, no special stock — is one number per material in a dict per plant / storage
location; other segments (batches, quality or blocked stock), which make a material's stock several
rows to be summed, live in a second, sparse dict. Material document items are tuples, rendered to
OData rows only when read, and indexed by item text (primebridge looks references up by it).

Posting a material document is all or nothing, like SAP: every item is checked (movement type
allowed for the goods movement code, material known, unit, no deficit) before stock changes.
Receipts create the storage location segment when it is missing ([U]: SAP does so only where
automatic creation of storage location data is customized, OMB3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from primebridge.connectors.sap.values import parse_datetime
from primebridge.sandbox.sap.errors import ODataError
from primebridge.sandbox.sap.schema import EntityType, Prop, _props, _s

STOCK_NAMESPACE = "API_MATERIAL_STOCK_SRV"
DOCUMENT_NAMESPACE = "API_MATERIAL_DOCUMENT_SRV"
UNRESTRICTED = "01"
DEFAULT_UNIT = "PC"
FIRST_DOCUMENT = 4900000000

# Movement type → direction, and the movement types each goods movement code accepts (the usual
# standard customizing; [U] on the customer's system, reference §5.2/§5.3).
MOVEMENT_SIGN = {"501": 1, "502": -1, "561": 1, "562": -1, "201": -1, "202": 1, "551": -1, "552": 1,
                 "701": 1, "702": -1}
CODE_MOVEMENTS = {"05": {"501", "502", "561", "562"}, "03": {"201", "202", "551", "552"},
                  "06": {"502", "562", "202", "552"}, "07": {"701", "702"}}

DT, DEC, BOOL = "Edm.DateTime", "Edm.Decimal", "Edm.Boolean"


STOCK_ROW = EntityType(
    "A_MatlStkInAcctMod", "A_MatlStkInAcctModType",
    ("Material", "Plant", "StorageLocation", "Batch", "Supplier", "Customer", "WBSElementInternalID",
     "SDDocument", "SDDocumentItem", "InventorySpecialStockType", "InventoryStockType"),
    _props(_s("Material", 40), _s("Plant", 4), _s("StorageLocation", 4), _s("Batch", 10), _s("Supplier", 10),
           _s("Customer", 10), _s("WBSElementInternalID", 8), _s("SDDocument", 10), _s("SDDocumentItem", 6),
           _s("InventorySpecialStockType", 1), _s("InventoryStockType", 2), _s("WBSElementExternalID", 24),
           _s("MaterialBaseUnit", 3), Prop("MatlWrhsStkQtyInMatlBaseUnit", DEC, kind="quantity")),
    creatable=False, updatable=False, deletable=False, namespace=STOCK_NAMESPACE,
)
MATERIAL_STOCK = EntityType(
    "A_MaterialStock", "A_MaterialStockType", ("Material",),
    _props(_s("Material", 40), _s("MaterialBaseUnit", 3)),
    creatable=False, updatable=False, deletable=False, namespace=STOCK_NAMESPACE,
)
DOCUMENT_HEADER = EntityType(
    "A_MaterialDocumentHeader", "A_MaterialDocumentHeaderType", ("MaterialDocumentYear", "MaterialDocument"),
    _props(_s("MaterialDocumentYear", 4), _s("MaterialDocument", 10), _s("InventoryTransactionType", 2),
           Prop("DocumentDate", DT), Prop("PostingDate", DT), Prop("CreationDate", DT), _s("CreatedByUser", 12),
           _s("MaterialDocumentHeaderText", 25), _s("ReferenceDocument", 16), _s("GoodsMovementCode", 2)),
    updatable=False, deletable=False, namespace=DOCUMENT_NAMESPACE,
)
DOCUMENT_ITEM = EntityType(
    "A_MaterialDocumentItem", "A_MaterialDocumentItemType",
    ("MaterialDocumentYear", "MaterialDocument", "MaterialDocumentItem"),
    _props(_s("MaterialDocumentYear", 4), _s("MaterialDocument", 10), _s("MaterialDocumentItem", 4),
           _s("Material", 40), _s("Plant", 4), _s("StorageLocation", 4), _s("Batch", 10),
           _s("GoodsMovementType", 3), _s("InventoryStockType", 2), _s("InventorySpecialStockType", 1),
           _s("GoodsMovementReasonCode", 4), _s("CostCenter", 10), _s("MaterialBaseUnit", 3),
           Prop("QuantityInBaseUnit", DEC, kind="quantity"), _s("EntryUnit", 3),
           Prop("QuantityInEntryUnit", DEC, kind="quantity"), _s("MaterialDocumentItemText", 50),
           Prop("GoodsMovementIsCancelled", BOOL), _s("DebitCreditCode", 1)),
    creatable=False, updatable=False, deletable=False, namespace=DOCUMENT_NAMESPACE,
)
STOCK_TYPES = {t.set_name: t for t in (STOCK_ROW, MATERIAL_STOCK)}
DOCUMENT_TYPES = {t.set_name: t for t in (DOCUMENT_HEADER, DOCUMENT_ITEM)}
ITEM_NAV = "to_MaterialDocumentItem"


def bad(message: str, *, code: str = "SY/530", target: str = "") -> ODataError:
    return ODataError(400, message, code=code, target=target)


def quantity(value: Any) -> int | Decimal:
    """Integral quantities stay ``int`` (small, cached by Python), others ``Decimal``."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return int(number) if number == number.to_integral_value() else number


@dataclass(slots=True)
class MaterialDocument:
    year: str
    number: str
    header: dict[str, Any]
    # (Material, Plant, StorageLocation, GoodsMovementType, quantity, unit, text, reason, cost centre)
    items: list[tuple[str, str, str, str, int | Decimal, str, str, str, str]] = field(default_factory=list)


class SapInventory:
    """Stock and material documents; guarded by the ``SapStore`` lock the OData handler holds."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.units: dict[str, str] = {}  # every known material → base unit
        self.stock: dict[tuple[str, str], dict[str, int | Decimal]] = {}
        # (material, plant, storage location) → {(batch, stock type): quantity}
        self.segments: dict[tuple[str, str, str], dict[tuple[str, str], int | Decimal]] = {}
        self.documents: dict[tuple[str, str], MaterialDocument] = {}
        self.by_text: dict[str, list[tuple[str, str, int]]] = {}
        self.next_number = FIRST_DOCUMENT
        self.posted_items = 0

    # -- stock ------------------------------------------------------------------------------------

    def set_stock(self, material: str, plant: str, storage_location: str, qty: Any, *, unit: str | None = None,
                  batch: str = "", stock_type: str = UNRESTRICTED) -> None:
        material = material.upper()
        if unit or material not in self.units:
            self.units[material] = unit or DEFAULT_UNIT
        if not batch and stock_type == UNRESTRICTED:
            self.stock.setdefault((plant, storage_location), {})[material] = quantity(qty)
        else:
            self.segments.setdefault((material, plant, storage_location), {})[(batch, stock_type)] = quantity(qty)

    def unrestricted(self, material: str, plant: str, storage_location: str) -> int | Decimal | None:
        return self.stock.get((plant, storage_location), {}).get(material)

    def stock_rows(self, materials: set[str] | None) -> list[dict[str, Any]]:
        """``A_MatlStkInAcctMod`` rows, only of ``materials`` when given (an index lookup)."""
        rows = []
        for (plant, sloc), table in self.stock.items():
            picked = table.items() if materials is None else ((m, table[m]) for m in materials if m in table)
            for material, qty in picked:
                rows.append(self._stock_row(material, plant, sloc, "", UNRESTRICTED, qty))
        for (material, plant, sloc), extra in self.segments.items():
            if materials is None or material in materials:
                for (batch, stock_type), qty in extra.items():
                    rows.append(self._stock_row(material, plant, sloc, batch, stock_type, qty))
        return rows

    def _stock_row(self, material: str, plant: str, sloc: str, batch: str, stock_type: str,
                   qty: int | Decimal) -> dict[str, Any]:
        return {"Material": material, "Plant": plant, "StorageLocation": sloc, "Batch": batch, "Supplier": "",
                "Customer": "", "WBSElementInternalID": "00000000", "SDDocument": "", "SDDocumentItem": "000000",
                "InventorySpecialStockType": "", "InventoryStockType": stock_type, "WBSElementExternalID": "",
                "MaterialBaseUnit": self.units.get(material, DEFAULT_UNIT), "MatlWrhsStkQtyInMatlBaseUnit": qty}

    def material_rows(self, materials: set[str] | None) -> list[dict[str, Any]]:
        names = self.units if materials is None else [m for m in materials if m in self.units]
        return [{"Material": m, "MaterialBaseUnit": self.units[m]} for m in names]

    # -- material documents -----------------------------------------------------------------------

    def post(self, body: dict[str, Any], *, user: str) -> MaterialDocument:
        """A deep insert of ``A_MaterialDocumentHeader``: validate everything, then change stock."""
        unknown = sorted(k for k in body if k not in DOCUMENT_HEADER.props and k not in (ITEM_NAV, "__metadata"))
        if unknown:
            raise bad(f"Property '{unknown[0]}' is invalid for A_MaterialDocumentHeaderType", target=unknown[0])
        code = _text(body, "GoodsMovementCode", DOCUMENT_HEADER)
        if code not in CODE_MOVEMENTS:
            raise bad(f"Goods movement code '{code}' is not supported", code="M7/086", target="GoodsMovementCode")
        raw_items = body.get(ITEM_NAV)
        if isinstance(raw_items, dict):
            raw_items = raw_items.get("results")
        if not isinstance(raw_items, list) or not raw_items or not all(isinstance(i, dict) for i in raw_items):
            raise bad("A material document needs at least one item in to_MaterialDocumentItem",
                      code="M7/022", target=ITEM_NAV)
        if len(raw_items) > 9999:
            raise bad("A material document holds at most 9999 items")
        planned: list[tuple[str, str, str, str, int | Decimal, str, str, str, str]] = []
        changes: dict[tuple[str, str, str], int | Decimal] = {}
        for index, raw in enumerate(raw_items, start=1):
            entry = self._check_item(raw, index, code)
            material, plant, sloc, movement, qty = entry[:5]
            key = (material, plant, sloc)
            current = changes.get(key, self.unrestricted(material, plant, sloc))
            new = (current or 0) + MOVEMENT_SIGN[movement] * qty
            if new < 0:
                raise bad(f"Deficit of SL Unrestricted-use {format(-Decimal(new), 'f')} "
                          f"{self.units[material]} : {material} {plant} {sloc}", code="M7/021",
                          target=f"{ITEM_NAV}({index})")
            changes[key] = new
            planned.append(entry)
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        year, number = str(now.year), str(self.next_number)
        self.next_number += 1
        header = {"MaterialDocumentYear": year, "MaterialDocument": number,
                  "InventoryTransactionType": "WA" if all(MOVEMENT_SIGN[e[3]] < 0 for e in planned) else "WE",
                  "DocumentDate": _date(body.get("DocumentDate")) or midnight,
                  "PostingDate": _date(body.get("PostingDate")) or midnight, "CreationDate": midnight,
                  "CreatedByUser": user.upper()[:12], "GoodsMovementCode": code,
                  "MaterialDocumentHeaderText": _text(body, "MaterialDocumentHeaderText", DOCUMENT_HEADER),
                  "ReferenceDocument": _text(body, "ReferenceDocument", DOCUMENT_HEADER).upper()}
        document = MaterialDocument(year, number, header, planned)
        for (material, plant, sloc), new in changes.items():
            self.stock.setdefault((plant, sloc), {})[material] = quantity(new)
        for position, entry in enumerate(planned, start=1):
            if entry[6]:
                self.by_text.setdefault(entry[6], []).append((year, number, position))
        self.documents[(year, number)] = document
        self.posted_items += len(planned)
        return document

    def _check_item(self, raw: dict[str, Any], index: int, code: str,
                    ) -> tuple[str, str, str, str, int | Decimal, str, str, str, str]:
        where = f"{ITEM_NAV}({index})"
        unknown = sorted(k for k in raw if k not in DOCUMENT_ITEM.props and k != "__metadata")
        if unknown:
            raise bad(f"Property '{unknown[0]}' is invalid for A_MaterialDocumentItemType", target=unknown[0])
        material = _text(raw, "Material", DOCUMENT_ITEM).upper()
        plant = _text(raw, "Plant", DOCUMENT_ITEM)
        sloc = _text(raw, "StorageLocation", DOCUMENT_ITEM)
        movement = _text(raw, "GoodsMovementType", DOCUMENT_ITEM)
        for name, value in (("Material", material), ("Plant", plant), ("StorageLocation", sloc),
                            ("GoodsMovementType", movement)):
            if not value:
                raise bad(f"Item {index}: {name} is required", target=f"{where}/{name}")
        if movement not in MOVEMENT_SIGN:
            raise bad(f"Movement type {movement} does not exist", code="M7/003", target=f"{where}/GoodsMovementType")
        if movement not in CODE_MOVEMENTS[code]:
            raise bad(f"Movement type {movement} is not allowed with goods movement code {code}",
                      code="M7/086", target=f"{where}/GoodsMovementType")
        if material not in self.units:
            raise bad(f"Material {material} does not exist", code="M3/305", target=f"{where}/Material")
        base = self.units[material]
        unit = _text(raw, "EntryUnit", DOCUMENT_ITEM) or _text(raw, "MaterialBaseUnit", DOCUMENT_ITEM) or base
        if unit.upper() != base:
            raise bad(f"Unit {unit} is not defined for material {material} (base unit {base})",
                      target=f"{where}/EntryUnit")
        amount = raw.get("QuantityInEntryUnit", raw.get("QuantityInBaseUnit"))
        try:
            qty = Decimal(str(amount)) if amount is not None and not isinstance(amount, bool) else None
        except ArithmeticError:
            qty = None
        if qty is None or not qty.is_finite() or qty <= 0 or qty != qty.quantize(Decimal("0.001")):
            raise bad(f"Item {index}: enter a positive quantity (at most 3 decimals), not {amount!r}",
                      code="M7/013", target=f"{where}/QuantityInEntryUnit")
        if MOVEMENT_SIGN[movement] < 0 and self.unrestricted(material, plant, sloc) is None:
            raise bad(f"Material {material} is not maintained in storage location {plant} {sloc}",
                      code="M7/018", target=f"{where}/StorageLocation")
        return (material, plant, sloc, movement, quantity(qty), base,
                _text(raw, "MaterialDocumentItemText", DOCUMENT_ITEM),
                _text(raw, "GoodsMovementReasonCode", DOCUMENT_ITEM), _text(raw, "CostCenter", DOCUMENT_ITEM))

    def header_row(self, document: MaterialDocument) -> dict[str, Any]:
        return dict(document.header)

    def item_rows(self, document: MaterialDocument, positions: list[int] | None = None) -> list[dict[str, Any]]:
        rows = []
        for position in positions or range(1, len(document.items) + 1):
            material, plant, sloc, movement, qty, unit, text, reason, cost_center = document.items[position - 1]
            rows.append({
                "MaterialDocumentYear": document.year, "MaterialDocument": document.number,
                "MaterialDocumentItem": str(position), "Material": material, "Plant": plant,
                "StorageLocation": sloc, "Batch": "", "GoodsMovementType": movement, "InventoryStockType": "",
                "InventorySpecialStockType": "", "GoodsMovementReasonCode": reason, "CostCenter": cost_center,
                "MaterialBaseUnit": unit, "QuantityInBaseUnit": qty, "EntryUnit": unit, "QuantityInEntryUnit": qty,
                "MaterialDocumentItemText": text, "GoodsMovementIsCancelled": False,
                "DebitCreditCode": "S" if MOVEMENT_SIGN[movement] > 0 else "H"})
        return rows

    def items_with_texts(self, texts: set[str] | None) -> list[dict[str, Any]]:
        if texts is None:
            return [row for doc in self.documents.values() for row in self.item_rows(doc)]
        rows = []
        for text in texts:
            for year, number, position in self.by_text.get(text, ()):
                rows.extend(self.item_rows(self.documents[(year, number)], [position]))
        return rows


def _text(body: dict[str, Any], name: str, etype: EntityType) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad(f"Property {name} of {etype.type_name} expects a string, got {type(value).__name__}",
                  target=name)
    limit = etype.props[name].max_length
    if limit is not None and len(value) > limit:
        raise bad(f"Value '{value[:50]}' is too long for {name} (max. {limit})", target=name)
    return value


def _date(value: Any) -> datetime | None:
    try:
        return parse_datetime(value)
    except ValueError:
        raise bad(f"Invalid date '{value}'", target="PostingDate") from None
