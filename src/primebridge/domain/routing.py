"""Eligibility, routing and validation of an OMS order for Amazon fulfillment (pure rules).

The OMS adapters fill the neutral fields (``location``, ``amazon_flag``, ``order_type``, ``status``,
``control_flag``, ``on_hold``); the merchant's policy, below, decides what they mean. Keeping the
decision here means SAP and NetSuite are routed by one set of rules, tested without any server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from primebridge.domain.model import (
    Alias,
    DeliveryProvider,
    ExecutionState,
    FulfillmentLine,
    FulfillmentRequest,
    SalesOrder,
    SalesOrderLine,
)

MAX_AMAZON_PRIME_LINES = 20
MAX_AMAZON_OTHER_LINES = 20


class OtherLines(StrEnum):
    """What happens to lines fulfilled elsewhere (not at an Amazon location)."""

    MERCHANT = "merchant"
    OMIT = "omit"


class MissingPrimeData(StrEnum):
    """What happens to a Prime line without delivery preview, offer id or shopper token."""

    REJECT = "reject"
    NON_PRIME = "non_prime"


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The merchant's rules; built from the ``[sap.routing]`` / ``[netsuite.routing]`` config."""

    amazon_locations: frozenset[str] = frozenset()
    use_line_flag: bool = False
    order_types: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    require_control_flag: bool = False
    other_lines: OtherLines = OtherLines.MERCHANT
    prime_shipping_methods: frozenset[str] = frozenset()
    delivery_speeds: Mapping[str, str] = field(default_factory=dict)
    default_delivery_speed: str = "STANDARD"
    missing_prime_data: MissingPrimeData = MissingPrimeData.REJECT
    sku_map: Mapping[str, str] = field(default_factory=dict)
    sku_identity_fallback: bool = True
    alias_type: str = "OMS_ORDER_ID"
    line_alias_type: str = "OMS_LINE_ID"
    order_link_template: str | None = None


@dataclass(frozen=True, slots=True)
class NotForAmazon:
    """The order is not Amazon's business (wrong type, no Amazon line, control flag missing...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """The order should go to Amazon but cannot as it is; the reason is shown to operators."""

    reason: str
    code: str


@dataclass(frozen=True, slots=True)
class Fulfill:
    request: FulfillmentRequest


Decision = NotForAmazon | Invalid | Fulfill


def is_amazon_line(line: SalesOrderLine, policy: RoutingPolicy) -> bool:
    if policy.use_line_flag and line.amazon_flag:
        return True
    return line.location is not None and line.location in policy.amazon_locations


def order_alias(order: SalesOrder, policy: RoutingPolicy) -> Alias:
    return Alias(policy.alias_type, order.order_id)


def line_alias(order: SalesOrder, line: SalesOrderLine, policy: RoutingPolicy) -> Alias:
    """Line aliases carry the order id too: a bare SAP item number (10, 20...) is not unique."""
    return Alias(policy.line_alias_type, f"{order.order_id}/{line.line_id}")


def map_sku(item: str, policy: RoutingPolicy) -> str | None:
    if item in policy.sku_map:
        return policy.sku_map[item]
    return item if policy.sku_identity_fallback else None


def execution_state(order: SalesOrder) -> ExecutionState:
    return ExecutionState.NOT_STARTED if order.on_hold else ExecutionState.STARTED


def decide(order: SalesOrder, policy: RoutingPolicy) -> Decision:
    """Decide what Amazon should get for ``order``; never raises for bad data, returns ``Invalid``."""
    if policy.order_types and (order.order_type or "") not in policy.order_types:
        return NotForAmazon(f"order type {order.order_type!r} is not routed to Amazon")
    if policy.statuses and (order.status or "") not in policy.statuses:
        return NotForAmazon(f"order status {order.status!r} is not routed to Amazon")
    if policy.require_control_flag and not order.control_flag:
        return NotForAmazon("the control flag (header text) is not set")
    open_lines = [line for line in order.lines if not line.cancelled]
    amazon_lines = [line for line in open_lines if is_amazon_line(line, policy)]
    if not amazon_lines:
        return NotForAmazon("no line is at an Amazon fulfillment location")
    if order.ship_to is None:
        return Invalid("the order has no ship-to address", "MissingShipTo")
    missing = [f for f in ("name", "street", "city", "postal_code", "country_code")
               if not getattr(order.ship_to, f)]
    if missing:
        return Invalid(f"the ship-to address lacks {', '.join(missing)}", "IncompleteShipTo")

    prime_method = bool(order.shipping_method) and order.shipping_method in policy.prime_shipping_methods
    speed = policy.delivery_speeds.get(order.shipping_method or "", policy.default_delivery_speed)
    lines: list[FulfillmentLine] = []
    for line in open_lines:
        amazon = line in amazon_lines
        if not amazon and policy.other_lines is OtherLines.OMIT:
            continue
        if line.quantity <= Decimal(0):
            return Invalid(f"line {line.line_id}: quantity {line.quantity} must be greater than 0",
                           "InvalidQuantity")
        sku = map_sku(line.item, policy)
        if sku is None:
            return Invalid(f"line {line.line_id}: item {line.item!r} has no Amazon SKU mapping",
                           "UnmappedSku")
        prime = amazon and prime_method
        if prime:
            absent = [name for name, value in (
                ("delivery preview id", line.delivery_preview_id),
                ("delivery offer id", line.delivery_offer_id),
                ("shopper identity token", order.shopper_identity_token)) if not value]
            if absent and policy.missing_prime_data is MissingPrimeData.REJECT:
                return Invalid(f"line {line.line_id}: Prime line lacks {', '.join(absent)}",
                               "MissingPrimeData")
            prime = not absent
        lines.append(FulfillmentLine(
            oms_line_id=line.line_id,
            sku=sku,
            quantity=line.quantity,
            provider=DeliveryProvider.AMAZON if amazon else DeliveryProvider.MERCHANT,
            prime=prime,
            delivery_speed=speed if amazon else None,
            title=line.title or line.item,
            unit_price=line.unit_price,
            tax=line.tax,
            delivery_preview_id=line.delivery_preview_id if prime else None,
            delivery_offer_id=line.delivery_offer_id if prime else None,
            alias=line_alias(order, line, policy),
        ))
    # Buy with Prime takes at most 40 lines: 20 Prime-eligible and 20 others, merchant lines included.
    prime_count = sum(1 for f in lines if f.provider is DeliveryProvider.AMAZON and f.prime)
    other_count = len(lines) - prime_count
    if prime_count > MAX_AMAZON_PRIME_LINES:
        return Invalid(f"{prime_count} Prime lines; Amazon accepts at most {MAX_AMAZON_PRIME_LINES}",
                       "TooManyLines")
    if other_count > MAX_AMAZON_OTHER_LINES:
        return Invalid(f"{other_count} non-Prime lines (Amazon or merchant-fulfilled); "
                       f"Amazon accepts at most {MAX_AMAZON_OTHER_LINES}", "TooManyLines")
    return Fulfill(FulfillmentRequest(
        oms=order.oms,
        oms_order_id=order.order_id,
        alias=order_alias(order, policy),
        execution_state=execution_state(order),
        recipient=order.ship_to,
        currency=order.currency,
        lines=tuple(lines),
        customer_name=order.customer_name,
        customer_email=order.customer_email,
        shopper_identity_token=order.shopper_identity_token if prime_count else None,
        total=order.total,
        tax_total=order.tax_total,
        order_link_url=(policy.order_link_template.replace("{order_id}", order.order_id)
                        if policy.order_link_template else None),
    ))
