"""SAP S/4HANA → Buy with Prime end to end: real HTTP into primebridge, the SAP and Amazon sandboxes
behind it, outcomes read back from the sandboxes (not from primebridge's own tables)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from primebridge.flows.oms_to_amazon.fulfill_with_amazon import watermark_text
from tests.e2e import harness
from tests.e2e.harness import BOTH_STORES, Bridge, Sandboxes, assert_fulfilled, make_bridge, sap_soap

sandboxes = harness.sandboxes
store_url = harness.store_url
bridge = harness.bridge

UNCHANGED = "unchanged since last sync"
CLOUD_EVENTS = "/events/sap/business-events"
SOAP = "/events/sap/soap"


@BOTH_STORES
def test_business_event_push_creates_the_amazon_order_and_writes_the_ids_back(bridge: Bridge) -> None:
    order_id = bridge.seeder.sap_order(lines=2)

    response = bridge.push_sap(order_id)

    assert response.status_code == 202
    assert response.json()["status"] == "accepted" and response.json()["jobs"] == 1
    bridge.run_until_idle()
    (job,) = bridge.jobs()
    assert job.status == "done", job.last_error
    order = assert_fulfilled(bridge, "sap", order_id)
    _, lines = bridge.seeder.sap_amazon_ids(order_id)
    assert sorted(lines) == ["10", "20"]
    assert job.outcome.startswith(f"Amazon order {order['id']} (STARTED)")


def test_soap_notification_push_is_processed_like_a_business_event(bridge: Bridge) -> None:
    order_id = bridge.seeder.sap_order(prime=True)

    response = bridge.post(SOAP, content=sap_soap(order_id), headers={"content-type": "text/xml"})

    assert response.status_code == 202 and response.json()["order_id"] == order_id
    bridge.run_until_idle()
    order = assert_fulfilled(bridge, "sap", order_id)
    assert order["shopperIdentityGiven"] is True


def _ms(moment: datetime) -> datetime:
    """SAP's JSON shows LastChangeDateTime to the millisecond: the pull sees this precision."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _sap_change_times(bridge: Bridge) -> dict[str, datetime]:
    listing = bridge.seeder.http.get(f"{bridge.seeder.sap_url}/_sandbox/sales-orders").json()["orders"]
    return {row["id"]: _ms(datetime.fromisoformat(row["last_change"]).astimezone(UTC)) for row in listing}


def test_scheduled_pull_advances_the_watermark_and_repeats_are_no_ops(bridge: Bridge) -> None:
    seeder = bridge.seeder
    ids = [seeder.sap_order(), seeder.sap_order(mixed=True), seeder.sap_non_amazon_order()]
    seeded = _sap_change_times(bridge)

    added = bridge.service.pull_orders("sap")

    assert added == 3
    assert {json.loads(job.payload)["order_id"] for job in bridge.jobs()} == set(ids)
    first = bridge.service.store.get_watermark("sap.sales_orders")
    assert first == watermark_text(max(seeded.values()))
    bridge.run_until_idle()
    assert_fulfilled(bridge, "sap", ids[0])
    assert_fulfilled(bridge, "sap", ids[1])
    created = seeder.amazon_stats().get("createOrder.created")
    assert created == 2

    # Everything changed at or after the watermark comes again: the same-instant order(s) and the
    # echoes of our own write-backs. Nothing else, and each repeat is a no-op.
    watermark = datetime.fromisoformat(first)
    expected = {order_id for order_id, changed in _sap_change_times(bridge).items() if changed >= watermark}
    before = {job.id for job in bridge.jobs()}
    again = bridge.service.pull_orders("sap")
    repeats = [job for job in bridge.jobs() if job.id not in before]

    assert again == len(repeats)
    assert {job.ordering_key.rsplit(":", 1)[1] for job in repeats} == expected
    assert ids[2] in expected  # the newest order shares the watermark's instant
    second = bridge.service.store.get_watermark("sap.sales_orders")
    assert second is not None and second >= first
    bridge.run_until_idle()
    for job in repeats:
        finished = bridge.job(job.id)
        assert finished.status == "done" and finished.outcome.startswith(UNCHANGED), finished.outcome
    assert seeder.amazon_stats().get("createOrder.created") == created
    assert seeder.amazon_stats().get("updateOrder") is None


def test_held_order_is_created_not_started_and_released_when_the_block_is_removed(bridge: Bridge) -> None:
    order_id = bridge.seeder.sap_order(held=True)

    bridge.push_sap(order_id, change="Created")
    bridge.run_until_idle()

    assert_fulfilled(bridge, "sap", order_id, state="NOT_STARTED")
    bridge.seeder.sap_release(order_id)
    assert bridge.push_sap(order_id).json()["jobs"] == 1
    bridge.run_until_idle()
    assert_fulfilled(bridge, "sap", order_id, state="STARTED")
    stats = bridge.seeder.amazon_stats()
    assert stats["createOrder.created"] == 1
    assert stats["updateOrder.released"] == 1


