"""Parsing Buy with Prime events from the webhook and EventBridge envelopes (domain/events.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from primebridge.domain.errors import Rejected
from primebridge.domain.events import EVENTBRIDGE, WEBHOOK, parse_event, parse_resource

BP = "businessProduct/bp-1f0e2c3a-0000-4000-8000-000000000001"


def webhook(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "idempotencyKey": base64.b64encode(b"sub-1#ev-1").decode(), "eventDescriptor": "PACKAGE_DELIVERED",
        "resources": [f"{BP}/order/322-43Q4-R3S5J8/delivery/95c933bf-aaaa"], "eventId": "ev-1",
        "apiVersion": "2024-11-01", "subscriptionId": "sub-1", "eventTime": "2025-01-20T12:34:56Z", "data": {}}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def eventbridge(detail: object, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "version": "0", "id": "eb-uuid-1", "detail-type": "PACKAGE_DELIVERED",
        "source": "aws.partner/buywithprime/shop", "account": "123456789012", "time": "2025-01-20T12:35:00Z",
        "region": "us-east-1", "resources": [f"{BP}/order/322-43Q4-R3S5J8/delivery/95c933bf-aaaa"],
        "detail": detail}
    body.update(overrides)
    return body


def parse(body: object):
    return parse_event(json.dumps(body).encode())


def test_webhook_envelope_fields_and_resources_by_key() -> None:
    event = parse(webhook())
    assert event.envelope == WEBHOOK
    assert (event.event_id, event.event_type) == ("ev-1", "PACKAGE_DELIVERED")
    assert event.order_id == "322-43Q4-R3S5J8"
    assert event.resource("delivery") == "95c933bf-aaaa"
    assert event.business_product_id == "bp-1f0e2c3a-0000-4000-8000-000000000001"
    assert event.event_time == datetime(2025, 1, 20, 12, 34, 56, tzinfo=UTC)
    assert event.subscription_id == "sub-1" and event.api_version == "2024-11-01"
    assert event.ordering_key == "amazon:order:322-43Q4-R3S5J8"


def test_tracker_path_as_seen_in_real_traffic_still_finds_the_order() -> None:
    # Docs: …/carrier/{code}/tracker/{number}; real samples carry an order segment first.
    event = parse(webhook(eventDescriptor="PACKAGE_TRACKER_MILESTONE_CHANGED",
                          resources=[f"{BP}/order/O-9/carrier/ups/tracker/1Z999"]))
    assert (event.order_id, event.resource("carrier"), event.resource("tracker")) == ("O-9", "ups", "1Z999")
    documented = parse(webhook(eventDescriptor="PACKAGE_TRACKER_MILESTONE_CHANGED",
                               resources=[f"{BP}/carrier/ups/tracker/1Z999"]))
    assert documented.order_id is None
    assert documented.ordering_key == "amazon:carrier:ups"


def test_other_resource_shapes_and_no_resources() -> None:
    inventory = parse(webhook(eventDescriptor="INVENTORY_CHANGED", resources=[f"{BP}/inventory-item/I-1"]))
    assert inventory.resource("inventory-item") == "I-1"
    assert inventory.ordering_key == "amazon:inventory-item:I-1"
    ret = parse(webhook(eventDescriptor="RETURN_STARTED", resources=[f"{BP}/order/O-1/return/abc#RF"]))
    assert ret.resource("return") == "abc#RF"
    privacy = parse(webhook(eventDescriptor="PERSONAL_DATA_DELETION_TASK_COMPLETED", resources=[]))
    assert privacy.resources == () and privacy.ordering_key == "amazon:event:ev-1"


def test_data_is_optional_and_kept() -> None:
    assert parse(webhook(data=...)).data == {}
    assert parse(webhook(data=None)).data == {}
    assert parse(webhook(data={"order": {"id": "O"}})).data == {"order": {"id": "O"}}


def test_idempotency_key_stands_in_for_a_missing_event_id() -> None:
    event = parse(webhook(eventId=...))
    assert event.event_id == base64.b64encode(b"sub-1#ev-1").decode()


def test_eventbridge_envelope_uses_the_detail() -> None:
    event = parse(eventbridge(webhook()))
    assert event.envelope == EVENTBRIDGE
    assert event.event_id == "ev-1"            # BwP's id, not EventBridge's: the same event either way
    assert event.order_id == "322-43Q4-R3S5J8"
    assert event.event_time == datetime(2025, 1, 20, 12, 34, 56, tzinfo=UTC)


def test_eventbridge_with_empty_detail_falls_back_to_the_outer_fields() -> None:
    event = parse(eventbridge({}))               # API 2024-01-01 sent detail: {}
    assert (event.event_id, event.event_type, event.order_id) == ("eb-uuid-1", "PACKAGE_DELIVERED",
                                                                  "322-43Q4-R3S5J8")
    assert event.event_time == datetime(2025, 1, 20, 12, 35, tzinfo=UTC)


@pytest.mark.parametrize(("body", "words"), [
    ([1, 2], "JSON object"),
    (webhook(eventDescriptor=...), "eventDescriptor is missing"),
    (webhook(eventDescriptor="no spaces allowed"), "not an event type name"),
    (webhook(eventDescriptor=7), "eventDescriptor must be a string"),
    (webhook(eventId=..., idempotencyKey=...), "cannot be deduplicated"),
    (webhook(eventId=""), "eventId is empty"),
    (webhook(eventId="x" * 201), "eventId is longer than 200"),
    (webhook(resources="businessProduct/bp/order/1"), "resources must be a list"),
    (webhook(resources=[5]), "resources[0] must be a string"),
    (webhook(resources=["order/1/delivery/2"]), "does not start with businessProduct/<id>"),
    (webhook(resources=[f"{BP}/order/1/delivery"]), "'delivery' has no value"),
    (webhook(resources=[f"{BP}/order//delivery/2"]), "order has an empty value"),
    (webhook(resources=[f"{BP}/order/" + "9" * 181]), "longer than 180"),
    (webhook(resources=[f"{BP}/1bad/x"]), "is not a resource key"),
    (webhook(eventTime="yesterday"), "eventTime 'yesterday' is not an ISO 8601 time"),
    (webhook(eventTime="2025-01-20T12:34:56"), "has no time zone"),
    (webhook(data=[1]), "data must be an object"),
    (webhook(eventId="a\u0000b"), "control characters"),
    (webhook(eventId="a\ud800b"), "unpaired surrogates"),
    (eventbridge("nope"), "detail must be an object"),
    (eventbridge({}, **{"detail-type": None, "id": None}), "eventDescriptor is missing"),
    (eventbridge({"eventDescriptor": "X"}, id=None), "cannot be deduplicated"),
])
def test_malformed_events_are_rejected_naming_the_problem(body: object, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse(body)
    assert words in caught.value.reason


def test_bytes_that_are_not_json() -> None:
    with pytest.raises(Rejected, match="not valid JSON"):
        parse_event(b"\xff\xfe{")
    with pytest.raises(Rejected, match="not valid JSON"):
        parse_event(b"")


def test_parse_resource_pairs() -> None:
    resource = parse_resource("businessProduct/bp-1/order/O/delivery/D/")
    assert resource.pairs == (("order", "O"), ("delivery", "D"))
    assert resource.get("delivery") == "D" and resource.get("refund") is None
