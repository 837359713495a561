"""Cancellations through Amazon against fakes: totals per OMS line over every cancelled package."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from primebridge.domain.model import Alias
from primebridge.domain.packages import CancellationReason, LineCancellation, PackageState
from primebridge.flows.amazon_to_oms.cancellations import AmazonCancellations, cancelled_totals
from primebridge.flows.amazon_to_oms.fulfillment_updates import FulfillmentUpdates, PackageEvents, Trigger
from primebridge.flows.amazon_to_oms.packages import OrderContext, load_order
from primebridge.runtime import context
from tests.unit.fakes_packages import (
    FakeAmazonPackages,
    FakeNotifier,
    FakePackageStore,
    FakeShipments,
    package,
    side,
    tracker,
)

PENDING, IN_TRANSIT, CANCELLED = PackageState.PENDING, PackageState.IN_TRANSIT, PackageState.CANCELLED
CUSTOMER, UNFULFILLABLE, UNDELIVERABLE = (CancellationReason.CUSTOMER_REQUESTED, CancellationReason.UNFULFILLABLE,
                                          CancellationReason.UNDELIVERABLE)
ORDER = "322-0000002-0000002"


class World:
    def __init__(self) -> None:
        self.amazon = FakeAmazonPackages()
        self.oms = FakeShipments()
        self.store = FakePackageStore()
        self.systems = {"fakeoms": side(self.oms)}
        self.events = PackageEvents(
            amazon=self.amazon, store=self.store, systems=self.systems,
            updates=FulfillmentUpdates(amazon=self.amazon, store=self.store, notifier=FakeNotifier()),
            cancellations=AmazonCancellations(self.store))
        self.amazon.add_order(ORDER, {"A1": 3, "A2": 1}, aliases=(Alias("FAKE_ORDER", "SO-2"),))
        self.store.link("fakeoms", "SO-2", ORDER, {"10": "A1", "20": "A2"})

    def cancel_event(self, package_id: str) -> str:
        return self.events.sync_order(ORDER, Trigger("PACKAGE_DELIVERY_CANCELLED", package_id))

    def context(self) -> OrderContext:
        with context.correlated():  # load_order adds the OMS ids to the current scope
            ctx = load_order(self.amazon, self.store, self.systems, ORDER)
        assert isinstance(ctx, OrderContext)
        return ctx

    def cancelled(self) -> dict[str, tuple[Decimal, Decimal, CancellationReason]]:
        return {line: (c.cancelled_quantity, c.remaining_quantity, c.reason)
                for (_, line), c in self.oms.cancellations.items()}


@pytest.fixture
def world() -> World:
    return World()


def test_a_line_cancelled_in_full_is_cancelled_with_nothing_remaining(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A2": 1}, reason=CUSTOMER),
                              package("P2", PENDING, {"A1": 3}))
    outcome = world.cancel_event("P1")
    assert world.cancelled() == {"20": (Decimal(1), Decimal(0), CUSTOMER)}
    assert "line 20" in outcome
    assert world.oms.documents == {}


def test_a_duplicate_cancellation_event_makes_no_oms_call(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 3, "A2": 1}, reason=UNFULFILLABLE))
    world.cancel_event("P1")
    world.cancel_event("P1")
    assert world.oms.calls.count("apply_cancellations") == 1
    assert world.cancelled() == {"10": (Decimal(3), Decimal(0), UNFULFILLABLE),
                                 "20": (Decimal(1), Decimal(0), UNFULFILLABLE)}


def test_split_package_part_cancelled_part_shipped(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1a", CANCELLED, {"A1": 1}, reason=UNFULFILLABLE),
                              package("P1b", IN_TRANSIT, {"A1": 2, "A2": 1}, track=tracker()))
    world.cancel_event("P1a")
    assert world.cancelled() == {"10": (Decimal(1), Decimal(2), UNFULFILLABLE)}
    [document] = world.oms.documents.values()
    assert {(line.oms_line_id, line.quantity) for line in document.shipment.lines} == {
        ("10", Decimal(2)), ("20", Decimal(1))}


def test_cancellations_of_one_line_in_several_packages_are_sent_as_totals(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 1}, reason=CUSTOMER),
                              package("P2", PENDING, {"A1": 2, "A2": 1}))
    world.cancel_event("P1")
    assert world.cancelled()["10"][:2] == (Decimal(1), Decimal(2))
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 1}, reason=CUSTOMER),
                              package("P2", CANCELLED, {"A1": 2, "A2": 1}, reason=UNFULFILLABLE))
    world.cancel_event("P2")
    # 3 in total (not 2 more on top of 1): the OMS is told where the line stands, not what changed.
    assert world.cancelled() == {"10": (Decimal(3), Decimal(0), UNFULFILLABLE),
                                 "20": (Decimal(1), Decimal(0), UNFULFILLABLE)}
    world.cancel_event("P1")  # a late duplicate of the first event
    assert world.oms.calls.count("apply_cancellations") == 2


def test_events_out_of_order_end_in_the_same_totals(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 1}, reason=CUSTOMER),
                              package("P2", CANCELLED, {"A1": 2}, reason=CUSTOMER))
    world.cancel_event("P2")
    world.cancel_event("P1")
    assert world.cancelled() == {"10": (Decimal(3), Decimal(0), CUSTOMER)}
    assert world.oms.calls.count("apply_cancellations") == 1


def test_undeliverable_is_not_an_order_cancellation(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 3}, reason=UNDELIVERABLE, track=tracker()))
    assert cancelled_totals(world.context()) == ()


def test_reason_is_the_one_that_cancelled_most_units(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 1}, reason=CUSTOMER),
                              package("P2", CANCELLED, {"A1": 2}, reason=UNFULFILLABLE))
    assert cancelled_totals(world.context()) == (
        LineCancellation("10", Decimal(3), Decimal(0), UNFULFILLABLE),)


def test_two_amazon_lines_of_one_oms_line_add_up() -> None:
    world = World()
    world.amazon.add_order("322-TWO", {"B1": 2, "B2": 2}, aliases=(Alias("FAKE_ORDER", "SO-3"),))
    world.store.link("fakeoms", "SO-3", "322-TWO", {"10": "B1"})
    # B2 maps through its line alias to the same OMS line 10 (an OMS line split at Amazon).
    order = world.amazon.orders["322-TWO"]
    world.amazon.orders["322-TWO"] = replace(order, lines=(order.lines[0], replace(
        order.lines[1], aliases=(Alias("FAKE_LINE", "SO-3/10"),))))
    world.amazon.set_packages("322-TWO", package("P1", CANCELLED, {"B1": 1, "B2": 2}, reason=CUSTOMER))
    world.events.sync_order("322-TWO")
    assert world.oms.cancellations[("SO-3", "10")] == LineCancellation("10", Decimal(3), Decimal(1), CUSTOMER)


def test_nothing_cancelled_makes_no_call(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", PENDING, {"A1": 3, "A2": 1}))
    assert world.events.sync_order(ORDER).endswith("no shipped or cancelled package")
    assert world.oms.calls == []