def test_a_redelivered_cloud_event_is_a_duplicate_and_adds_no_job(bridge: Bridge) -> None:
    order_id = bridge.seeder.sap_order()

    first = bridge.push_sap(order_id, event_id="event-1")
    second = bridge.push_sap(order_id, event_id="event-1")

    assert first.status_code == second.status_code == 202
    assert first.json()["status"] == "accepted"
    assert second.json() == {**second.json(), "status": "duplicate", "jobs": 0,
                             "message_id": first.json()["message_id"]}
    assert len(bridge.jobs()) == 1 and bridge.message_count() == 1
    soap = sap_soap(order_id)
    assert bridge.post(SOAP, content=soap).json()["status"] == "accepted"
    assert bridge.post(SOAP, content=soap).json()["status"] == "duplicate"
    bridge.run_until_idle()
    assert_fulfilled(bridge, "sap", order_id)
    assert bridge.seeder.amazon_stats()["createOrder"] == 1


def test_a_real_change_after_the_write_back_is_not_mistaken_for_an_echo(bridge: Bridge) -> None:
    order_id = bridge.seeder.sap_order(held=True)
    bridge.push_sap(order_id)
    bridge.run_until_idle()
    bridge.seeder.sap_change(order_id, {"purchase_order": "PO-2"})  # a user's edit, not our write-back
    bridge.push_sap(order_id)
    bridge.run_until_idle()
    assert not bridge.jobs()[-1].outcome.startswith(UNCHANGED)  # re-evaluated, not swallowed as an echo
    assert_fulfilled(bridge, "sap", order_id, state="NOT_STARTED")
    assert bridge.seeder.amazon_stats()["createOrder"] == 1


def test_orders_that_cannot_be_fulfilled_are_rejected_with_a_readable_reason(bridge: Bridge) -> None:
    no_ship_to = bridge.seeder.sap_order(ship_to=False)
    unknown_sku = bridge.seeder.sap_order(material="NOT-IN-CATALOG")

    for order_id in (no_ship_to, unknown_sku):
        assert bridge.push_sap(order_id).status_code == 202
    bridge.run_until_idle()

    (ship_job,) = bridge.jobs("sap", no_ship_to)
    assert ship_job.status == "rejected" and "ship-to" in ship_job.outcome
    notes = [(r.operation, r.status, r.response) for r in bridge.service.audit.for_order(no_ship_to)
             if r.system == "primebridge"]
    assert ("validate", "rejected", ship_job.outcome) in notes
    (sku_job,) = bridge.jobs("sap", unknown_sku)
    assert sku_job.status == "rejected" and "NOT-IN-CATALOG" in sku_job.outcome
    operations = [(r.system, r.operation, r.status) for r in bridge.service.audit.for_order(unknown_sku)]
    assert ("primebridge", "create", "rejected") in operations
    assert any(system == "amazon" and "createOrder" in op for system, op, _ in operations)
    for order_id in (no_ship_to, unknown_sku):
        assert bridge.amazon_orders_for("sap", order_id) == []
        assert bridge.seeder.sap_amazon_ids(order_id) == (None, {})


@pytest.mark.parametrize(("path", "body", "problem"), [
    (CLOUD_EVENTS, "{not json", "not valid JSON"),
    (CLOUD_EVENTS, '["a list"]', "expected a JSON object"),
    (CLOUD_EVENTS, '{"type": "sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1", "data": {}}',
     "is not a sales order event"),
    (CLOUD_EVENTS, '{"specversion": "1.0", "type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1", '
                   '"id": "e1", "data": {}}', "data.SalesOrder"),
    (SOAP, "<Envelope><Body>", "malformed XML"),
    (SOAP, '<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "DTD"),
    (SOAP, "<Envelope><Body><Note><Text>hello</Text></Note></Body></Envelope>", "no sales order number"),
    (SOAP, "", "empty"),
])
def test_malformed_pushes_get_400_naming_the_problem_and_store_nothing(bridge: Bridge, path: str, body: str,
                                                                      problem: str) -> None:
    response = bridge.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert bridge.message_count() == 0 and bridge.jobs() == []


def test_a_wrong_intake_token_is_refused_and_nothing_is_stored(sandboxes: Sandboxes, store_url: str) -> None:
    sandboxes.reset()
    guarded = make_bridge(sandboxes, store_url, overrides={"web.intake_token": "e2e-intake-token"})
    try:
        order_id = sandboxes.seeder.sap_order()
        body = harness.sap_event(order_id)
        missing = guarded.post(CLOUD_EVENTS, body)
        wrong = guarded.post(CLOUD_EVENTS, body, headers={"authorization": "Bearer not-the-token"})
        assert missing.status_code == wrong.status_code == 401
        assert "token" in wrong.json()["error"]
        assert guarded.message_count() == 0 and guarded.jobs() == []
        right = guarded.post(CLOUD_EVENTS, body, headers={"authorization": "Bearer e2e-intake-token"})
        assert right.status_code == 202
        assert guarded.message_count() == 1
    finally:
        guarded.close()
