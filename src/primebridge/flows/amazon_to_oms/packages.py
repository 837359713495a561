"""What both Amazon package flows share: which OMS order an Amazon order belongs to, how its lines
map to OMS lines, and the ports they need beyond ``ports.py``.

Buy with Prime events are thin (reference §3.1): a ``PACKAGE_*`` event only names the order and the
package. Every handler therefore reads the order as Amazon holds it *now* (``OrderContext``) and
brings the OMS in line with that state, which is why duplicates and events that arrive out of order
end in the same OMS state as one clean, ordered delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from primebridge.domain.errors import PermanentError, TransientError
from primebridge.domain.model import Alias, AmazonOrder
from primebridge.domain.packages import AmazonPackage
from primebridge.ports import AmazonOrders, OrderLink, ShipmentDocuments
from primebridge.runtime import context

# -- ports (the Amazon package alias, the store's package records) --------------------------------


class AmazonPackageOrders(AmazonOrders, Protocol):
    """``AmazonOrders`` plus the one package mutation the flows need."""

    def add_package_alias(self, order_id: str, package_id: str, alias: Alias) -> object:
        """Add ``alias`` to the package; adding an alias the package already has changes nothing."""
        ...


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """What primebridge has done in the OMS for one Amazon package, so a repeated event skips the
    OMS calls whose effect is already there. The OMS calls are idempotent anyway: the record only
    saves calls, it is never the reason a call is (not) repeated after a crash."""

    oms: str
    oms_order_id: str
    amazon_order_id: str
    package_id: str
    document_id: str
    tracking: str | None = None          # signature of the tracker last recorded on the document
    delivered_at: str | None = None      # ISO time recorded as delivered
    failure: str | None = None           # delivery failure recorded (and notified)
    alias_written: bool = False

    @property
    def state(self) -> str:
        if self.failure:
            return "failed"
        if self.delivered_at:
            return "delivered"
        return "shipped"


class PackageStore(Protocol):
    def oms_order_for(self, amazon_order_id: str) -> tuple[str, str] | None:
        """``(oms, oms order id)`` of the order link that holds this Amazon order id."""
        ...

    def get_order_link(self, oms: str, oms_order_id: str) -> OrderLink | None: ...

    def get_package(self, oms: str, oms_order_id: str, package_id: str) -> PackageRecord | None: ...

    def save_package(self, record: PackageRecord) -> None:
        """Upsert, committed before returning."""
        ...

    def get_cancellations(self, oms: str, oms_order_id: str) -> dict[str, Decimal] | None:
        """Cancelled totals per OMS line last applied to the OMS, or ``None`` when none were."""
        ...

    def save_cancellations(self, oms: str, oms_order_id: str, amazon_order_id: str,
                           totals: Mapping[str, Decimal]) -> None: ...

    def note(self, operation: str, status: str, detail: str) -> None: ...


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
