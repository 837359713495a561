"""Fulfillment updates against fakes: one document per package, whatever order events arrive in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pytest

from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.domain.events import event_from_json
from primebridge.domain.model import Alias
from primebridge.domain.packages import CancellationReason, Milestone, PackageState
from primebridge.flows.amazon_to_oms.cancellations import AmazonCancellations
from primebridge.flows.amazon_to_oms.fulfillment_updates import FulfillmentUpdates, PackageEvents, Trigger
from tests.unit.fakes_packages import (
    FakeAmazonPackages,
    FakeNotifier,
    FakePackageStore,
    FakeShipments,
    at,
    package,
    side,
    tracker,
)

IN_TRANSIT, DELIVERED, CANCELLED = PackageState.IN_TRANSIT, PackageState.DELIVERED, PackageState.CANCELLED
ORDER = "322-0000001-0000001"


@dataclass
class World:
    amazon: FakeAmazonPackages = field(default_factory=FakeAmazonPackages)
    oms: FakeShipments = field(default_factory=FakeShipments)
    store: FakePackageStore = field(default_factory=FakePackageStore)
    notifier: FakeNotifier = field(default_factory=FakeNotifier)

    def __post_init__(self) -> None:
        self.updates = FulfillmentUpdates(amazon=self.amazon, store=self.store, notifier=self.notifier)
        self.events = PackageEvents(amazon=self.amazon, store=self.store, systems={"fakeoms": side(self.oms)},
                                    updates=self.updates, cancellations=AmazonCancellations(self.store))
        self.amazon.add_order(ORDER, {"A1": 2, "A2": 1}, aliases=(Alias("FAKE_ORDER", "SO-1"),))
        self.store.link("fakeoms", "SO-1", ORDER, {"10": "A1", "20": "A2"})

    def sync(self, event_type: str | None = None, package_id: str | None = None,
             when: datetime | None = None) -> str:
        return self.events.sync_order(ORDER, Trigger(event_type, package_id, when))

    def oms_calls(self, operation: str) -> int:
        return self.oms.calls.count(operation)


@pytest.fixture
def world() -> World:
    return World()


def test_in_transit_creates_one_document_with_mapped_lines_and_writes_its_id_back(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2, "A2": 1}, track=tracker()))
    outcome = world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1", at(1))

    [document] = world.oms.documents.values()
    shipment = document.shipment
    assert (shipment.oms_order_id, shipment.package_id) == ("SO-1", "P1")
    assert {(line.oms_line_id, line.quantity) for line in shipment.lines} == {("10", Decimal(2)), ("20", Decimal(1))}
    assert (shipment.carrier_code, shipment.tracking_number) == ("ups", "1Z999")
    assert shipment.tracking_url == "https://track.example/1Z999"
    assert shipment.estimated_delivery == at(72)
    assert shipment.shipped_at == at(1)
    assert Alias("FAKE_SHIPMENT", document.document_id) in world.amazon.package(ORDER, "P1").aliases
    assert document.document_id in outcome and "SO-1" in outcome
    # Number, carrier and URL travelled with the shipment; with no milestone yet nothing else is written.
    assert world.oms_calls("record_tracking") == 0


def test_a_duplicate_event_makes_no_oms_call(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker(code="IN_TRANSIT",
                                                                                        when=at(1))))
    world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1")
    calls, alias_calls = list(world.oms.calls), world.amazon.calls.count("add_package_alias")
    outcome = world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1")
    assert world.oms.calls == calls
    assert world.amazon.calls.count("add_package_alias") == alias_calls
    assert "in sync" in outcome
    assert len(world.oms.documents) == 1


def test_delivered_before_in_transit_creates_then_delivers_and_the_late_event_changes_nothing(
        world: World) -> None:
    delivered = Milestone("DELIVERED", at(30), locality="Seattle")
    world.amazon.set_packages(ORDER, package(
        "P1", DELIVERED, {"A1": 2},
        track=tracker(code="DELIVERED", when=at(30), history=(Milestone("IN_TRANSIT", at(2)),))))
    world.sync("PACKAGE_DELIVERED", "P1", at(31))
    [document] = world.oms.documents.values()
    assert document.delivered_at == delivered.occurred_at  # the carrier's time, not the event's
    assert document.shipment.shipped_at == at(2)
    calls = list(world.oms.calls)
    world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1", at(2))
    assert world.oms.calls == calls
    assert world.oms.calls.index("create_shipment") < world.oms.calls.index("mark_delivered")


def test_delivery_time_falls_back_to_the_event_time(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", DELIVERED, {"A1": 2}, track=tracker()))
    world.sync("PACKAGE_DELIVERED", "P1", at(40))
    [document] = world.oms.documents.values()
    assert document.delivered_at == at(40)


def test_each_new_milestone_is_recorded_once(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker()))
    world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1")
    for hours, code in ((5, "IN_TRANSIT"), (5, "IN_TRANSIT"), (20, "OUT_FOR_DELIVERY"), (20, "OUT_FOR_DELIVERY")):
        world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker(code=code, when=at(hours))))
        world.sync("PACKAGE_TRACKER_MILESTONE_CHANGED")
    [document] = world.oms.documents.values()
    codes = [t.latest_milestone.code for t in document.trackers if t.latest_milestone]
    assert codes == ["IN_TRANSIT", "OUT_FOR_DELIVERY"]
    assert document.trackers[-1].tracking_url == "https://track.example/1Z999"
    assert document.trackers[-1].latest_milestone.locality == "Seattle"


@pytest.mark.parametrize("code", ["LOST", "UNDELIVERABLE"])
def test_a_failure_milestone_is_recorded_and_notified_once(world: World, code: str) -> None:
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker()))
    world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1")
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker(code=code, when=at(50))))
    world.sync("PACKAGE_TRACKER_MILESTONE_CHANGED")
    world.sync("PACKAGE_TRACKER_MILESTONE_CHANGED")
    [document] = world.oms.documents.values()
    assert document.failure == f"carrier reports {code}"
    assert document.failed_at == at(50)
    assert len(world.notifier.sent) == 1
    [sent] = world.notifier.sent
    assert sent.kind == "delivery_failure"
    assert "SO-1" in sent.subject and "P1" in sent.subject and code in sent.text
    assert sent.details["document_id"] == document.document_id and sent.details["tracking_number"] == "1Z999"
    assert world.oms_calls("record_delivery_failure") == 1


def test_undeliverable_package_never_seen_in_transit_gets_a_document_and_a_failure(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 2}, reason=CancellationReason.UNDELIVERABLE,
                                             track=tracker(code="RETURN_TO_SENDER", when=at(60))))
    outcome = world.sync("PACKAGE_DELIVERY_CANCELLED", "P1", at(61))
    [document] = world.oms.documents.values()
    assert document.failure == "package cancelled by Amazon: UNDELIVERABLE"
    assert document.failed_at == at(61)
    assert len(world.notifier.sent) == 1
    assert "delivery failure" in outcome
    assert world.oms_calls("apply_cancellations") == 0  # shipped and lost is not an order cancellation


def test_a_lost_response_after_create_does_not_create_twice(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker()))
    world.oms.crash_after_next_create()
    with pytest.raises(TransientError):
        world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1")
    assert world.store.get_package("fakeoms", "SO-1", "P1") is None
    world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P1")
    assert len(world.oms.documents) == 1
    assert world.store.get_package("fakeoms", "SO-1", "P1") is not None


def test_a_failure_between_create_and_delivered_is_finished_by_the_retry(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", DELIVERED, {"A1": 2}, track=tracker("1Z1", "DELIVERED", at(9))))
    original = world.oms.mark_delivered
    failures = [TransientError("document locked")]

    def flaky(*args: object) -> None:
        if failures:
            raise failures.pop()
        original(*args)  # type: ignore[arg-type]

    world.oms.mark_delivered = flaky  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        world.sync()
    [document] = world.oms.documents.values()
    assert document.delivered_at is None
    world.sync()
    assert len(world.oms.documents) == 1 and document.delivered_at == at(9)
    assert world.oms_calls("create_shipment") == 1  # the record of the first attempt spared a second


def test_every_package_of_the_order_is_brought_in_line(world: World) -> None:
    """A missed event is repaired by the next event of the same order."""
    world.amazon.set_packages(ORDER, package("P1", DELIVERED, {"A1": 2}, track=tracker("1Z1", "DELIVERED", at(9))),
                              package("P2", IN_TRANSIT, {"A2": 1}, track=tracker("1Z2")))
    world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P2")
    assert {d.shipment.package_id: d.delivered_at for d in world.oms.documents.values()} == {"P1": at(9),
                                                                                             "P2": None}


def test_pending_and_customer_cancelled_packages_get_no_document(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", PackageState.PENDING, {"A1": 2}),
                              package("P2", CANCELLED, {"A2": 1}, reason=CancellationReason.CUSTOMER_REQUESTED))
    world.sync("PACKAGE_DELIVERY_CANCELLED", "P2")
    assert world.oms.documents == {}


def test_lines_map_through_line_aliases_when_the_link_has_no_line_ids() -> None:
    world = World()
    world.store.links.clear()
    world.amazon.add_order("322-ALIAS", {"B1": 1}, aliases=(Alias("FAKE_ORDER", "SO-9"),),
                           line_aliases={"B1": Alias("FAKE_LINE", "SO-9/000030")})
    world.amazon.set_packages("322-ALIAS", package("P9", IN_TRANSIT, {"B1": 1}, track=tracker()))
    outcome = world.events.sync_order("322-ALIAS")
    [document] = world.oms.documents.values()
    assert document.oms_order_id == "SO-9"
    assert [line.oms_line_id for line in document.shipment.lines] == ["000030"]
    assert "SO-9" in outcome


def test_an_unmapped_line_is_a_permanent_error_naming_the_line(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A9": 1}, track=tracker()))
    with pytest.raises(PermanentError, match="A9"):
        world.sync()
    assert world.oms.documents == {}


def test_an_order_of_no_connected_oms_is_ignored(world: World) -> None:
    world.amazon.add_order("322-OTHER", {"X": 1}, aliases=(Alias("SOMEONE_ELSE", "1"),))
    world.amazon.set_packages("322-OTHER", package("PX", IN_TRANSIT, {"X": 1}))
    assert world.events.sync_order("322-OTHER").startswith("ignored")
    assert world.oms.calls == []


def test_an_order_amazon_does_not_show_yet_is_retried(world: World) -> None:
    world.amazon.hidden.add(ORDER)
    with pytest.raises(TransientError):
        world.sync()


def test_a_package_the_order_does_not_show_yet_is_retried_after_the_rest_is_done(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker()))
    with pytest.raises(TransientError, match="P7"):
        world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P7")
    assert len(world.oms.documents) == 1


def test_alias_conflicts_are_noted_not_raised(world: World) -> None:
    full = tuple(Alias(f"T{i}", str(i)) for i in range(5))
    world.amazon.set_packages(ORDER, package("P1", IN_TRANSIT, {"A1": 2}, track=tracker(), aliases=full))
    world.sync()
    assert len(world.oms.documents) == 1
    [note] = world.store.notes_for("package alias")
    assert "5 aliases" in note[2]
    world.sync()
    assert len(world.store.notes_for("package alias")) == 1


def test_a_refused_cancellation_does_not_hold_back_the_shipment(world: World) -> None:
    world.oms.reject_cancellations = True
    world.amazon.set_packages(ORDER, package("P1", CANCELLED, {"A1": 1}, reason=CancellationReason.UNFULFILLABLE),
                              package("P2", IN_TRANSIT, {"A1": 1}, track=tracker()))
    with pytest.raises(Rejected):
        world.sync("PACKAGE_DELIVERY_IN_TRANSIT", "P2")
    assert [d.shipment.package_id for d in world.oms.documents.values()] == ["P2"]


def test_handle_reads_order_and_package_from_the_event_resources(world: World) -> None:
    world.amazon.set_packages(ORDER, package("P1", DELIVERED, {"A1": 2}, track=tracker()))
    event = event_from_json({
        "eventId": "e-1", "eventDescriptor": "PACKAGE_DELIVERED", "eventTime": "2025-03-04T10:00:00Z",
        "resources": [f"businessProduct/bp-1/order/{ORDER}/delivery/P1"]})
    world.events.handle(event)
    [document] = world.oms.documents.values()
    assert document.delivered_at is not None and document.delivered_at.isoformat() == "2025-03-04T10:00:00+00:00"


def test_an_event_without_an_order_is_rejected(world: World) -> None:
    event = event_from_json({"eventId": "e-2", "eventDescriptor": "PACKAGE_TRACKER_MILESTONE_CHANGED",
                             "resources": ["businessProduct/bp-1/carrier/ups/tracker/1Z"]})
    with pytest.raises(Rejected, match="names no order"):
        world.events.handle(event)
