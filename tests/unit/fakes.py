"""In-memory fakes of the three ports the fulfill flow is written against.

They are deliberately strict where the real systems are strict (Amazon alias uniqueness, a one-way
execution state), because the flow's exactly-once guarantee rests on exactly those properties; a
lenient fake would let a double ``createOrder`` pass unnoticed. Every call is recorded so a test can
assert what was *not* called (echoes, unchanged orders).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from primebridge.domain.errors import AlreadyExists, PermanentError, Rejected, TransientError
from primebridge.domain.model import (
    Alias,
    AmazonLine,
    AmazonOrder,
    ExecutionState,
    FulfillmentRequest,
    SalesOrder,
)
from primebridge.ports import OrderLink
from primebridge.runtime import context
from primebridge.runtime.context import Correlation

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    """Monotonic, minute-resolution change times: comparisons in tests never depend on the real clock."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start

    def tick(self) -> datetime:
        self._now += timedelta(minutes=1)
        return self._now


# -- Amazon ----------------------------------------------------------------------------------------


class FakeAmazon:
    """Buy with Prime orders in memory.

    Failure knobs, each consumed by the next matching call:
    ``fail_next(n)`` - the next ``n`` calls of any kind raise ``TransientError`` before doing anything;
    ``crash_after_next_create(exc)`` - the next ``create_order`` creates the order, then raises ``exc``
    (a lost response or a crash between Amazon's commit and ours);
    ``hide_alias_lookups(n)`` - the next ``n`` alias lookups see nothing (eventual consistency);
    ``reject_skus`` - a create containing one of these SKUs raises ``Rejected`` (Amazon ValidationError).
    """

    def __init__(self) -> None:
        self.orders: dict[str, AmazonOrder] = {}
        self.requests: dict[str, FulfillmentRequest] = {}
        self.calls: list[str] = []
        self.reject_skus: set[str] = set()
        self._ids = itertools.count(1)
        self._fail_next = 0
        self._crash_next: Exception | None = None
        self._hidden_lookups = 0

    # knobs
    def fail_next(self, n: int) -> None:
        self._fail_next = n

    def crash_after_next_create(self, exc: Exception | None = None) -> None:
        self._crash_next = exc or TransientError("read timeout after createOrder was sent")

    def hide_alias_lookups(self, n: int) -> None:
        self._hidden_lookups = n

    # helpers for assertions
    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        if self._fail_next > 0:
            self._fail_next -= 1
            raise TransientError(f"simulated 503 on {operation}", retry_after=1.0)

    def _owner_of(self, alias: Alias) -> str | None:
        return next((o.order_id for o in self.orders.values() if alias in o.aliases), None)

    # the port
    def create_order(self, request: FulfillmentRequest) -> AmazonOrder:
        self._enter("create_order")
        if self._owner_of(request.alias) is not None:
            raise AlreadyExists(f"alias {request.alias.alias_type}={request.alias.alias_id} exists")
        bad = sorted({line.sku for line in request.lines} & self.reject_skus)
        if bad:
            raise Rejected(f"ValidationError: unknown SKU {', '.join(bad)}", code="ValidationError")
        n = next(self._ids)
        order_id = f"322-FAKE-{n:06d}"
        lines = tuple(
            AmazonLine(line_id=f"{order_id}-L{i}", aliases=(line.alias,) if line.alias else (),
                       quantity=line.quantity, sku=line.sku)
            for i, line in enumerate(request.lines, start=1))
        order = AmazonOrder(order_id=order_id, execution_state=request.execution_state,
                            aliases=(request.alias,), lines=lines)
        self.orders[order_id] = order
        self.requests[order_id] = request
        if self._crash_next is not None:
            exc, self._crash_next = self._crash_next, None
            raise exc
        return order

    def get_order(self, order_id: str) -> AmazonOrder | None:
        self._enter("get_order")
        return self.orders.get(order_id)

    def get_order_by_alias(self, alias: Alias) -> AmazonOrder | None:
        self._enter("get_order_by_alias")
        if self._hidden_lookups > 0:
            self._hidden_lookups -= 1
            return None
        owner = self._owner_of(alias)
        return self.orders[owner] if owner else None

    def update_order(self, order_id: str, *, execution_state: ExecutionState | None = None,
                     aliases: tuple[Alias, ...] = ()) -> AmazonOrder:
        self._enter("update_order")
        order = self.orders.get(order_id)
        if order is None:
            raise PermanentError(f"no Amazon order {order_id}")
        for alias in aliases:
            owner = self._owner_of(alias)
            if owner not in (None, order_id):
                raise AlreadyExists(f"alias {alias.alias_id} belongs to {owner}")
        new_aliases = order.aliases + tuple(a for a in aliases if a not in order.aliases)
        if len(new_aliases) > 5:
            raise Rejected("an order has at most 5 aliases", code="ValidationError")
        state = order.execution_state
        if execution_state is not None:
            if state is ExecutionState.STARTED and execution_state is ExecutionState.NOT_STARTED:
                raise Rejected("a STARTED order cannot go back to NOT_STARTED", code="ValidationError")
            state = execution_state
        order = replace(order, aliases=new_aliases, execution_state=state)
        self.orders[order_id] = order
        return order


