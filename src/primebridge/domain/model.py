"""Canonical, OMS-neutral shapes of what flows between an OMS and Amazon.

Every OMS adapter translates its own documents into these, so the rules in this package and the
flows never see an SAP or NetSuite field name. Values are immutable: a flow decides from a snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class ExecutionState(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    STARTED = "STARTED"


class DeliveryProvider(StrEnum):
    AMAZON = "AMAZON"
    MERCHANT = "MERCHANT"


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    street: str
    city: str
    postal_code: str
    country_code: str
    region: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class SalesOrderLine:
    """One OMS line as the routing rules need it.

    ``location`` is the SAP plant or NetSuite location; ``amazon_flag`` is a NetSuite item/line flag
    (``None`` where the OMS has no such flag). ``amazon_line_id`` is what an earlier run wrote back.
    """

    line_id: str
    item: str
    quantity: Decimal
    title: str | None = None
    unit_price: Money | None = None
    tax: Money | None = None
    location: str | None = None
    amazon_flag: bool | None = None
    delivery_preview_id: str | None = None
    delivery_offer_id: str | None = None
    amazon_line_id: str | None = None
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class SalesOrder:
    """An OMS sales order, read fresh from the OMS every time a flow runs (the OMS is authoritative)."""

    oms: str
    order_id: str
    lines: tuple[SalesOrderLine, ...]
    currency: str
    ship_to: Address | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    customer_id: str | None = None
    order_type: str | None = None
    status: str | None = None
    on_hold: bool = False
    control_flag: bool = True
    shipping_method: str | None = None
    shopper_identity_token: str | None = None
    total: Money | None = None
    tax_total: Money | None = None
    amazon_order_id: str | None = None
    changed_at: datetime | None = None
    version: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alias:
    alias_type: str
    alias_id: str


@dataclass(frozen=True, slots=True)
class FulfillmentLine:
    """One line of the order primebridge asks Amazon to create."""

    oms_line_id: str
    sku: str
    quantity: Decimal
    provider: DeliveryProvider
    prime: bool
    delivery_speed: str | None
    title: str | None = None
    unit_price: Money | None = None
    tax: Money | None = None
    delivery_preview_id: str | None = None
    delivery_offer_id: str | None = None
    alias: Alias | None = None


@dataclass(frozen=True, slots=True)
class FulfillmentRequest:
    """What ``createOrder`` needs, derived purely from a ``SalesOrder`` and the routing policy."""

    oms: str
    oms_order_id: str
    alias: Alias
    execution_state: ExecutionState
    recipient: Address
    currency: str
    lines: tuple[FulfillmentLine, ...]
    customer_name: str | None = None
    customer_email: str | None = None
    shopper_identity_token: str | None = None
    total: Money | None = None
    tax_total: Money | None = None
    order_link_url: str | None = None


@dataclass(frozen=True, slots=True)
class AmazonLine:
    line_id: str
    aliases: tuple[Alias, ...] = ()
    quantity: Decimal | None = None
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class AmazonOrder:
    """The part of a Buy with Prime ``Order`` that the flows work from."""

    order_id: str
    execution_state: ExecutionState
    aliases: tuple[Alias, ...]
    lines: tuple[AmazonLine, ...]
    # ``packageInformation.details``; empty when the query did not ask for them. Typed in
    # ``domain.packages`` (imported lazily there to keep this module free of package concerns).
    packages: tuple[Any, ...] = ()

    def line_for_alias(self, alias: Alias) -> AmazonLine | None:
        return next((line for line in self.lines if alias in line.aliases), None)
