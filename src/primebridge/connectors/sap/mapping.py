"""API_SALES_ORDER_SRV entities → the canonical ``SalesOrder`` (pure functions, no I/O).

Where the Amazon data lives is the merchant's choice (text ids in ``SapFieldsConfig``); the SAP
field names themselves are checked against the EDMX contract in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from primebridge.config import SapFieldsConfig
from primebridge.connectors.sap.values import entity_etag, parse_datetime, parse_decimal, results
from primebridge.domain.errors import Rejected
from primebridge.domain.model import Address, Money, SalesOrder, SalesOrderLine

OMS_NAME = "sap"

# Header/item properties read by the adapter; the contract test checks each exists in the EDMX.
HEADER_PROPERTIES = (
    "SalesOrder", "SalesOrderType", "SoldToParty", "TransactionCurrency", "TotalNetAmount",
    "DeliveryBlockReason", "ShippingCondition", "OverallSDProcessStatus", "LastChangeDateTime",
    "PurchaseOrderByCustomer", "SalesOrganization", "DistributionChannel", "OrganizationDivision",
)
ITEM_PROPERTIES = (
    "SalesOrder", "SalesOrderItem", "Material", "RequestedQuantity", "RequestedQuantityUnit",
    "SalesOrderItemText", "ProductionPlant", "NetAmount", "TaxAmount", "TransactionCurrency",
    "SalesDocumentRjcnReason",
)
TEXT_PROPERTIES = ("Language", "LongTextID", "LongText")
PARTNER_PROPERTIES = ("PartnerFunction", "PartnerFunctionInternalCode", "Customer")
ADDRESS_PROPERTIES = (
    "AddresseeFullName", "OrganizationName1", "OrganizationName2", "StreetName", "HouseNumber",
    "CityName", "PostalCode", "Region", "Country", "PhoneNumber", "MobileNumber", "EmailAddress",
)


def _str(entity: Mapping[str, Any], name: str) -> str:
    value = entity.get(name)
    return value.strip() if isinstance(value, str) else ""


def _opt(entity: Mapping[str, Any], name: str) -> str | None:
    return _str(entity, name) or None


def _decimal(entity: Mapping[str, Any], name: str, where: str) -> Decimal | None:
    try:
        return parse_decimal(entity.get(name))
    except ValueError as exc:
        raise Rejected(f"SAP {where}: {name} {exc}") from None


def text_value(texts: Sequence[Mapping[str, Any]], text_id: str, language: str) -> str | None:
    """The non-empty text with ``LongTextID == text_id``, preferring the configured language."""
    matching = [t for t in texts if _str(t, "LongTextID") == text_id and _str(t, "LongText")]
    preferred = [t for t in matching if _str(t, "Language").upper() == language.upper()]
    chosen = (preferred or matching)[:1]
    return _str(chosen[0], "LongText") if chosen else None


def find_partner(partners: Sequence[Mapping[str, Any]], function: str) -> Mapping[str, Any] | None:
    """The partner whose function is ``function``, as external or internal code.

    ``PartnerFunction`` holds the language-dependent external code (``SH`` in English) while
    ``PartnerFunctionInternalCode`` holds ``WE``; matching both makes the config work with either.
    [U] Which code the customer's logon language returns is unconfirmed (reference §1.5).
    """
    for field in ("PartnerFunction", "PartnerFunctionInternalCode"):
        for partner in partners:
            if _str(partner, field) == function:
                return partner
    return None


def _partner_address(partner: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if partner is None:
        return None
    addresses = results(partner.get("to_Address"))
    return addresses[0] if addresses else None


def map_address(address: Mapping[str, Any]) -> Address:
    name = _str(address, "AddresseeFullName") or " ".join(
        part for part in (_str(address, "OrganizationName1"), _str(address, "OrganizationName2")) if part)
    street = " ".join(part for part in (_str(address, "StreetName"), _str(address, "HouseNumber")) if part)
    return Address(
        name=name, street=street, city=_str(address, "CityName"), postal_code=_str(address, "PostalCode"),
        country_code=_str(address, "Country"), region=_opt(address, "Region"),
        phone=_opt(address, "PhoneNumber") or _opt(address, "MobileNumber"))


def _unit_price(net: Decimal | None, quantity: Decimal) -> Decimal | None:
    """API_SALES_ORDER_SRV items carry no unit price, only ``NetAmount``; the price is derived
    from it, rounded to the amount's own number of decimals (the currency's decimals in SAP)."""
    if net is None or quantity <= 0:
        return None
    exponent = net.as_tuple().exponent
    step = Decimal(1).scaleb(exponent if isinstance(exponent, int) else -2)
    return (net / quantity).quantize(step, rounding=ROUND_HALF_UP)


def map_line(item: Mapping[str, Any], fields: SapFieldsConfig, currency: str,
             order_id: str) -> SalesOrderLine:
    line_id = _str(item, "SalesOrderItem")
    where = f"A_SalesOrderItem {order_id}/{line_id}"
    if not line_id:
        raise Rejected(f"SAP A_SalesOrder {order_id}: an item has no SalesOrderItem number")
    quantity = _decimal(item, "RequestedQuantity", where)
    if quantity is None:
        raise Rejected(f"SAP {where}: RequestedQuantity is missing")
    item_currency = _str(item, "TransactionCurrency") or currency
    net = _decimal(item, "NetAmount", where)
    price = _unit_price(net, quantity)
    tax = _decimal(item, "TaxAmount", where)
    texts = results(item.get("to_Text"))
    lang = fields.text_language
    return SalesOrderLine(
        line_id=line_id,
        item=_str(item, "Material"),
        quantity=quantity,
        title=_opt(item, "SalesOrderItemText"),
        unit_price=Money(price, item_currency) if price is not None else None,
        tax=Money(tax, item_currency) if tax is not None else None,
        location=_opt(item, "ProductionPlant"),
        amazon_flag=None,
        delivery_preview_id=text_value(texts, fields.delivery_preview_text_id, lang),
        delivery_offer_id=text_value(texts, fields.delivery_offer_text_id, lang),
        amazon_line_id=text_value(texts, fields.amazon_line_text_id, lang),
        cancelled=bool(_str(item, "SalesDocumentRjcnReason")),
    )


def map_order(header: Mapping[str, Any], fields: SapFieldsConfig) -> SalesOrder:
    """An ``A_SalesOrder`` read with ``$expand=to_Item,to_Item/to_Text,to_Text,to_Partner/to_Address``."""
    order_id = _str(header, "SalesOrder")
    if not order_id:
        raise Rejected("SAP A_SalesOrder: the entity has no SalesOrder number")
    currency = _str(header, "TransactionCurrency")
    where = f"A_SalesOrder {order_id}"
    lines = tuple(sorted(
        (map_line(item, fields, currency, order_id) for item in results(header.get("to_Item"))),
        key=lambda line: (len(line.line_id), line.line_id)))
    texts = results(header.get("to_Text"))
    partners = results(header.get("to_Partner"))
    ship_to = _partner_address(find_partner(partners, fields.ship_to_partner_function))
    sold_to = _partner_address(find_partner(partners, fields.sold_to_partner_function))
    lang = fields.text_language
    total = _decimal(header, "TotalNetAmount", where)
    taxes = [line.tax.amount for line in lines if line.tax is not None and not line.cancelled]
    try:
        changed_at = parse_datetime(header.get("LastChangeDateTime"))
    except ValueError as exc:
        raise Rejected(f"SAP {where}: LastChangeDateTime {exc}") from None
    customer_name = None
    if sold_to is not None:
        customer_name = map_address(sold_to).name or None
    email = (_opt(sold_to, "EmailAddress") if sold_to else None) or (
        _opt(ship_to, "EmailAddress") if ship_to else None)
    extra = {key: value for key, value in (
        ("purchase_order_by_customer", _str(header, "PurchaseOrderByCustomer")),
        ("sales_organization", _str(header, "SalesOrganization")),
        ("distribution_channel", _str(header, "DistributionChannel")),
        ("division", _str(header, "OrganizationDivision")),
        ("delivery_block_reason", _str(header, "DeliveryBlockReason")),
    ) if value}
    return SalesOrder(
        oms=OMS_NAME,
        order_id=order_id,
        lines=lines,
        currency=currency,
        ship_to=map_address(ship_to) if ship_to is not None else None,
        customer_name=customer_name,
        customer_email=email,
        customer_id=_opt(header, "SoldToParty"),
        order_type=_opt(header, "SalesOrderType"),
        status=_opt(header, "OverallSDProcessStatus"),
        on_hold=bool(_str(header, "DeliveryBlockReason")),
        control_flag=text_value(texts, fields.control_text_id, lang) is not None,
        shipping_method=_opt(header, "ShippingCondition"),
        shopper_identity_token=text_value(texts, fields.shopper_token_text_id, lang),
        total=Money(total, currency) if total is not None else None,
        tax_total=Money(sum(taxes, Decimal(0)), currency) if taxes else None,
        amazon_order_id=text_value(texts, fields.amazon_order_text_id, lang),
        changed_at=changed_at,
        version=entity_etag(header),
        extra=extra,
    )
