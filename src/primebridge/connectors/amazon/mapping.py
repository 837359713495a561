"""Pure translation between primebridge's canonical shapes and Buy with Prime GraphQL JSON.

``create_order_input`` builds the ``CreateOrderInput`` variables (reference §2.1); ``order_from_json``
reads an ``Order`` back into an ``AmazonOrder`` (its packages through packages.py). No I/O, so every
rule is unit-testable.

Which product identifier a line sends is a merchant decision: the docs' example uses ``productId``,
Amazon's SAP CPI scripts send ``externalId`` (the SAP material), its Sterling connector ``amazonSku``,
and the BwP terminology page says any of the four identifiers (product id, external id, SKU, Amazon
SKU) works. [UNCONFIRMED] that ``sku`` is accepted on ``PurchasedProductViewInput.identifier``;
it is the default because the canonical line carries the merchant's SKU.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from primebridge.connectors.amazon.errors import BadResponse
from primebridge.connectors.amazon.packages import packages_from_json
from primebridge.domain.errors import Rejected
from primebridge.domain.model import (
    Address,
    Alias,
    AmazonLine,
    AmazonOrder,
    DeliveryProvider,
    ExecutionState,
    FulfillmentLine,
    FulfillmentRequest,
    Money,
)

ProductIdentifier = Literal["sku", "externalId", "amazonSku", "productId"]
PRODUCT_IDENTIFIERS: tuple[ProductIdentifier, ...] = ("sku", "externalId", "amazonSku", "productId")
ORDER_LINK_DESTINATION = "EXTERNAL_ORDER_MANAGEMENT"

JSON = dict[str, Any]


# -- canonical → GraphQL -----------------------------------------------------------------------

def number(value: Decimal) -> int | float:
    """A Decimal as a JSON number: whole values as ints (``2`` not ``2.0``), others as floats
    (shortest repr, so ``Decimal("28.99")`` is sent as ``28.99``)."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return int(value) if value == value.to_integral_value() else float(value)


def money(value: Money) -> JSON:
    return {"amount": number(value.amount), "currencyCode": value.currency}


def alias_json(alias: Alias) -> JSON:
    return {"aliasType": alias.alias_type, "aliasId": alias.alias_id}


def product_identifier(sku: str, kind: ProductIdentifier) -> JSON:
    if kind == "amazonSku":
        return {"amazonSku": {"value": sku}}
    if kind not in PRODUCT_IDENTIFIERS:
        raise ValueError(f"unknown product identifier kind {kind!r}; use one of {', '.join(PRODUCT_IDENTIFIERS)}")
    return {kind: sku}


def address_json(address: Address) -> JSON:
    fields = {
        "name": address.name,
        "streetAddress": address.street,
        "locality": address.city,
        "region": address.region,
        "countryCode": address.country_code,
        "postalCode": address.postal_code,
        "contactNumber": address.phone,
    }
    return {k: v for k, v in fields.items() if v}


def delivery_details(line: FulfillmentLine) -> JSON:
    """``DeliveryOfferDetailsInput``: Prime lines carry the delivery preview and offer ids (their
    speed comes with the offer); other Amazon lines name a speed; merchant lines only the provider."""
    details: JSON = {"deliveryProvider": line.provider.value}
    if line.provider is not DeliveryProvider.AMAZON:
        return details
    if line.prime:
        missing = [name for name, value in (("deliveryPreviewId", line.delivery_preview_id),
                                            ("delivery offer id", line.delivery_offer_id)) if not value]
        if missing:
            raise Rejected(f"line {line.oms_line_id}: a Prime line needs {' and '.join(missing)}",
                           code="MissingPrimeData")
        details["deliveryTerms"] = {"isPrimeEligible": True}
        details["deliveryPreviewId"] = line.delivery_preview_id
        details["id"] = line.delivery_offer_id
        return details
    terms: JSON = {"isPrimeEligible": False}
    if line.delivery_speed:
        terms["deliverySpeed"] = line.delivery_speed
    details["deliveryTerms"] = terms
    return details


def line_item_input(line: FulfillmentLine, *, identifier: ProductIdentifier = "sku") -> JSON:
    if line.quantity <= 0:
        raise Rejected(f"line {line.oms_line_id}: quantity {line.quantity} must be greater than 0",
                       code="InvalidQuantity")
    product: JSON = {"identifier": product_identifier(line.sku, identifier)}
    if line.title:
        product["title"] = line.title
    if line.unit_price is not None:
        product["price"] = money(line.unit_price)
    item: JSON = {
        "product": product,
        "amount": {"value": number(line.quantity)},
        "selectedDeliveryOffer": {"details": delivery_details(line)},
    }
    if line.alias is not None:
        item["aliases"] = [alias_json(line.alias)]
    if line.tax is not None:
        item["taxes"] = {"summary": {"collectableTaxAmount": money(line.tax)}}
    return item


