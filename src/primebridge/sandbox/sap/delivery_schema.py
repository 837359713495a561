"""The part of API_OUTBOUND_DELIVERY_SRV;v=0002 the sandbox models: header, items, header texts.

Names, types, lengths and ``sap:creatable``/``updatable``/``filterable`` flags are those of the
on-prem EDMX (``OP_API_OUTBOUND_DELIVERY_SRV_0002``); a test checks them against the contract file.
Worth knowing: on the header only ``ShippingPoint`` is creatable (``BillOfLading``, ``DeliveryDate``
… are update-only), items are created only inside the header's deep insert, and both carry the
ETag property ``DeliveryVersion``. The text set is not addressable on its own (read it through
``to_DeliveryDocumentText``) and has no concurrency token.
"""

from __future__ import annotations

from primebridge.sandbox.sap.schema import EntityType, Nav, Prop, _props

NAMESPACE = "API_OUTBOUND_DELIVERY_SRV"
DT, DEC, BOOL, TIME = "Edm.DateTime", "Edm.Decimal", "Edm.Boolean", "Edm.Time"


DELIVERY_HEADER = EntityType(
    "A_OutbDeliveryHeader", "A_OutbDeliveryHeaderType", ("DeliveryDocument",),
    _props(
        Prop("DeliveryDocument", creatable=False, updatable=False, max_length=10),
        Prop("DeliveryDocumentType", creatable=False, updatable=False, max_length=4),
        Prop("SDDocumentCategory", creatable=False, updatable=False, max_length=4),
        Prop("ShippingPoint", updatable=False, max_length=4),
        Prop("SalesOrganization", creatable=False, updatable=False, max_length=4),
        Prop("SoldToParty", creatable=False, updatable=False, max_length=10),
        Prop("ShipToParty", creatable=False, updatable=False, max_length=10),
        Prop("ShippingCondition", creatable=False, updatable=False, max_length=2),
        Prop("CreationDate", DT, creatable=False, updatable=False),
        Prop("CreationTime", TIME, creatable=False, updatable=False),
        Prop("CreatedByUser", creatable=False, updatable=False, max_length=12),
        Prop("LastChangeDate", DT, creatable=False, updatable=False),
        Prop("LastChangedByUser", creatable=False, updatable=False, max_length=12),
        Prop("DeliveryDate", DT, creatable=False),
        Prop("PlannedGoodsIssueDate", DT, creatable=False),
        Prop("ActualGoodsMovementDate", DT, creatable=False),
        Prop("ActualGoodsMovementTime", TIME, creatable=False, updatable=False),
        Prop("BillOfLading", creatable=False, max_length=35),
        Prop("DeliveryDocumentBySupplier", creatable=False, max_length=35),
        Prop("MeansOfTransport", creatable=False, max_length=20),
        Prop("MeansOfTransportType", creatable=False, max_length=4),
        Prop("DeliveryBlockReason", creatable=False, max_length=2),
        Prop("DeliveryPriority", creatable=False, max_length=2),
        Prop("IncotermsClassification", creatable=False, max_length=3),
        Prop("HeaderGrossWeight", DEC, creatable=False, kind="quantity"),
        Prop("HeaderWeightUnit", creatable=False, max_length=3),
        Prop("OverallGoodsMovementStatus", creatable=False, updatable=False, max_length=1),
        Prop("OverallPickingStatus", creatable=False, updatable=False, max_length=1),
        Prop("OverallPackingStatus", creatable=False, updatable=False, max_length=1),
        Prop("OverallSDProcessStatus", creatable=False, updatable=False, max_length=1),
        Prop("OverallProofOfDeliveryStatus", creatable=False, updatable=False, max_length=1),
        Prop("OverallDelivReltdBillgStatus", creatable=False, updatable=False, max_length=1),
        Prop("TotalBlockStatus", creatable=False, updatable=False, max_length=1),
        Prop("DeliveryVersion", creatable=False, updatable=False, max_length=4),
    ),
    {
        "to_DeliveryDocumentItem": Nav("to_DeliveryDocumentItem", "A_OutbDeliveryItem", True,
                                       ("DeliveryDocument",)),
        "to_DeliveryDocumentText": Nav("to_DeliveryDocumentText", "A_OutbDeliveryHeaderText", True,
                                       ("DeliveryDocument",)),
    },
    etag_prop="DeliveryVersion", namespace=NAMESPACE,
)

