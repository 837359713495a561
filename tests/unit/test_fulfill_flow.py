"""The fulfill flow against in-memory ports: exactly one Amazon order per OMS order, whatever fails."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.domain.model import (
    Address,
    Alias,
    ExecutionState,
    FulfillmentRequest,
    SalesOrder,
    SalesOrderLine,
)
from primebridge.domain.routing import Fulfill, RoutingPolicy, decide
from primebridge.flows.oms_to_amazon.fulfill_with_amazon import (
    PULL_BATCH,
    FulfillWithAmazon,
    fingerprint,
    watermark_text,
)
from primebridge.ports import LinkState, OrderLink
from primebridge.runtime import context
from tests.unit.fakes import EPOCH, FakeAmazon, FakeOms, FakeStore

AMZ = "AMZ1"
SHIP_TO = Address(name="Ada Lovelace", street="1 Main St", city="Seattle", postal_code="98101",
                  country_code="US")
POLICY = RoutingPolicy(amazon_locations=frozenset({AMZ}), prime_shipping_methods=frozenset({"PRIME"}))
ORDER_ALIAS = Alias("OMS_ORDER_ID", "4711")


def sales_order(order_id: str = "4711", *, on_hold: bool = False, item: str = "ITEM-1",
                ship_to: Address | None = SHIP_TO, qty: str = "2") -> SalesOrder:
    lines = (
        SalesOrderLine("10", item, Decimal(qty), location=AMZ, delivery_preview_id="p1",
                       delivery_offer_id="o1"),
        SalesOrderLine("20", "LOCAL-1", Decimal("1"), location="1000"),
    )
    return SalesOrder(oms="fakeoms", order_id=order_id, lines=lines, currency="USD", ship_to=ship_to,
                      shipping_method="PRIME", shopper_identity_token="shopper-tok", on_hold=on_hold)


@dataclass
class World:
    oms: FakeOms
    amazon: FakeAmazon
    store: FakeStore
    flow: FulfillWithAmazon

    def sync(self, order_id: str = "4711") -> str:
        """Run one job the way the worker does: inside a correlation context that is reset afterwards."""
        with context.correlated(oms=self.oms.name, oms_order_id=order_id, job_id=1):
            return self.flow.sync_order(order_id)

    def link(self, order_id: str = "4711") -> OrderLink:
        link = self.store.get_order_link(self.oms.name, order_id)
        assert link is not None
        return link


@pytest.fixture
def world() -> World:
    oms, amazon, store = FakeOms(), FakeAmazon(), FakeStore()
    return World(oms, amazon, store, FulfillWithAmazon(oms=oms, amazon=amazon, store=store, policy=POLICY))


def _only_order(world: World) -> str:
    assert len(world.amazon.orders) == 1, world.amazon.orders
    return next(iter(world.amazon.orders))


# -- the happy path and the echo -------------------------------------------------------------------


def test_new_order_is_created_once_and_ids_written_back(world: World) -> None:
    world.oms.put(sales_order())
    result = world.sync()
    amazon_id = _only_order(world)
    assert amazon_id in result and "ids written back" in result
    assert world.amazon.count("create_order") == 1

    request = world.amazon.requests[amazon_id]
    assert request.alias == ORDER_ALIAS and request.execution_state is ExecutionState.STARTED
    assert [line.sku for line in request.lines] == ["ITEM-1", "LOCAL-1"]

    stored = world.oms.orders["4711"]
    assert stored.amazon_order_id == amazon_id
    assert {line.line_id: line.amazon_line_id for line in stored.lines} == {
        "10": f"{amazon_id}-L1", "20": f"{amazon_id}-L2"}

    link = world.link()
    assert link.state is LinkState.WRITTEN_BACK and link.amazon_order_id == amazon_id
    assert link.alias == ORDER_ALIAS and link.line_ids == {"10": f"{amazon_id}-L1", "20": f"{amazon_id}-L2"}
    assert link.fingerprint == fingerprint(stored, POLICY)
    # the intent was durable before Amazon was called
    assert world.store.history[0].state is LinkState.INTENT and world.store.history[0].alias == ORDER_ALIAS
    (note,) = world.store.notes_for("create")
    assert note.status == "ok" and amazon_id in note.detail and note.correlation.oms_order_id == "4711"


def test_same_order_again_is_unchanged_and_calls_nothing(world: World) -> None:
    world.oms.put(sales_order())
    world.sync()
    calls, writes = list(world.amazon.calls), list(world.oms.writes)
    assert world.oms.orders["4711"].version == "2"  # our write-back changed the order (the echo)
    for _ in range(2):
        assert world.sync().startswith("unchanged")
    assert world.amazon.calls == calls and world.oms.writes == writes
    assert len(world.amazon.orders) == 1


def test_a_relevant_change_is_synced_but_not_created_again(world: World) -> None:
    world.oms.put(sales_order())
    world.sync()
    amazon_id = _only_order(world)
    world.oms.put(replace(world.oms.orders["4711"], customer_email="new@example.com"))
    result = world.sync()
    assert "in sync" in result and world.amazon.count("create_order") == 1
    assert world.amazon.count("get_order") == 1 and world.link().amazon_order_id == amazon_id
    assert world.link().fingerprint == fingerprint(world.oms.orders["4711"], POLICY)
    assert world.sync().startswith("unchanged")


def test_not_for_amazon(world: World) -> None:
    order = sales_order()
    world.oms.put(replace(order, lines=(replace(order.lines[0], location="1000"),)))
    assert world.sync().startswith("not for Amazon")
    assert world.link().state is LinkState.NOT_FOR_AMAZON and world.link().reason
    assert world.amazon.calls == []
    assert world.sync().startswith("unchanged")


def test_fingerprint_ignores_what_primebridge_writes_back() -> None:
    order = sales_order()
    echoed = replace(order, amazon_order_id="322-X", changed_at=EPOCH, version="9",
                     lines=tuple(replace(line, amazon_line_id=f"L{i}") for i, line in enumerate(order.lines)))
    assert fingerprint(echoed, POLICY) == fingerprint(order, POLICY)
    assert fingerprint(sales_order(qty="3"), POLICY) != fingerprint(order, POLICY)
    assert fingerprint(sales_order(on_hold=True), POLICY) != fingerprint(order, POLICY)


# -- crashes, timeouts, conflicts ------------------------------------------------------------------


def test_create_that_succeeded_but_did_not_return_is_adopted_on_retry(world: World) -> None:
    world.oms.put(sales_order())
    world.amazon.crash_after_next_create()
    with pytest.raises(TransientError):
        world.sync()
    amazon_id = _only_order(world)  # Amazon has it, we do not know yet
    assert world.link().state is LinkState.INTENT and world.link().amazon_order_id is None
    assert world.oms.writes == []

    result = world.sync()
    assert _only_order(world) == amazon_id and world.amazon.count("create_order") == 1
    assert amazon_id in result
    assert world.link().state is LinkState.WRITTEN_BACK and world.link().amazon_order_id == amazon_id
    assert world.oms.orders["4711"].amazon_order_id == amazon_id
    (note,) = world.store.notes_for("adopt")
    assert amazon_id in note.detail and note.correlation.oms_order_id == "4711"
    assert world.sync().startswith("unchanged")


def test_process_crash_after_create_is_adopted_on_retry(world: World) -> None:
    class Crash(BaseException):
        """Stands for the process dying: nothing in the flow may catch it."""

    world.oms.put(sales_order())
    world.amazon.crash_after_next_create(Crash())  # type: ignore[arg-type]
    with pytest.raises(Crash):
        world.sync()
    world.sync()
    assert len(world.amazon.orders) == 1 and world.link().state is LinkState.WRITTEN_BACK


def test_transient_failure_before_create_retries_the_create(world: World) -> None:
    world.oms.put(sales_order())
    world.amazon.fail_next(1)
    with pytest.raises(TransientError) as exc:
        world.sync()
    assert exc.value.retry_after == 1.0 and world.amazon.orders == {}
    world.sync()
    assert world.amazon.calls == ["create_order", "get_order_by_alias", "create_order"]
    assert len(world.amazon.orders) == 1 and world.link().state is LinkState.WRITTEN_BACK


def test_failing_alias_lookup_on_retry_never_creates_blindly(world: World) -> None:
    world.oms.put(sales_order())
    world.amazon.crash_after_next_create()
    with pytest.raises(TransientError):
        world.sync()
    world.amazon.fail_next(1)  # the lookup by alias fails: the flow must not fall through to create
    with pytest.raises(TransientError):
        world.sync()
    world.sync()
    assert world.amazon.count("create_order") == 1 and len(world.amazon.orders) == 1


def test_already_exists_adopts_the_existing_order(world: World) -> None:
    existing = world.amazon.create_order(_request_for(sales_order()))  # e.g. a run whose store was lost
    world.amazon.calls.clear()
    world.oms.put(sales_order())
    result = world.sync()
    assert existing.order_id in result and len(world.amazon.orders) == 1
    assert world.amazon.calls == ["create_order", "get_order_by_alias"]
    assert world.link().state is LinkState.WRITTEN_BACK and world.link().amazon_order_id == existing.order_id
    assert world.oms.orders["4711"].amazon_order_id == existing.order_id
    assert [n.status for n in world.store.notes_for("adopt")] == ["ok"]


def test_already_exists_but_not_visible_yet_is_transient(world: World) -> None:
    world.amazon.create_order(_request_for(sales_order()))
    world.oms.put(sales_order())
    world.amazon.hide_alias_lookups(1)
    with pytest.raises(TransientError, match="alias 4711"):
        world.sync()
    world.sync()
    assert len(world.amazon.orders) == 1 and world.link().state is LinkState.WRITTEN_BACK


def _request_for(order: SalesOrder) -> FulfillmentRequest:
    """The request the flow would send, to plant an order on Amazon behind the flow's back."""
    decision = decide(order, POLICY)
    assert isinstance(decision, Fulfill)
    return decision.request


