"""The sandbox's packages: one PENDING package on start, ``updateOrderPackageInformation`` transitions,
splits, trackers, errors, and the events each change publishes (read back through the admin API)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sandbox import amazon_package_fixtures
from tests.sandbox.amazon_package_fixtures import BP, Bwp, line, milestone, packages, state

from primebridge.connectors.amazon.client import load_document
from primebridge.sandbox.amazon.packages import MAX_MILESTONES

UPDATE = load_document("updateOrder.graphql")
TRACKER = """
query packageTracker($input: PackageTrackerInput!) {
  packageTracker(packageTrackerInput: $input) {
    packageTrackerIdentifier { trackingNumber carrierCode }
    latestMilestone { status { code } }
    milestones { status { code } }
  }
}
"""

server = amazon_package_fixtures.server
bwp = amazon_package_fixtures.bwp


def contents(package: dict[str, Any]) -> dict[str, int]:
    return {a["lineItem"]["id"]: a["amount"]["value"]
            for a in package["packageInformationDetailsFor"]["orderLineItemAmounts"]}


def delivery(order_id: str, package_id: str) -> list[str]:
    return [f"businessProduct/{BP}/order/{order_id}/delivery/{package_id}"]


# -- the package made on start ----------------------------------------------------------------------

def test_a_started_order_has_one_pending_package_with_its_amazon_lines(bwp: Bwp) -> None:
    order = bwp.create(line("LAMP-1", 2), line("BOOK-1", 1), line("GIFT", 1, provider="MERCHANT"))
    amazon = {item["id"]: item["amount"]["value"] for item in order["lineItems"][:2]}
    [package] = order["packageInformation"]["details"]
    assert package["state"] == "PENDING" and package["reason"] is None and package["packageTracker"] is None
    assert contents(package) == amazon
    assert order["packageInformation"]["summary"] == {"state": "PENDING"}
    assert bwp.events() == []


def test_a_held_order_gets_its_package_when_released(bwp: Bwp) -> None:
    order = bwp.create(line(value=3), started=False)
    assert order["packageInformation"]["details"] == []
    released = bwp.ok(UPDATE, {"orderIdentifier": {"orderId": order["id"]},
                               "input": {"desiredExecutionState": "STARTED"}})["updateOrder"]["order"]
    [package] = released["packageInformation"]["details"]
    assert contents(package) == {order["lineItems"][0]["id"]: 3}


# -- transitions and their events -------------------------------------------------------------------

def test_ship_then_deliver(bwp: Bwp) -> None:
    order = bwp.create()
    [package_id] = packages(order)
    shipped = packages(bwp.update(order["id"], state(package_id, "IN_TRANSIT")))[package_id]
    tracker = shipped["packageTracker"]
    assert shipped["state"] == "IN_TRANSIT"
    assert tracker["packageTrackerIdentifier"]["carrierCode"] == "ups"
    assert tracker["packageTrackerIdentifier"]["trackingNumber"].startswith("1Z")
    assert tracker["trackingUrl"] and tracker["estimatedDeliveryDate"]["earliest"]
    assert tracker["latestMilestone"]["status"]["code"] == "IN_TRANSIT"
    delivered = bwp.update(order["id"], state(package_id, "DELIVERED"))
    assert packages(delivered)[package_id]["state"] == "DELIVERED"
    assert delivered["packageInformation"]["summary"] == {"state": "DELIVERED"}
    assert [(e["eventType"], e["resources"]) for e in bwp.events()] == [
        ("PACKAGE_DELIVERY_IN_TRANSIT", delivery(order["id"], package_id)),
        ("PACKAGE_DELIVERED", delivery(order["id"], package_id)),
    ]
    assert all(e["data"] == {} and e["eventId"] for e in bwp.events())


@pytest.mark.parametrize("reason", ["CUSTOMER_REQUESTED", "UNFULFILLABLE"])
def test_cancel_before_shipping_requests_a_refund(bwp: Bwp, reason: str) -> None:
    order = bwp.create(line(value=2))
    [package_id] = packages(order)
    cancelled = packages(bwp.update(order["id"], state(package_id, "CANCELLED", reason)))[package_id]
    assert (cancelled["state"], cancelled["reason"]) == ("CANCELLED", reason)
    [refund] = bwp.http.get(f"/_sandbox/orders/{order['id']}").json()["refunds"]
    assert refund["state"] == "PENDING" and len(refund["id"]) == 64
    assert refund["refundFor"]["orderLineItems"][0]["amount"] == {"value": 2}
    assert [(e["eventType"], e["resources"]) for e in bwp.events()] == [
        ("PACKAGE_DELIVERY_CANCELLED", delivery(order["id"], package_id)),
        ("REFUND_REQUESTED", [f"businessProduct/{BP}/order/{order['id']}/refund/{refund['id']}"]),
    ]


def test_undeliverable_after_shipping(bwp: Bwp) -> None:
    order = bwp.create()
    [package_id] = packages(order)
    bwp.update(order["id"], state(package_id, "IN_TRANSIT"))
    assert bwp.refused(order["id"], state(package_id, "CANCELLED", "CUSTOMER_REQUESTED")) == (
        "ValidationError", "InvalidPackageDeliveryDetailStateTransition")
    cancelled = packages(bwp.update(order["id"], state(package_id, "CANCELLED", "UNDELIVERABLE")))[package_id]
    assert (cancelled["state"], cancelled["reason"]) == ("CANCELLED", "UNDELIVERABLE")
    assert [e["eventType"] for e in bwp.events()] == [
        "PACKAGE_DELIVERY_IN_TRANSIT", "PACKAGE_DELIVERY_CANCELLED", "REFUND_REQUESTED"]


@pytest.mark.parametrize(("before", "entry", "code"), [
    ([], lambda p: state(p, "DELIVERED"), "InvalidPackageDeliveryDetailStateTransition"),
    ([], lambda p: state(p, "PENDING"), "InvalidPackageDeliveryDetailStateTransition"),
    ([], lambda p: state(p, "CANCELLED", "UNDELIVERABLE"), "InvalidPackageDeliveryDetailStateTransition"),
    ([], lambda p: state(p, "CANCELLED"), "MissingCancellationReason"),
    ([], lambda p: state(p, "IN_TRANSIT", "UNFULFILLABLE"), "UnexpectedCancellationReason"),
    ([], lambda p: state("no-such-package", "IN_TRANSIT"), "PackageInformationDetailIdNotFound"),
    ([], lambda p: {"id": p, "packageState": {}}, "ConflictingPackageStateInput"),
    ([], lambda p: {"id": p, "packageState": {
        "packageInformationState": {"state": "IN_TRANSIT"},
        "packageTrackerState": {"packageTrackerIdentifier": {"trackingNumber": "1Z", "carrierCode": "ups"},
                                "state": "DELIVERED"}}}, "ConflictingPackageStateInput"),
    (["IN_TRANSIT", "DELIVERED"], lambda p: state(p, "CANCELLED", "UNDELIVERABLE"),
     "InvalidPackageDeliveryDetailStateTransition"),
    ([("CANCELLED", "UNFULFILLABLE")], lambda p: state(p, "IN_TRANSIT"),
     "InvalidPackageDeliveryDetailStateTransition"),
])
def test_refused_updates_change_nothing(bwp: Bwp, before: list[Any], entry: Any, code: str) -> None:
    order = bwp.create()
    [package_id] = packages(order)
    for step in before:
        target, reason = step if isinstance(step, tuple) else (step, None)
        bwp.update(order["id"], state(package_id, target, reason))
    published = bwp.events()
    snapshot = bwp.http.get(f"/_sandbox/orders/{order['id']}").json()
    assert bwp.refused(order["id"], entry(package_id)) == ("ValidationError", code)
    assert bwp.events() == published
    assert bwp.http.get(f"/_sandbox/orders/{order['id']}").json() == snapshot


def test_an_invalid_entry_rejects_the_whole_call(bwp: Bwp) -> None:
    first = bwp.create()
    [package_id] = packages(first)
    assert bwp.refused(first["id"], state(package_id, "IN_TRANSIT"),
                       state("unknown", "IN_TRANSIT"))[1] == "PackageInformationDetailIdNotFound"
    assert packages(bwp.ok(load_document("order.graphql"), {"orderIdentifier": {"orderId": first["id"]}})[
        "order"])[package_id]["state"] == "PENDING"


# -- splits -----------------------------------------------------------------------------------------

def test_part_cancelled_rest_shipped_keeps_the_original_id_for_the_rest(bwp: Bwp) -> None:
    order = bwp.create(line("LAMP-1", 3), line("BOOK-1", 1))
    lamp, book = (item["id"] for item in order["lineItems"])
    [package_id] = packages(order)
    after = packages(bwp.update(order["id"], state(package_id, "CANCELLED", "UNFULFILLABLE", {lamp: 1}),
                                state(package_id, "IN_TRANSIT")))
    assert len(after) == 2
    rest = after.pop(package_id)
    [(new_id, split)] = after.items()
    assert (rest["state"], contents(rest)) == ("IN_TRANSIT", {lamp: 2, book: 1})
    assert (split["state"], split["reason"], contents(split)) == ("CANCELLED", "UNFULFILLABLE", {lamp: 1})
    assert [(e["eventType"], e["resources"]) for e in bwp.events()[:2]] == [
        ("PACKAGE_DELIVERY_CANCELLED", delivery(order["id"], new_id)),
        ("REFUND_REQUESTED", bwp.events()[1]["resources"]),
    ]
    assert (bwp.events()[2]["eventType"], bwp.events()[2]["resources"]) == (
        "PACKAGE_DELIVERY_IN_TRANSIT", delivery(order["id"], package_id))
    # The line-level view lists both packages of the split line, the other line only the rest.
    lines = {item["id"]: item for item in bwp.http.get(f"/_sandbox/orders/{order['id']}").json()["lineItems"]}
    assert {d["id"] for d in lines[lamp]["packageInformation"]["details"]} == {package_id, new_id}
    assert [d["id"] for d in lines[book]["packageInformation"]["details"]] == [package_id]


def test_split_that_takes_everything_gives_the_first_part_the_original_id(bwp: Bwp) -> None:
    """The documented example: one unit cancelled as unfulfillable, the other shipped."""
    order = bwp.create(line("LAMP-1", 2))
    lamp = order["lineItems"][0]["id"]
    [package_id] = packages(order)
    after = packages(bwp.update(order["id"], state(package_id, "CANCELLED", "UNFULFILLABLE", {lamp: 1}),
                                state(package_id, "IN_TRANSIT", amounts={lamp: 1})))
    original = after.pop(package_id)
    [other] = after.values()
    assert (original["state"], contents(original)) == ("CANCELLED", {lamp: 1})
    assert (other["state"], contents(other)) == ("IN_TRANSIT", {lamp: 1})
    assert order["id"] and bwp.ok(load_document("order.graphql"), {"orderIdentifier": {"orderId": order["id"]}})[
        "order"]["packageInformation"]["summary"] == {"state": "IN_TRANSIT"}


def test_a_split_leaves_the_rest_pending(bwp: Bwp) -> None:
    order = bwp.create(line("LAMP-1", 3))
    lamp = order["lineItems"][0]["id"]
    [package_id] = packages(order)
    after = packages(bwp.update(order["id"], state(package_id, "IN_TRANSIT", amounts={lamp: 2})))
    assert (after[package_id]["state"], contents(after[package_id])) == ("PENDING", {lamp: 1})
    assert [e["eventType"] for e in bwp.events()] == ["PACKAGE_DELIVERY_IN_TRANSIT"]


@pytest.mark.parametrize(("amounts", "code"), [
    (lambda lamp: {lamp: 3}, "InvalidOrderLineItemAmount"),
    (lambda lamp: {"other-line": 1}, "InvalidOrderLineItemAmount"),
    (lambda lamp: {lamp: 0}, "InvalidOrderLineItemAmount"),
])
def test_split_quantities_are_checked(bwp: Bwp, amounts: Any, code: str) -> None:
    order = bwp.create(line("LAMP-1", 2))
    [package_id] = packages(order)
    assert bwp.refused(order["id"], state(package_id, "IN_TRANSIT", amounts=amounts(order["lineItems"][0]["id"]))
                       ) == ("ValidationError", code)


def test_only_a_pending_package_splits(bwp: Bwp) -> None:
    order = bwp.create(line("LAMP-1", 2))
    lamp = order["lineItems"][0]["id"]
    [package_id] = packages(order)
    bwp.update(order["id"], state(package_id, "IN_TRANSIT"))
    assert bwp.refused(order["id"], state(package_id, "DELIVERED", amounts={lamp: 1})) == (
        "ValidationError", "InvalidPackageSplit")


def test_two_states_for_the_whole_package_conflict(bwp: Bwp) -> None:
    order = bwp.create(line("LAMP-1", 2))
    [package_id] = packages(order)
    assert bwp.refused(order["id"], state(package_id, "IN_TRANSIT"), state(package_id, "CANCELLED", "UNFULFILLABLE")
                       ) == ("ValidationError", "ConflictingPackageStateInput")


# -- trackers ---------------------------------------------------------------------------------------

def shipped(bwp: Bwp) -> tuple[dict[str, Any], str, dict[str, Any]]:
    order = bwp.create()
    [package_id] = packages(order)
    tracker = packages(bwp.update(order["id"], state(package_id, "IN_TRANSIT")))[package_id]["packageTracker"]
    return order, package_id, tracker


def test_milestones_are_recorded_and_published(bwp: Bwp) -> None:
    order, package_id, tracker = shipped(bwp)
    ident = tracker["packageTrackerIdentifier"]
    after = bwp.update(order["id"], milestone(package_id, tracker, "OUT_FOR_DELIVERY",
                                              occurredAt="2025-01-20T12:00:00Z",
                                              address={"locality": "Tacoma", "region": "WA", "country": "US"}),
                       milestone(package_id, tracker, "LOST"))
    package = packages(after)[package_id]
    assert package["state"] == "IN_TRANSIT"  # LOST is only recorded
    assert [m["status"]["code"] for m in package["packageTracker"]["milestones"]] == [
        "IN_TRANSIT", "OUT_FOR_DELIVERY", "LOST"]
    out = package["packageTracker"]["milestones"][1]
    assert out["occurredAt"] == "2025-01-20T12:00:00Z" and out["address"]["locality"] == "Tacoma"
    assert package["packageTracker"]["latestMilestone"]["status"]["code"] == "LOST"
    resource = (f"businessProduct/{BP}/order/{order['id']}/carrier/{ident['carrierCode']}"
                f"/tracker/{ident['trackingNumber']}")
    assert [(e["eventType"], e["resources"]) for e in bwp.events()[1:]] == [
        ("PACKAGE_TRACKER_MILESTONE_CHANGED", [resource])] * 2
    found = bwp.ok(TRACKER, {"input": {"packageTrackerIdentifier": ident}})["packageTracker"]
    assert found["latestMilestone"]["status"]["code"] == "LOST" and len(found["milestones"]) == 3


def test_a_delivered_milestone_delivers_the_package(bwp: Bwp) -> None:
    order, package_id, tracker = shipped(bwp)
    after = packages(bwp.update(order["id"], milestone(package_id, tracker, "DELIVERED")))[package_id]
    assert after["state"] == "DELIVERED"
    assert [e["eventType"] for e in bwp.events()] == [
        "PACKAGE_DELIVERY_IN_TRANSIT", "PACKAGE_TRACKER_MILESTONE_CHANGED", "PACKAGE_DELIVERED"]
    assert bwp.refused(order["id"], milestone(package_id, tracker, "RETURN_TO_SENDER")) == (
        "ValidationError", "InvalidPackageDeliveryDetailStateTransition")


def test_tracker_errors(bwp: Bwp) -> None:
    order = bwp.create()
    [package_id] = packages(order)
    fake = {"packageTrackerIdentifier": {"trackingNumber": "1ZNOPE", "carrierCode": "ups"}}
    assert bwp.refused(order["id"], milestone(package_id, fake, "IN_TRANSIT")) == (
        "ValidationError", "PackageTrackerNotAvailableForUpdate")
    bwp.update(order["id"], state(package_id, "IN_TRANSIT"))
    assert bwp.refused(order["id"], milestone(package_id, fake, "IN_TRANSIT")) == (
        "ResourceNotFoundError", "PackageTrackerNotFound")
    assert bwp.code(TRACKER, {"input": fake}) == ("ResourceNotFoundError", "PackageTrackerNotFound")


def test_tracker_milestone_limit(bwp: Bwp) -> None:
    order, package_id, tracker = shipped(bwp)
    entries = [milestone(package_id, tracker, "IN_TRANSIT")] * (MAX_MILESTONES - 1)
    bwp.update(order["id"], *entries)
    assert bwp.refused(order["id"], milestone(package_id, tracker, "DELAYED")) == (
        "ValidationError", "UpdatePackageTrackerLimitExceeded")


def test_package_aliases_through_update_order_are_append_only(bwp: Bwp) -> None:
    order = bwp.create()
    [package_id] = packages(order)
    alias = {"aliasType": "OMS_DELIVERY_ID", "aliasId": "80000001"}
    update = {"orderIdentifier": {"orderId": order["id"]},
              "input": {"packageInformation": {"details": [{"id": package_id, "aliases": [alias]}]}}}
    for _ in range(2):  # a second identical call is not an error and adds nothing
        result = bwp.ok(UPDATE, update)["updateOrder"]["order"]
        assert packages(result)[package_id]["aliases"] == [alias]


# -- admin: arbitrary events ------------------------------------------------------------------------

def test_admin_publishes_arbitrary_events(bwp: Bwp) -> None:
    response = bwp.http.post("/_sandbox/events", json={"eventType": "INVENTORY_CHANGED",
                                                       "resources": ["inventory-item/ii-1"]})
    assert response.status_code == 201, response.text
    assert response.json()["event"]["resources"] == [f"businessProduct/{BP}/inventory-item/ii-1"]
    assert response.json()["deliveries"] == 0
    full = f"businessProduct/{BP}/order/1/delivery/2"
    bwp.http.post("/_sandbox/events", json={"eventType": "PACKAGE_DELIVERED", "resources": [full],
                                            "data": {"order": {"id": "1"}}})
    assert [(e["eventType"], e["resources"], e["data"]) for e in bwp.events()] == [
        ("INVENTORY_CHANGED", [f"businessProduct/{BP}/inventory-item/ii-1"], {}),
        ("PACKAGE_DELIVERED", [full], {"order": {"id": "1"}})]
    for bad in ({}, {"eventType": 3}, {"eventType": "X", "resources": "nope"}, {"eventType": "X", "data": []}):
        assert bwp.http.post("/_sandbox/events", json=bad).status_code == 400


# -- the driver the demo and end-to-end tests use ---------------------------------------------------

def test_driver_ships_splits_tracks_and_delivers(bwp: Bwp) -> None:
    from primebridge.sandbox.amazon.driver import SandboxDriver, SandboxError

    order = bwp.create(line("LAMP-1", 2))
    lamp = order["lineItems"][0]["id"]
    driver = SandboxDriver(bwp.url)
    try:
        [package] = driver.packages(order["id"])
        after = driver.cancel(order["id"], package["id"], "UNFULFILLABLE", {lamp: 1})
        assert sorted(p["state"] for p in after) == ["CANCELLED", "PENDING"]
        with pytest.raises(SandboxError) as refused:
            driver.milestone(order["id"], package["id"], "OUT_FOR_DELIVERY")
        assert refused.value.code == "PackageTrackerNotAvailableForUpdate"
        driver.ship(order["id"], package["id"])
        driver.milestone(order["id"], package["id"], "OUT_FOR_DELIVERY")
        final = {p["id"]: p for p in driver.milestone(order["id"], package["id"], "DELIVERED")}
        assert final[package["id"]]["state"] == "DELIVERED"
        bwp.app.state.sandbox.revoke_tokens()  # the driver renews its token after a 401
        assert driver.emit("INVENTORY_CHANGED", "inventory-item/1")["deliveries"] == 0
        assert driver.drain(1)["drained"] is True
        assert [e["eventType"] for e in bwp.events()] == [
            "PACKAGE_DELIVERY_CANCELLED", "REFUND_REQUESTED", "PACKAGE_DELIVERY_IN_TRANSIT",
            "PACKAGE_TRACKER_MILESTONE_CHANGED", "PACKAGE_TRACKER_MILESTONE_CHANGED", "PACKAGE_DELIVERED",
            "INVENTORY_CHANGED"]
        assert driver.packages(order["id"]) == list(final.values())
    finally:
        driver.close()