DELIVERY_ITEM = EntityType(
    "A_OutbDeliveryItem", "A_OutbDeliveryItemType", ("DeliveryDocument", "DeliveryDocumentItem"),
    _props(
        Prop("DeliveryDocument", updatable=False, max_length=10),
        Prop("DeliveryDocumentItem", creatable=False, updatable=False, max_length=6),
        Prop("DeliveryDocumentItemCategory", creatable=False, updatable=False, max_length=4),
        Prop("SDDocumentCategory", creatable=False, updatable=False, max_length=4),
        Prop("ReferenceSDDocument", updatable=False, max_length=10),
        Prop("ReferenceSDDocumentItem", updatable=False, max_length=6),
        Prop("ReferenceSDDocumentCategory", creatable=False, updatable=False, max_length=4),
        Prop("Material", creatable=False, updatable=False, max_length=40),
        Prop("Plant", creatable=False, updatable=False, max_length=4),
        Prop("StorageLocation", creatable=False, max_length=4),
        Prop("Batch", creatable=False, max_length=10),
        Prop("DeliveryDocumentItemText", creatable=False, max_length=40),
        Prop("ActualDeliveryQuantity", DEC, kind="quantity"),
        Prop("DeliveryQuantityUnit", updatable=False, max_length=3),
        Prop("OriginalDeliveryQuantity", DEC, creatable=False, updatable=False, kind="quantity"),
        Prop("ActualDeliveredQtyInBaseUnit", DEC, creatable=False, kind="quantity"),
        Prop("BaseUnit", creatable=False, updatable=False, max_length=3),
        Prop("GoodsMovementStatus", creatable=False, updatable=False, max_length=1),
        Prop("GoodsMovementType", creatable=False, updatable=False, max_length=3),
        Prop("PickingStatus", creatable=False, updatable=False, max_length=1),
        Prop("PackingStatus", creatable=False, updatable=False, max_length=1),
        Prop("CreationDate", DT, creatable=False, updatable=False),
        Prop("LastChangeDate", DT, creatable=False, updatable=False),
        Prop("DeliveryVersion", creatable=False, updatable=False, max_length=4),
    ),
    etag_prop="DeliveryVersion", creatable=False, namespace=NAMESPACE,
)

DELIVERY_HEADER_TEXT = EntityType(
    "A_OutbDeliveryHeaderText", "A_OutbDeliveryHeaderTextType", ("DeliveryDocument", "TextElement", "Language"),
    _props(
        Prop("DeliveryDocument", updatable=False, filterable=False, max_length=10),
        Prop("TextElement", updatable=False, filterable=False, max_length=4),
        Prop("Language", updatable=False, max_length=2),
        Prop("TextElementDescription", creatable=False, updatable=False, filterable=False, max_length=30),
        Prop("TextElementText", filterable=False),
        Prop("DeliveryLongTextIsFormatted", BOOL, creatable=False, updatable=False, filterable=False),
    ),
    namespace=NAMESPACE,
)

DELIVERY_TYPES: dict[str, EntityType] = {t.set_name: t for t in (DELIVERY_HEADER, DELIVERY_ITEM,
                                                                  DELIVERY_HEADER_TEXT)}
# Sets that exist in the EDMX with sap:addressable="false": only reachable through navigation.
NOT_ADDRESSABLE = frozenset({"A_OutbDeliveryHeaderText"})
# Function imports of the service (all POST, bound to the header); the sandbox implements PostGoodsIssue.
FUNCTION_IMPORTS = frozenset({
    "PostGoodsIssue", "ReverseGoodsIssue", "PickAllItems", "ConfirmPickingAllItems", "PickOneItem",
    "ConfirmPickingOneItem", "PickOneItemWithSalesQuantity", "PickOneItemWithBaseQuantity",
    "SetPickingQuantityWithBaseQuantity", "PickAndBatchSplitOneItem", "CreateBatchSplitItem",
    "AssignHandlingUnitToDelivery", "DeleteAllHandlingUnitsFromDelivery", "AddSerialNumberToDeliveryItem",
    "DeleteSerialNumberFromDeliveryItem", "DeleteAllSerialNumbersFromDeliveryItem",
})