def test_amazon_order_gone_is_permanent(world: World) -> None:
    world.oms.put(replace(sales_order(), amazon_order_id="322-GONE-000000"))
    with pytest.raises(PermanentError, match="322-GONE-000000"):
        world.sync()
    assert world.amazon.count("create_order") == 0


# -- holds -----------------------------------------------------------------------------------------


def test_held_order_is_created_not_started_and_released_when_the_hold_is_removed(world: World) -> None:
    world.oms.put(sales_order(on_hold=True))
    world.sync()
    amazon_id = _only_order(world)
    assert world.amazon.orders[amazon_id].execution_state is ExecutionState.NOT_STARTED
    assert world.amazon.count("update_order") == 0
    assert world.sync().startswith("unchanged")

    world.oms.put(replace(world.oms.orders["4711"], on_hold=False))
    result = world.sync()
    assert "released" in result
    assert world.amazon.orders[amazon_id].execution_state is ExecutionState.STARTED
    assert world.amazon.count("update_order") == 1 and world.amazon.count("create_order") == 1
    assert [n.operation for n in world.store.notes].count("release") == 1
    assert world.sync().startswith("unchanged") and world.amazon.count("update_order") == 1


def test_hold_after_start_is_noted_not_sent(world: World) -> None:
    world.oms.put(sales_order())
    world.sync()
    world.oms.put(replace(world.oms.orders["4711"], on_hold=True))
    world.sync()
    assert world.amazon.count("update_order") == 0
    (note,) = world.store.notes_for("hold")
    assert note.status == "ignored"


