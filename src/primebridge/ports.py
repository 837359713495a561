"""The ports the flows are written against (Protocols), so a flow never imports a connector.

A third OMS plugs in by implementing ``SalesOrderSystem``; the Amazon side and the store are
swappable the same way (tests use the sandboxes through the real connectors, not fakes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Protocol

from primebridge.domain.model import Alias, AmazonOrder, ExecutionState, FulfillmentRequest, SalesOrder


class AmazonOrders(Protocol):
    """Buy with Prime order operations. Errors are ``primebridge.domain.errors`` types."""

    def create_order(self, request: FulfillmentRequest) -> AmazonOrder:
        """Raise ``AlreadyExists`` when an order with the request's alias exists already."""
        ...

    def get_order(self, order_id: str) -> AmazonOrder | None: ...

    def get_order_by_alias(self, alias: Alias) -> AmazonOrder | None: ...

    def update_order(
        self,
        order_id: str,
        *,
        execution_state: ExecutionState | None = None,
        aliases: tuple[Alias, ...] = (),
    ) -> AmazonOrder: ...


class SalesOrderSystem(Protocol):
    """An OMS as the fulfill flow sees it (SAP S/4HANA, NetSuite, or a third one)."""

    name: str

    def read_order(self, order_id: str) -> SalesOrder | None:
        """The order as it is now, or ``None`` when the OMS does not know it."""
        ...

    def changed_order_ids(self, since: datetime) -> Iterator[tuple[str, datetime]]:
        """Ids of orders created or changed at or after ``since``, with their change time, oldest first."""
        ...

    def write_amazon_ids(self, order: SalesOrder, amazon_order_id: str,
                         line_ids: Mapping[str, str]) -> None:
        """Store the Amazon order id and ``{oms line id: amazon line id}`` on the order; idempotent."""
        ...
