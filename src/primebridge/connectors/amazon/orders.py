"""``AmazonOrders`` (ports.py) on top of the Buy with Prime GraphQL API.

Idempotency lives in the order alias (reference §2.8): a retried ``createOrder`` fails with
``AliasValueAlreadyExists`` and surfaces here as ``AlreadyExists``, after which the flow adopts the
order through ``get_order_by_alias``. Not-found is an answer here (``None``), not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from primebridge.connectors.amazon import mapping
from primebridge.connectors.amazon.client import BwpGraphQLClient, load_document
from primebridge.connectors.amazon.errors import BadResponse, ConflictError, NotFound, ValidationError
from primebridge.connectors.amazon.packages import package_alias_input
from primebridge.domain.model import Alias, AmazonOrder, ExecutionState, FulfillmentRequest


class BwpOrders:
    """Buy with Prime orders: create, read by id or alias (with packages), release, add order, line
    and package aliases."""

    def __init__(self, client: BwpGraphQLClient, *, identifier: mapping.ProductIdentifier = "sku") -> None:
        if identifier not in mapping.PRODUCT_IDENTIFIERS:
            raise ValueError(f"identifier must be one of {', '.join(mapping.PRODUCT_IDENTIFIERS)}")
        self._client = client
        self._identifier = identifier

    def create_order(self, request: FulfillmentRequest) -> AmazonOrder:
        variables = {"input": mapping.create_order_input(request, identifier=self._identifier)}
        data = self._client.execute(load_document("createOrder.graphql"), variables)
        return self._order(_payload_order(data, "createOrder"))

    def get_order(self, order_id: str) -> AmazonOrder | None:
        return self._query(mapping.order_identifier(order_id=order_id))

    def get_order_by_alias(self, alias: Alias) -> AmazonOrder | None:
        return self._query(mapping.order_identifier(alias=alias))

    def update_order(
        self,
        order_id: str,
        *,
        execution_state: ExecutionState | None = None,
        aliases: tuple[Alias, ...] = (),
        line_aliases: Mapping[str, tuple[Alias, ...]] | None = None,
    ) -> AmazonOrder:
        """Release (``STARTED``) and/or append order and line aliases; BwP keeps existing aliases."""
        update = mapping.update_order_input(execution_state=execution_state, aliases=aliases,
                                            line_aliases=dict(line_aliases or {}))
        if not update:
            order = self.get_order(order_id)
            if order is None:
                raise NotFound(f"BwP order {order_id} does not exist")
            return order
        variables = {"orderIdentifier": mapping.order_identifier(order_id=order_id), "input": update}
        data = self._client.execute(load_document("updateOrder.graphql"), variables)
        return self._order(_payload_order(data, "updateOrder"))

    def add_package_alias(self, order_id: str, package_id: str, alias: Alias) -> AmazonOrder:
        """Append ``alias`` to the package (``updateOrder`` ``packageInformation.details[{id, aliases}]``,
        reference §2.2): how a flow records the OMS document it made for the package.

        Idempotent: BwP keeps aliases append-only and may refuse one that is there already, so a
        refusal is checked against the order; when the package carries the alias, that is success.
        """
        variables = {"orderIdentifier": mapping.order_identifier(order_id=order_id),
                     "input": {"packageInformation": package_alias_input(package_id, (alias,))}}
        try:
            data = self._client.execute(load_document("updateOrder.graphql"), variables)
        except (ValidationError, ConflictError):
            order = self.get_order(order_id)
            package = next((p for p in order.packages if p.package_id == package_id), None) if order else None
            if package is not None and alias in package.aliases:
                return order  # type: ignore[return-value]
            raise
        order = self._order(_payload_order(data, "updateOrder"))
        if not any(p.package_id == package_id and alias in p.aliases for p in order.packages):
            raise BadResponse(f"BwP updateOrder succeeded but package {package_id} of order {order_id} "
                              f"lacks the alias {alias.alias_type}={alias.alias_id}")
        return order

    def _query(self, identifier: dict[str, Any]) -> AmazonOrder | None:
        try:
            data = self._client.execute(load_document("order.graphql"), {"orderIdentifier": identifier})
        except NotFound:
            return None
        raw = data.get("order")
        return None if raw is None else self._order(raw)

    def _order(self, raw: Any) -> AmazonOrder:
        return mapping.order_from_json(raw, identifier=self._identifier)


def _payload_order(data: dict[str, Any], field: str) -> Any:
    payload = data.get(field)
    if not isinstance(payload, dict) or payload.get("order") is None:
        raise BadResponse(f"BwP {field} succeeded without returning the order")
    return payload["order"]
