"""What both Amazon package flows share: which OMS order an Amazon order belongs to, how its lines
map to OMS lines. Their ports (``AmazonPackageOrders``, ``PackageStore``) are in ``ports.py``.

Buy with Prime events are thin (reference §3.1): a ``PACKAGE_*`` event only names the order and the
package. Every handler therefore reads the order as Amazon holds it *now* (``OrderContext``) and
brings the OMS in line with that state, which is why duplicates and events that arrive out of order
end in the same OMS state as one clean, ordered delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from primebridge.domain.errors import PermanentError, TransientError
from primebridge.domain.model import AmazonOrder
from primebridge.domain.packages import AmazonPackage
from primebridge.ports import AmazonOrders, PackageStore, ShipmentDocuments
from primebridge.runtime import context

# -- one connected OMS as these flows see it --------------------------------------------------------


@dataclass(frozen=True)
class OmsShipments:
    """An OMS's shipment documents, plus the alias types that tie its ids to Amazon's."""

    documents: ShipmentDocuments
    order_alias_type: str
    line_alias_type: str
    document_alias_type: str


@dataclass(frozen=True)
class OrderContext:
    """An Amazon order as it is now, resolved to the OMS order it came from."""

    oms: str
    oms_order_id: str
    order: AmazonOrder
    side: OmsShipments
    oms_lines: dict[str, str] = field(default_factory=dict)  # Amazon line id -> OMS line id

    @property
    def packages(self) -> tuple[AmazonPackage, ...]:
        return tuple(self.order.packages)

    def oms_line(self, amazon_line_id: str) -> str:
        line = self.oms_lines.get(amazon_line_id)
        if line is None:
            # Every line of an order primebridge created came from an OMS line; a line that maps to
            # none means the cross-references are broken, which retrying cannot repair.
            raise PermanentError(f"Amazon line {amazon_line_id} of order {self.order.order_id} maps to no "
                                 f"{self.oms} line of order {self.oms_order_id} (no line cross-reference, "
                                 "no line alias)")
        return line


def load_order(amazon: AmazonOrders, store: PackageStore, systems: Mapping[str, OmsShipments],
               amazon_order_id: str) -> OrderContext | str:
    """The order and its OMS counterpart, or the reason the event is not ours to handle. Adds the OMS
    ids to the correlation of the current scope (call it inside ``context.correlated``)."""
    order = amazon.get_order(amazon_order_id)
    if order is None:
        # The event names the order, so Amazon has it; not seeing it yet is eventual consistency.
        raise TransientError(f"Amazon does not show order {amazon_order_id} yet")
    found = store.oms_order_for(amazon_order_id)
    if found is None or found[0] not in systems:
        # No link yet (the fulfil flow's write of the link may still be in flight) or created by
        # another installation: the order alias written at createOrder names the OMS order too.
        found = next(((name, alias.alias_id) for alias in order.aliases
                      for name, side in systems.items() if alias.alias_type == side.order_alias_type), None)
    if found is None:
        return f"ignored: Amazon order {amazon_order_id} belongs to no connected OMS"
    oms, oms_order_id = found
    context.add(oms=oms, oms_order_id=oms_order_id)
    side = systems[oms]
    link = store.get_order_link(oms, oms_order_id)
    oms_lines = {amazon_line: oms_line for oms_line, amazon_line in (link.line_ids if link else {}).items()}
    prefix = f"{oms_order_id}/"
    for line in order.lines:
        if line.line_id in oms_lines:
            continue
        for alias in line.aliases:
            if alias.alias_type == side.line_alias_type and alias.alias_id.startswith(prefix):
                oms_lines[line.line_id] = alias.alias_id[len(prefix):]
                break
    return OrderContext(oms=oms, oms_order_id=oms_order_id, order=order, side=side, oms_lines=oms_lines)