def test_held_order_released_while_the_create_was_lost(world: World) -> None:
    world.oms.put(sales_order(on_hold=True))
    world.amazon.crash_after_next_create()
    with pytest.raises(TransientError):
        world.sync()
    world.oms.put(replace(world.oms.orders["4711"], on_hold=False))
    world.sync()
    (order,) = world.amazon.orders.values()
    assert order.execution_state is ExecutionState.STARTED and world.amazon.count("create_order") == 1


# -- rejections ------------------------------------------------------------------------------------


def test_invalid_order_is_rejected_once_and_then_left_alone(world: World) -> None:
    world.oms.put(sales_order(ship_to=None))
    with pytest.raises(Rejected) as exc:
        world.sync()
    assert exc.value.code == "MissingShipTo"
    link = world.link()
    assert link.state is LinkState.REJECTED and link.reason and "ship-to" in link.reason
    assert [n.status for n in world.store.notes_for("validate")] == ["rejected"]
    assert world.amazon.calls == []

    assert world.sync().startswith("unchanged")  # no exception, no Amazon call
    assert world.amazon.calls == []


def test_fixed_order_after_validation_rejection_is_created(world: World) -> None:
    world.oms.put(sales_order(ship_to=None))
    with pytest.raises(Rejected):
        world.sync()
    world.oms.put(replace(world.oms.orders["4711"], ship_to=SHIP_TO))
    world.sync()
    assert len(world.amazon.orders) == 1 and world.link().state is LinkState.WRITTEN_BACK


def test_amazon_validation_error_rejects_and_a_fixed_order_is_created(world: World) -> None:
    world.amazon.reject_skus = {"BAD-SKU"}
    world.oms.put(sales_order(item="BAD-SKU"))
    with pytest.raises(Rejected, match="BAD-SKU"):
        world.sync()
    link = world.link()
    assert link.state is LinkState.REJECTED and link.alias == ORDER_ALIAS and "BAD-SKU" in (link.reason or "")
    assert [n.status for n in world.store.notes_for("create")] == ["rejected"]
    assert world.amazon.orders == {}

    assert world.sync().startswith("unchanged")
    assert world.amazon.count("create_order") == 1

    world.oms.put(replace(sales_order(item="GOOD-SKU"), version=None))
    world.sync()
    amazon_id = _only_order(world)
    assert world.amazon.requests[amazon_id].lines[0].sku == "GOOD-SKU"
    assert world.link().state is LinkState.WRITTEN_BACK and world.amazon.count("create_order") == 2