def create_order_input(request: FulfillmentRequest, *, identifier: ProductIdentifier = "sku") -> JSON:
    """The ``input`` variable of ``createOrder`` for ``request``."""
    prime = any(line.prime and line.provider is DeliveryProvider.AMAZON for line in request.lines)
    if prime and not request.shopper_identity_token:
        raise Rejected(f"order {request.oms_order_id}: Prime lines need the shopper identity token",
                       code="MissingPrimeData")
    data: JSON = {
        "lineItems": [line_item_input(line, identifier=identifier) for line in request.lines],
        "aliases": [alias_json(request.alias)],
        "desiredExecutionState": request.execution_state.value,
        "recipient": {"deliveryAddress": address_json(request.recipient)},
    }
    email_data = {k: v for k, v in (("name", request.customer_name), ("email", request.customer_email)) if v}
    if email_data:
        data["customer"] = {"contact": {"emailData": email_data}}
    if request.total is not None:
        data["totalPrice"] = {"value": money(request.total)}
    if request.tax_total is not None:
        data["taxes"] = {"summary": {"collectableTaxAmount": money(request.tax_total)}}
    if request.shopper_identity_token:
        data["shopperIdentity"] = {"lwaAccessToken": {"value": request.shopper_identity_token}}
    if request.order_link_url:
        data["orderLinks"] = [{"destinationType": ORDER_LINK_DESTINATION, "url": request.order_link_url}]
    return data


def update_order_input(*, execution_state: ExecutionState | None = None, aliases: tuple[Alias, ...] = (),
                       line_aliases: dict[str, tuple[Alias, ...]] | None = None) -> JSON:
    """``UpdateOrderInput``: release (``STARTED``), append order aliases, append line aliases."""
    data: JSON = {}
    if execution_state is not None:
        data["desiredExecutionState"] = execution_state.value
    if aliases:
        data["aliases"] = [alias_json(a) for a in aliases]
    if line_aliases:
        data["lineItems"] = [{"id": {"lineItemId": line_id}, "aliases": [alias_json(a) for a in items]}
                             for line_id, items in line_aliases.items() if items]
    return data


def order_identifier(*, order_id: str | None = None, alias: Alias | None = None) -> JSON:
    """``OrderIdentifierInput``: exactly one of an order id or an alias."""
    if (order_id is None) == (alias is None):
        raise ValueError("give exactly one of order_id and alias")
    return {"orderId": order_id} if order_id is not None else {"alias": alias_json(alias)}  # type: ignore[arg-type]


# -- GraphQL → canonical -----------------------------------------------------------------------

def order_from_json(data: Any, *, identifier: ProductIdentifier = "sku") -> AmazonOrder:
    """An ``AmazonOrder`` from a GraphQL ``Order``; raises ``BadResponse`` naming the bad field."""
    if not isinstance(data, dict):
        raise BadResponse(f"BwP order is not an object but {type(data).__name__}")
    order_id = data.get("id")
    if not isinstance(order_id, str) or not order_id:
        raise BadResponse("BwP order has no id")
    metadata = data.get("metadata")
    state = metadata.get("executionState") if isinstance(metadata, dict) else None
    try:
        execution_state = ExecutionState(state)
    except ValueError:
        raise BadResponse(f"BwP order {order_id}: metadata.executionState is {state!r}, "
                          f"expected one of {', '.join(ExecutionState)}") from None
    lines_raw = data.get("lineItems")
    if not isinstance(lines_raw, list):
        raise BadResponse(f"BwP order {order_id}: lineItems is not a list")
    return AmazonOrder(
        order_id=order_id,
        execution_state=execution_state,
        aliases=aliases_from_json(data.get("aliases"), f"order {order_id}"),
        lines=tuple(_line(order_id, i, raw, identifier) for i, raw in enumerate(lines_raw)),
        packages=packages_from_json(data.get("packageInformation"), order_id, aliases=aliases_from_json),
    )


def aliases_from_json(raw: Any, where: str) -> tuple[Alias, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadResponse(f"BwP {where}: aliases is not a list")
    aliases = []
    for entry in raw:
        alias_type = entry.get("aliasType") if isinstance(entry, dict) else None
        alias_id = entry.get("aliasId") if isinstance(entry, dict) else None
        if not isinstance(alias_type, str) or alias_id is None:
            raise BadResponse(f"BwP {where}: alias {entry!r} lacks aliasType or aliasId")
        aliases.append(Alias(alias_type, str(alias_id)))
    return tuple(aliases)


def _line(order_id: str, index: int, raw: Any, identifier: ProductIdentifier) -> AmazonLine:
    where = f"order {order_id} lineItems[{index}]"
    if not isinstance(raw, dict):
        raise BadResponse(f"BwP {where} is not an object")
    line_id = raw.get("id")
    if not isinstance(line_id, str) or not line_id:
        raise BadResponse(f"BwP {where} has no id")
    amount = raw.get("amount")
    quantity = None
    if isinstance(amount, dict) and amount.get("value") is not None:
        try:
            quantity = Decimal(str(amount["value"]))
        except ArithmeticError:
            raise BadResponse(f"BwP {where}: amount.value {amount['value']!r} is not a number") from None
        if not quantity.is_finite():  # NaN/Infinity would fail later, in a comparison, unnamed
            raise BadResponse(f"BwP {where}: amount.value {amount['value']!r} is not a finite number")
    product = raw.get("product")
    ident = product.get("identifier") if isinstance(product, dict) else None
    return AmazonLine(line_id=line_id, aliases=aliases_from_json(raw.get("aliases"), where),
                      quantity=quantity, sku=_sku(ident, identifier))


def _sku(ident: Any, preferred: ProductIdentifier) -> str | None:
    """The identifier value of the kind we send, else the first one present."""
    if not isinstance(ident, dict):
        return None
    for kind in (preferred, *PRODUCT_IDENTIFIERS):
        value = ident.get(kind)
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, str) and value:
            return value
    return None
