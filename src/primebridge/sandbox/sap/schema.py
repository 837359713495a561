"""The part of API_SALES_ORDER_SRV the sandbox models: entity sets, keys, navigation, property flags.

Written out here (not read from the EDMX) so the sandbox runs where the contract files are absent;
a test checks every name, type and flag below against the EDMX in ../shared/contracts/sap.
Properties the sandbox does not model are reported as unknown, like SAP does for a typo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAMESPACE = "API_SALES_ORDER_SRV"


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    type: str = "Edm.String"
    creatable: bool = True
    updatable: bool = True
    filterable: bool = True
    max_length: int | None = None
    kind: str = ""  # "amount" | "quantity" for decimals: how the sandbox renders them


@dataclass(frozen=True, slots=True)
class Nav:
    name: str
    target: str
    many: bool
    join: tuple[str, ...]  # key properties shared by source and target


@dataclass(frozen=True, slots=True)
class EntityType:
    set_name: str
    type_name: str
    keys: tuple[str, ...]
    props: dict[str, Prop]
    navs: dict[str, Nav] = field(default_factory=dict)
    etag_prop: str | None = None  # the ConcurrencyMode="Fixed" property
    creatable: bool = True
    updatable: bool = True
    deletable: bool = True
    namespace: str = NAMESPACE  # the service's schema (the delivery sandbox has its own)

    @property
    def qualified_type(self) -> str:
        return f"{self.namespace}.{self.type_name}"


def _r(name: str, type_: str = "Edm.String", **kw: object) -> Prop:
    """A read-only property (``sap:creatable="false" sap:updatable="false"``)."""
    return Prop(name, type_, creatable=False, updatable=False, **kw)  # type: ignore[arg-type]


def _s(name: str, max_length: int) -> Prop:
    return Prop(name, max_length=max_length)


def _props(*props: Prop) -> dict[str, Prop]:
    return {p.name: p for p in props}


DT, DTO, DEC, BOOL = "Edm.DateTime", "Edm.DateTimeOffset", "Edm.Decimal", "Edm.Boolean"

SALES_ORDER = EntityType(
    "A_SalesOrder", "A_SalesOrderType", ("SalesOrder",),
    _props(
        _s("SalesOrder", 10), _s("SalesOrderType", 4), _s("SalesOrganization", 4),
        _s("DistributionChannel", 2),
        _s("OrganizationDivision", 2), _s("SoldToParty", 10), _r("CreationDate", DT), _r("CreatedByUser"),
        _r("LastChangeDate", DT), _r("ExternalDocumentID"), _r("LastChangeDateTime", DTO),
        _s("PurchaseOrderByCustomer", 35), Prop("CustomerPurchaseOrderDate", DT), Prop("SalesOrderDate", DT),
        _r("TotalNetAmount", DEC, kind="amount"), _s("TransactionCurrency", 5), _s("SDDocumentReason", 3),
        Prop("PricingDate", DT), Prop("RequestedDeliveryDate", DT), _s("ShippingCondition", 2),
        Prop("CompleteDeliveryIsDefined", BOOL), _s("ShippingType", 2), _s("HeaderBillingBlockReason", 2),
        _s("DeliveryBlockReason", 2), _s("IncotermsClassification", 3), _s("CustomerPaymentTerms", 4),
        _s("PaymentMethod", 1), _r("OverallSDProcessStatus"), _r("TotalCreditCheckStatus"),
        _r("OverallTotalDeliveryStatus"), _r("OverallSDDocumentRejectionSts"), _r("OverallDeliveryStatus"),
        _r("TotalBlockStatus"),
    ),
    {
        "to_Item": Nav("to_Item", "A_SalesOrderItem", True, ("SalesOrder",)),
        "to_Partner": Nav("to_Partner", "A_SalesOrderHeaderPartner", True, ("SalesOrder",)),
        "to_Text": Nav("to_Text", "A_SalesOrderText", True, ("SalesOrder",)),
    },
    etag_prop="LastChangeDateTime",
)

SALES_ORDER_ITEM = EntityType(
    "A_SalesOrderItem", "A_SalesOrderItemType", ("SalesOrder", "SalesOrderItem"),
    _props(
        _r("SalesOrder"), _s("SalesOrderItem", 6), _s("HigherLevelItem", 6), _s("SalesOrderItemCategory", 4),
        _s("SalesOrderItemText", 40), _s("PurchaseOrderByCustomer", 35), _s("Material", 40),
        _s("MaterialByCustomer", 35), Prop("RequestedQuantity", DEC, kind="quantity"),
        _s("RequestedQuantityUnit", 3), _r("OrderQuantityUnit"),
        _r("ConfdDelivQtyInOrderQtyUnit", DEC, kind="quantity"), _r("TransactionCurrency"),
        _r("NetAmount", DEC, kind="amount"), _s("ProductionPlant", 4), _s("StorageLocation", 4),
        _s("ShippingPoint", 4), _s("DeliveryPriority", 2), Prop("TaxAmount", DEC, kind="amount"),
        _s("SalesDocumentRjcnReason", 2), _s("ItemBillingBlockReason", 2), _r("SDProcessStatus"),
        _r("DeliveryStatus"), _r("OrderRelatedBillingStatus"),
    ),
    {
        "to_SalesOrder": Nav("to_SalesOrder", "A_SalesOrder", False, ("SalesOrder",)),
        "to_Text": Nav("to_Text", "A_SalesOrderItemText", True, ("SalesOrder", "SalesOrderItem")),
    },
)

SALES_ORDER_TEXT = EntityType(
    "A_SalesOrderText", "A_SalesOrderTextType", ("SalesOrder", "Language", "LongTextID"),
    _props(_r("SalesOrder"), _s("Language", 2), _s("LongTextID", 4), Prop("LongText", filterable=False)),
    {"to_SalesOrder": Nav("to_SalesOrder", "A_SalesOrder", False, ("SalesOrder",))},
)

SALES_ORDER_ITEM_TEXT = EntityType(
    "A_SalesOrderItemText", "A_SalesOrderItemTextType",
    ("SalesOrder", "SalesOrderItem", "Language", "LongTextID"),
    _props(_r("SalesOrder"), _r("SalesOrderItem"), _s("Language", 2), _s("LongTextID", 4),
           Prop("LongText", filterable=False)),
    {
        "to_SalesOrder": Nav("to_SalesOrder", "A_SalesOrder", False, ("SalesOrder",)),
        "to_SalesOrderItem": Nav("to_SalesOrderItem", "A_SalesOrderItem", False,
                                 ("SalesOrder", "SalesOrderItem")),
    },
)

HEADER_PARTNER = EntityType(
    "A_SalesOrderHeaderPartner", "A_SalesOrderHeaderPartnerType", ("SalesOrder", "PartnerFunction"),
    _props(_r("SalesOrder"), _s("PartnerFunction", 2), _r("PartnerFunctionInternalCode"), _s("Customer", 10),
           _s("Supplier", 10), _s("Personnel", 8), _s("ContactPerson", 10), _r("ReferenceBusinessPartner"),
           _s("AddressID", 10)),
    {
        "to_Address": Nav("to_Address", "A_SalesOrderPartnerAddress", True,
                          ("SalesOrder", "PartnerFunction")),
        "to_SalesOrder": Nav("to_SalesOrder", "A_SalesOrder", False, ("SalesOrder",)),
    },
)

PARTNER_ADDRESS = EntityType(
    "A_SalesOrderPartnerAddress", "A_SalesOrderPartnerAddressType",
    ("SalesOrder", "PartnerFunction", "AddressRepresentationCode"),
    _props(_s("SalesOrder", 10), _s("PartnerFunction", 2), _s("AddressRepresentationCode", 1),
           _s("CorrespondenceLanguage", 2), _s("AddresseeFullName", 80), _s("OrganizationName1", 40),
           _s("OrganizationName2", 40), _s("CityName", 40), _s("DistrictName", 40), _s("PostalCode", 10),
           _s("StreetName", 60), _s("HouseNumber", 10), _s("Country", 3), _s("Region", 3),
           _s("EmailAddress", 241), _s("MobileNumber", 30), _s("PhoneNumber", 30)),
    {
        "to_Partner": Nav("to_Partner", "A_SalesOrderHeaderPartner", False,
                          ("SalesOrder", "PartnerFunction")),
        "to_SalesOrder": Nav("to_SalesOrder", "A_SalesOrder", False, ("SalesOrder",)),
    },
    creatable=False, deletable=False,
)

ENTITY_TYPES: dict[str, EntityType] = {t.set_name: t for t in (
    SALES_ORDER, SALES_ORDER_ITEM, SALES_ORDER_TEXT, SALES_ORDER_ITEM_TEXT, HEADER_PARTNER, PARTNER_ADDRESS)}