def test_unknown_order_is_rejected(world: World) -> None:
    with pytest.raises(Rejected) as exc:
        world.sync("no-such-order")
    assert exc.value.code == "UnknownOrder" and "no-such-order" in str(exc.value)
    assert world.store.links == {} and world.amazon.calls == []


def test_orders_are_kept_apart(world: World) -> None:
    world.oms.put(sales_order("A-1"))
    world.oms.put(sales_order("A-2"))
    world.sync("A-1")
    world.sync("A-2")
    assert len(world.amazon.orders) == 2
    assert world.link("A-1").amazon_order_id != world.link("A-2").amazon_order_id


# -- change detection ------------------------------------------------------------------------------


def test_pull_enqueues_changed_ids_and_advances_the_watermark(world: World) -> None:
    for order_id in ("1", "2", "3"):
        world.oms.put(sales_order(order_id))
    assert world.flow.pull_changes(EPOCH) == 3
    assert world.store.take_pending() == ["1", "2", "3"]
    name = world.flow.watermark_name()
    assert name == "fakeoms.sales_orders"
    assert world.store.watermarks[name] == watermark_text(world.oms.orders["3"].changed_at)  # type: ignore[arg-type]

    world.oms.put(replace(world.oms.orders["2"], customer_name="changed"))
    world.flow.pull_changes(EPOCH)
    pending = world.store.take_pending()
    assert "2" in pending and "1" not in pending  # only what changed at or after the watermark
    assert world.store.watermarks[name] == watermark_text(world.oms.orders["2"].changed_at)  # type: ignore[arg-type]


def test_pull_resumes_from_the_stored_watermark_not_the_initial_one(world: World) -> None:
    for order_id in ("old", "edge", "new"):
        world.oms.put(sales_order(order_id))
    edge = world.oms.orders["edge"].changed_at
    assert edge is not None
    world.store.watermarks[world.flow.watermark_name()] = watermark_text(edge)
    assert world.flow.pull_changes(datetime(2000, 1, 1, tzinfo=UTC)) == 2
    assert world.store.take_pending() == ["edge", "new"]  # "at or after": a change at the mark is not lost


def test_empty_first_pull_stores_the_initial_watermark(world: World) -> None:
    initial = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)
    assert world.flow.pull_changes(initial) == 0
    assert world.store.watermarks == {"fakeoms.sales_orders": watermark_text(initial)}
    assert datetime.fromisoformat(world.store.watermarks["fakeoms.sales_orders"]) == initial


def test_empty_later_pull_leaves_the_watermark(world: World) -> None:
    world.flow.pull_changes(EPOCH)
    calls = len(world.store.enqueue_calls)
    assert world.flow.pull_changes(EPOCH + timedelta(days=1)) == 0
    assert len(world.store.enqueue_calls) == calls
    assert world.store.watermarks["fakeoms.sales_orders"] == watermark_text(EPOCH)


def test_large_pull_is_enqueued_in_batches_each_advancing_the_watermark(world: World) -> None:
    for i in range(PULL_BATCH + 5):
        world.oms.put(sales_order(f"{i:04d}"))
    assert world.flow.pull_changes(EPOCH) == PULL_BATCH + 5
    first, second = world.store.enqueue_calls
    assert len(first.order_ids) == PULL_BATCH and len(second.order_ids) == 5
    batch_end = world.oms.orders[f"{PULL_BATCH - 1:04d}"].changed_at
    assert first.watermark == ("fakeoms.sales_orders", watermark_text(batch_end))  # type: ignore[arg-type]


def test_watermark_text_is_fixed_width_utc() -> None:
    from zoneinfo import ZoneInfo

    moment = datetime(2024, 3, 1, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert watermark_text(moment) == "2024-03-01T08:30:00.000000Z"
    assert watermark_text(datetime(2024, 3, 1, 8, 30, 0, 5, tzinfo=UTC)) > watermark_text(moment)


def test_a_config_fix_lets_a_rejected_order_be_decided_again(world: World) -> None:
    from dataclasses import replace as dc_replace

    w = world
    order = sales_order(item="UNMAPPED")
    w.oms.put(order)
    strict = dc_replace(POLICY, sku_identity_fallback=False)
    w.flow.policy = strict
    with pytest.raises(Rejected):
        w.flow.sync_order("4711")
    w.flow.policy = dc_replace(strict, sku_map={"UNMAPPED": "SKU-UNMAPPED", "LOCAL-1": "SKU-LOCAL-1"})
    assert "created" in w.flow.sync_order("4711") or w.amazon.count("create_order") == 1
    assert w.link().state is LinkState.WRITTEN_BACK
