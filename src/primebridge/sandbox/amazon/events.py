"""Buy with Prime events as the sandbox publishes them: the event record, resource paths, envelopes.

This is the contract primebridge's event intake is written against (reference §3.1), so the shapes
are spelled out here once:

- **Webhook envelope** (the body POSTed to a subscribed URL)::

    {"idempotencyKey": base64("<subscriptionId>#<eventId>"), "eventDescriptor": "PACKAGE_DELIVERED",
     "resources": ["businessProduct/bp-<uuid>/order/<orderId>/delivery/<packageId>"],
     "eventId": "<uuid>", "apiVersion": "2024-11-01", "subscriptionId": "<uuid>",
     "eventTime": "2025-01-20T12:34:56.789Z", "data": {}}

- **EventBridge envelope** (only when the delivery knob ``envelope`` is ``eventbridge``): the same
  object under ``detail``, wrapped in ``{version, id, detail-type, source, account, time, region,
  resources}``.

``resources`` are ``businessProduct/{bpId}/`` followed by key/value path segments: ``order/{id}``
then ``delivery/{packageId}``, ``refund/{refundId}`` or ``carrier/{code}/tracker/{number}``.
The business product id is the target id when that already looks like one (``bp-…``), otherwise a
stable ``bp-<uuid5>`` derived from it.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2024-11-01"

PACKAGE_DELIVERY_IN_TRANSIT = "PACKAGE_DELIVERY_IN_TRANSIT"
PACKAGE_DELIVERED = "PACKAGE_DELIVERED"
PACKAGE_DELIVERY_CANCELLED = "PACKAGE_DELIVERY_CANCELLED"
PACKAGE_TRACKER_MILESTONE_CHANGED = "PACKAGE_TRACKER_MILESTONE_CHANGED"
REFUND_REQUESTED = "REFUND_REQUESTED"

# The documented event types (docs/event-types), with the deprecated names still listed there.
EVENT_TYPES = frozenset({
    PACKAGE_DELIVERY_IN_TRANSIT, PACKAGE_DELIVERED, PACKAGE_DELIVERY_CANCELLED, PACKAGE_TRACKER_MILESTONE_CHANGED,
    REFUND_REQUESTED, "REFUND_COMPLETED", "RETURN_STARTED", "RETURN_PACKAGE_IN_TRANSIT", "RETURN_PACKAGE_DELIVERED",
    "RETURN_PACKAGE_DELIVERY_FAILED", "RETURN_ITEM_GRADED", "RETURN_COMPLETED", "INVENTORY_CHANGED",
    "BUYABILITY_CHANGED", "PERSONAL_DATA_DELETION_TASK_COMPLETED", "PERSONAL_DATA_DELETION_TASK_FAILED",
    "PERSONAL_DATA_RETRIEVAL_TASK_COMPLETED", "PERSONAL_DATA_RETRIEVAL_TASK_FAILED",
    "DELIVERY_IN_TRANSIT", "DELIVERY_COMPLETED", "DELIVERY_CANCELLED", "RETURN_DELIVERY_COMPLETED",
    "RETURN_DELIVERY_IN_TRANSIT", "RETURN_DELIVERY_FAILED",
})


@dataclass(frozen=True, slots=True)
class Event:
    """One published event; every subscription of its type gets its own delivery of it."""

    event_id: str
    event_type: str
    resources: tuple[str, ...]
    event_time: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "eventType": self.event_type, "resources": list(self.resources),
                "eventTime": self.event_time, "data": self.data}


def business_product_id(target_id: str) -> str:
    if target_id.startswith("bp-"):
        return target_id
    return f"bp-{uuid.uuid5(uuid.NAMESPACE_URL, 'bwp-sandbox:' + target_id)}"


def resource(bp_id: str, *segments: str) -> str:
    """``businessProduct/{bp}/seg/seg/...``; a path already starting with ``businessProduct/`` is kept."""
    path = "/".join(segments)
    return path if path.startswith("businessProduct/") else f"businessProduct/{bp_id}/{path}"


def new_event(event_type: str, resources: tuple[str, ...], event_time: str,
              data: dict[str, Any] | None = None) -> Event:
    return Event(event_id=str(uuid.uuid4()), event_type=event_type, resources=resources, event_time=event_time,
                 data=dict(data or {}))


def idempotency_key(subscription_id: str, event_id: str) -> str:
    return base64.b64encode(f"{subscription_id}#{event_id}".encode()).decode()


def webhook_envelope(event: Event, subscription_id: str) -> dict[str, Any]:
    return {
        "idempotencyKey": idempotency_key(subscription_id, event.event_id),
        "eventDescriptor": event.event_type,
        "resources": list(event.resources),
        "eventId": event.event_id,
        "apiVersion": API_VERSION,
        "subscriptionId": subscription_id,
        "eventTime": event.event_time,
        "data": event.data,
    }


def eventbridge_envelope(event: Event, subscription_id: str, *, account: str = "000000000000",
                         region: str = "us-east-1", source_name: str = "bwp-sandbox") -> dict[str, Any]:
    """The partner-event-source shape (reference §3.1); ``id`` is EventBridge's own, not the eventId."""
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription_id}#{event.event_id}")),
        "detail-type": event.event_type,
        "source": f"aws.partner/buywithprime/{source_name}",
        "account": account,
        "time": event.event_time,
        "region": region,
        "resources": list(event.resources),
        "detail": webhook_envelope(event, subscription_id),
    }
