"""Order cancellations through Amazon: packages Amazon cancelled before shipping reduce the OMS order.

A ``PACKAGE_DELIVERY_CANCELLED`` event with reason ``CUSTOMER_REQUESTED`` or ``UNFULFILLABLE`` means
the package never left the warehouse (reference §2.9: only a PENDING package is cancelled with those
reasons). A PENDING package may first be split, so one order line can be part cancelled and part
shipped; and one line can be cancelled across several packages. The OMS is therefore told the
*total* cancelled per line over all cancelled packages of the order, not the quantity of the package
the event names: applying totals twice, or in any order, leaves the OMS as applying them once.
``UNDELIVERABLE`` is a shipped package that failed: ``fulfillment_updates`` records that one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import structlog

from primebridge.domain.packages import CancellationReason, LineCancellation, PackageState
from primebridge.flows.amazon_to_oms.packages import OrderContext
from primebridge.ports import PackageStore

log = structlog.get_logger(__name__)

# A CANCELLED package without a reason cannot be shipped-then-failed (that one always says
# UNDELIVERABLE), so it was cancelled before shipping; Amazon gave no cause, so "it could not be
# fulfilled" is the neutral reading.
DEFAULT_REASON = CancellationReason.UNFULFILLABLE


def cancelled_totals(ctx: OrderContext) -> tuple[LineCancellation, ...]:
    """Per OMS line: units Amazon cancelled before shipping, what remains ordered, and why."""
    cancelled: dict[str, Decimal] = defaultdict(Decimal)
    by_reason: dict[str, dict[CancellationReason, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    packaged: dict[str, Decimal] = defaultdict(Decimal)
    for package in ctx.packages:
        for line in package.lines:
            packaged[line.amazon_line_id] += line.quantity
        if package.state is not PackageState.CANCELLED or package.reason is CancellationReason.UNDELIVERABLE:
            continue
        reason = package.reason or DEFAULT_REASON
        for line in package.lines:
            cancelled[line.amazon_line_id] += line.quantity
            by_reason[line.amazon_line_id][reason] += line.quantity
    ordered = {line.line_id: line.quantity for line in ctx.order.lines if line.quantity is not None}
    per_oms_line: dict[str, list[Decimal]] = {}
    reasons: dict[str, dict[CancellationReason, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for amazon_line, quantity in cancelled.items():
        oms_line = ctx.oms_line(amazon_line)
        total = ordered.get(amazon_line, packaged[amazon_line])
        entry = per_oms_line.setdefault(oms_line, [Decimal(0), Decimal(0)])
        entry[0] += quantity
        entry[1] += total
        for reason, amount in by_reason[amazon_line].items():
            reasons[oms_line][reason] += amount
    result = []
    for oms_line, (quantity, total) in sorted(per_oms_line.items()):
        # The reason that cancelled most units of the line; ties go to the first in the enum.
        reason = max(CancellationReason, key=lambda r: (reasons[oms_line].get(r, Decimal(0)),
                                                        -list(CancellationReason).index(r)))
        result.append(LineCancellation(oms_line_id=oms_line, cancelled_quantity=quantity,
                                       remaining_quantity=max(total - quantity, Decimal(0)), reason=reason))
    return tuple(result)


@dataclass
class AmazonCancellations:
    store: PackageStore

    def apply(self, ctx: OrderContext) -> list[str]:
        lines = cancelled_totals(ctx)
        if not lines:
            return []
        totals = {line.oms_line_id: line.cancelled_quantity for line in lines}
        if self.store.get_cancellations(ctx.oms, ctx.oms_order_id) == totals:
            return ["cancellations already applied"]
        ctx.side.documents.apply_cancellations(ctx.oms_order_id, lines)
        self.store.save_cancellations(ctx.oms, ctx.oms_order_id, ctx.order.order_id, totals)
        text = ", ".join(f"line {line.oms_line_id}: {line.cancelled_quantity} cancelled "
                         f"({line.reason.value}), {line.remaining_quantity} remain" for line in lines)
        self.store.note("cancel lines", "ok", text)
        log.info("order.lines_cancelled", oms=ctx.oms, oms_order_id=ctx.oms_order_id, lines=len(lines))
        return [f"cancelled in {ctx.oms}: {text}"]
