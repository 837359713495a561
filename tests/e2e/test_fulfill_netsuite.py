"""NetSuite → Buy with Prime end to end: real HTTP into primebridge, the NetSuite and Amazon sandboxes
behind it, outcomes read back from the sandboxes (not from primebridge's own tables)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from primebridge.flows.oms_to_amazon.fulfill_with_amazon import watermark_text
from primebridge.sandbox.profile import NETSUITE_INTEGRATION_USER
from tests.e2e import harness
from tests.e2e.harness import BOTH_STORES, Bridge, Sandboxes, assert_fulfilled, make_bridge

sandboxes = harness.sandboxes
store_url = harness.store_url
bridge = harness.bridge

UNCHANGED = "unchanged since last sync"
EVENTS = "/events/netsuite"


@BOTH_STORES
def test_user_event_push_creates_the_amazon_order_and_writes_the_ids_back(bridge: Bridge) -> None:
    order_id = bridge.seeder.netsuite_order(lines=2, mixed=True)

    response = bridge.push_netsuite(order_id)

    assert response.status_code == 202
    assert response.json()["status"] == "accepted" and response.json()["jobs"] == 1
    bridge.run_until_idle()
    (job,) = bridge.jobs()
    assert job.status == "done", job.last_error
    order = assert_fulfilled(bridge, "netsuite", order_id)
    _, lines = bridge.seeder.netsuite_amazon_ids(order_id)
    assert sorted(lines) == ["1", "2", "3"]  # two Amazon lines and the merchant's own line
    providers = sorted(line["deliveryOffer"]["details"]["deliveryProvider"] for line in order["lineItems"])
    assert providers == ["AMAZON", "AMAZON", "MERCHANT"]
    record = bridge.seeder.netsuite_view(order_id)
    assert record["_sandbox"]["lastModifiedBy"] == NETSUITE_INTEGRATION_USER  # written with our token


def test_a_prime_order_reaches_amazon_with_its_shopper_identity(bridge: Bridge) -> None:
    order_id = bridge.seeder.netsuite_order(prime=True)

    bridge.push_netsuite(order_id)
    bridge.run_until_idle()

    order = assert_fulfilled(bridge, "netsuite", order_id)
    assert order["shopperIdentityGiven"] is True
    assert order["lineItems"][0]["deliveryOffer"]["details"]["deliveryTerms"]["isPrimeEligible"] is True


def _netsuite_changes(bridge: Bridge) -> dict[str, tuple[datetime, str]]:
    listing = bridge.seeder.http.get(f"{bridge.seeder.netsuite_url}/_sandbox/sales-orders").json()["items"]
    return {row["id"]: (datetime.fromisoformat(row["lastModifiedDate"]), row["_sandbox"]["lastModifiedBy"])
            for row in listing}


def test_scheduled_pull_advances_the_watermark_and_repeats_are_no_ops(bridge: Bridge) -> None:
    seeder = bridge.seeder
    ids = [seeder.netsuite_order(), seeder.netsuite_order(held=True), seeder.netsuite_non_amazon_order()]
    seeded = _netsuite_changes(bridge)

    added = bridge.service.pull_orders("netsuite")

    assert added == 3
    assert {json.loads(job.payload)["order_id"] for job in bridge.jobs()} == set(ids)
    first = bridge.service.store.get_watermark("netsuite.sales_orders")
    assert first == watermark_text(max(changed for changed, _ in seeded.values()))
    bridge.run_until_idle()
    assert_fulfilled(bridge, "netsuite", ids[0])
    assert_fulfilled(bridge, "netsuite", ids[1], state="NOT_STARTED")
    created = seeder.amazon_stats()["createOrder.created"]
    assert created == 2

    # Our own write-backs are saved by the integration user and stay out of the poll; what comes
    # again is exactly what others changed in the watermark's second (SuiteQL compares with >=).
    watermark = datetime.fromisoformat(first)
    expected = {order_id for order_id, (changed, by) in _netsuite_changes(bridge).items()
                if changed >= watermark and by != NETSUITE_INTEGRATION_USER}
    before = {job.id for job in bridge.jobs()}
    again = bridge.service.pull_orders("netsuite")
    repeats = [job for job in bridge.jobs() if job.id not in before]

    assert again == len(repeats)
    assert {job.ordering_key.rsplit(":", 1)[1] for job in repeats} == expected
    assert ids[2] in expected  # the newest order, changed in the watermark's own second
    assert not {ids[0], ids[1]} & expected
    assert (bridge.service.store.get_watermark("netsuite.sales_orders") or "") >= first
    bridge.run_until_idle()
    for job in repeats:
        finished = bridge.job(job.id)
        assert finished.status == "done" and finished.outcome.startswith(UNCHANGED), finished.outcome
    assert seeder.amazon_stats()["createOrder.created"] == created


def test_an_order_pending_approval_is_created_not_started_and_released_on_approval(bridge: Bridge) -> None:
    order_id = bridge.seeder.netsuite_order(held=True)

    bridge.push_netsuite(order_id)
    bridge.run_until_idle()

    assert_fulfilled(bridge, "netsuite", order_id, state="NOT_STARTED")
    bridge.seeder.netsuite_release(order_id)
    assert bridge.push_netsuite(order_id).json()["jobs"] == 1
    bridge.run_until_idle()
    assert_fulfilled(bridge, "netsuite", order_id, state="STARTED")
    stats = bridge.seeder.amazon_stats()
    assert stats["createOrder.created"] == 1
    assert stats["updateOrder.released"] == 1


def test_the_hold_checkbox_holds_the_order_too(bridge: Bridge) -> None:
    order_id = bridge.seeder.netsuite_order()
    bridge.seeder.netsuite_change(order_id, {"hold": True})

    bridge.push_netsuite(order_id)
    bridge.run_until_idle()
    assert_fulfilled(bridge, "netsuite", order_id, state="NOT_STARTED")

    bridge.seeder.netsuite_release(order_id)
    bridge.push_netsuite(order_id)
    bridge.run_until_idle()
    assert_fulfilled(bridge, "netsuite", order_id, state="STARTED")


def test_a_redelivered_user_event_is_a_duplicate_and_adds_no_job(bridge: Bridge) -> None:
    order_id = bridge.seeder.netsuite_order()

    first = bridge.push_netsuite(order_id, event_id="ue-1")
    second = bridge.push_netsuite(order_id, event_id="ue-1")

    assert first.status_code == second.status_code == 202
    assert first.json()["status"] == "accepted"
    assert second.json()["status"] == "duplicate" and second.json()["jobs"] == 0
    assert second.json()["message_id"] == first.json()["message_id"]
    assert len(bridge.jobs()) == 1 and bridge.message_count() == 1
    bridge.run_until_idle()
    assert_fulfilled(bridge, "netsuite", order_id)
    assert bridge.seeder.amazon_stats()["createOrder"] == 1


@pytest.mark.parametrize(("kind", "problem"), [
    ({"qty": "0"}, "quantity 0 must be greater than 0"),
    ({"item": "NOT-IN-CATALOG"}, "'NOT-IN-CATALOG' is not in the catalog"),
    ({"ship_to": False}, "no ship-to address"),
])
def test_orders_that_cannot_be_fulfilled_are_rejected_with_a_readable_reason(
        bridge: Bridge, kind: dict[str, Any], problem: str) -> None:
    order_id = bridge.seeder.netsuite_order(**kind)

    assert bridge.push_netsuite(order_id).status_code == 202
    bridge.run_until_idle()

    (job,) = bridge.jobs()
    assert job.status == "rejected" and problem in job.outcome, job.outcome
    notes = [r for r in bridge.service.audit.for_order(order_id) if r.system == "primebridge"]
    assert notes and notes[-1].status == "rejected" and problem in notes[-1].response
    link = bridge.service.store.get_order_link("netsuite", order_id)
    assert link is not None and link.reason and problem in link.reason
    assert bridge.amazon_orders_for("netsuite", order_id) == []
    assert bridge.seeder.netsuite_amazon_ids(order_id) == (None, {})


@pytest.mark.parametrize(("body", "problem"), [
    ("{not json", "not valid JSON"),
    ('["salesorder", 5]', "must be a JSON object"),
    ('{"recordType": "customer", "id": "5", "event": "edit"}', "recordType must be salesorder"),
    ('{"recordType": "salesorder", "id": "5; DROP", "event": "edit"}', "id must be a NetSuite internal id"),
    ('{"recordType": "salesorder", "event": "edit"}', "id must be a NetSuite internal id"),
])
def test_malformed_pushes_get_400_naming_the_problem_and_store_nothing(bridge: Bridge, body: str,
                                                                      problem: str) -> None:
    response = bridge.post(EVENTS, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert bridge.message_count() == 0 and bridge.jobs() == []


def test_a_wrong_intake_token_is_refused_and_nothing_is_stored(sandboxes: Sandboxes, store_url: str) -> None:
    sandboxes.reset()
    guarded = make_bridge(sandboxes, store_url, overrides={"web.intake_token": "e2e-intake-token"})
    try:
        body = harness.netsuite_event(sandboxes.seeder.netsuite_order())
        missing = guarded.post(EVENTS, body)
        wrong = guarded.post(EVENTS, body, headers={"x-primebridge-token": "not-the-token"})
        assert missing.status_code == wrong.status_code == 401
        assert guarded.message_count() == 0 and guarded.jobs() == []
        right = guarded.post(EVENTS, body, headers={"x-primebridge-token": "e2e-intake-token"})
        assert right.status_code == 202
        assert guarded.message_count() == 1 and len(guarded.jobs()) == 1
    finally:
        guarded.close()