# -- OMS -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteBack:
    order_id: str
    amazon_order_id: str
    line_ids: dict[str, str]


class FakeOms:
    """Sales orders in memory. A write-back changes the order like a real OMS does: it bumps the change
    time and version, so the next pull sees our own write as a change (the echo the flow must ignore)."""

    def __init__(self, name: str = "fakeoms", clock: FakeClock | None = None) -> None:
        self.name = name
        self.clock = clock or FakeClock()
        self.orders: dict[str, SalesOrder] = {}
        self.writes: list[WriteBack] = []
        self.reads = 0

    def put(self, order: SalesOrder) -> SalesOrder:
        """Create or change an order (as a user would), stamping a new change time and version."""
        previous = self.orders.get(order.order_id)
        version = int(previous.version or "0") + 1 if previous else 1
        stored = replace(order, changed_at=self.clock.tick(), version=str(version))
        self.orders[order.order_id] = stored
        return stored

    def read_order(self, order_id: str) -> SalesOrder | None:
        self.reads += 1
        return self.orders.get(order_id)

    def changed_order_ids(self, since: datetime) -> Iterator[tuple[str, datetime]]:
        changed = [(o.changed_at, o.order_id) for o in self.orders.values()
                   if o.changed_at is not None and o.changed_at >= since]
        for changed_at, order_id in sorted(changed):
            yield order_id, changed_at

    def write_amazon_ids(self, order: SalesOrder, amazon_order_id: str, line_ids: Mapping[str, str]) -> None:
        current = self.orders[order.order_id]
        lines = tuple(replace(line, amazon_line_id=line_ids.get(line.line_id, line.amazon_line_id))
                      for line in current.lines)
        self.writes.append(WriteBack(order.order_id, amazon_order_id, dict(line_ids)))
        self.put(replace(current, amazon_order_id=amazon_order_id, lines=lines))


# -- store -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note:
    operation: str
    status: str
    detail: str
    correlation: Correlation


@dataclass
class EnqueueCall:
    oms: str
    order_ids: list[str]
    watermark: tuple[str, str] | None


@dataclass
class FakeStore:
    """Links, notes, watermarks and a coalescing queue of pending order syncs."""

    links: dict[tuple[str, str], OrderLink] = field(default_factory=dict)
    history: list[OrderLink] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    watermarks: dict[str, str] = field(default_factory=dict)
    pending: list[tuple[str, str]] = field(default_factory=list)
    enqueue_calls: list[EnqueueCall] = field(default_factory=list)

    def get_order_link(self, oms: str, oms_order_id: str) -> OrderLink | None:
        return self.links.get((oms, oms_order_id))

    def save_order_link(self, link: OrderLink) -> None:
        self.links[(link.oms, link.oms_order_id)] = link
        self.history.append(link)

    def note(self, operation: str, status: str, detail: str) -> None:
        self.notes.append(Note(operation, status, detail, context.current()))

    def notes_for(self, operation: str) -> list[Note]:
        return [n for n in self.notes if n.operation == operation]

    def get_watermark(self, name: str) -> str | None:
        return self.watermarks.get(name)

    def enqueue_order_syncs(self, oms: str, order_ids: list[str], *, watermark: tuple[str, str] | None,
                            message_id: int | None = None) -> int:
        self.enqueue_calls.append(EnqueueCall(oms, list(order_ids), watermark))
        added = 0
        for order_id in order_ids:
            if (oms, order_id) not in self.pending:
                self.pending.append((oms, order_id))
                added += 1
        if watermark is not None:
            name, value = watermark
            if name not in self.watermarks or value > self.watermarks[name]:
                self.watermarks[name] = value
        return added

    def take_pending(self) -> list[str]:
        ids = [order_id for _, order_id in self.pending]
        self.pending.clear()
        return ids
