"""Buy with Prime events as primebridge sees them, parsed from either delivery envelope (no I/O).

BwP delivers one event object in two wrappings (reference §3.1): a webhook POSTs the object itself
(``eventId``, ``eventDescriptor``, ``resources``, ...), EventBridge wraps it as ``detail`` next to
``detail-type``, ``id`` and its own ``resources``. In API version 2024-01-01 EventBridge sent an empty
``detail``, so the outer fields are the fallback.

Events are thin: ``resources`` names what changed and the handler asks the API for its current
state. ``resources`` is read as key/value path segments after ``businessProduct/{id}``, never by
position, because documented and real paths differ (the tracker event carries an ``order``
segment in real traffic, return sub-resources vary).

Anything that would make the event unusable (no id to deduplicate by, no type, a resource path
that is not key/value pairs) raises ``Rejected`` naming the field, so the sender gets a 4xx that
says what is wrong and nothing is stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from primebridge.domain.errors import Rejected

WEBHOOK, EVENTBRIDGE = "webhook", "eventbridge"

# Ids and keys longer than this cannot be a BwP id; they would also not fit the store's dedupe key.
MAX_ID_LENGTH = 200
MAX_RESOURCES = 20
MAX_RESOURCE_LENGTH = 1000
# A resource value ends up in a job's ordering key ("amazon:<key>:<value>", at most 255 characters).
MAX_VALUE_LENGTH = 180
_EVENT_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
BUSINESS_PRODUCT = "businessProduct"
_UNSTORABLE = re.compile("[\x00-\x1f\ud800-\udfff]")  # a regex scan: a per-character loop cost more than json.loads


@dataclass(frozen=True, slots=True)
class Resource:
    """One ``resources`` entry: ``businessProduct/bp-1/order/O-1/delivery/D-1`` becomes
    ``business_product_id="bp-1"`` and ``pairs=(("order", "O-1"), ("delivery", "D-1"))``."""

    path: str
    business_product_id: str
    pairs: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        for name, value in self.pairs:
            if name == key:
                return value
        return None


@dataclass(frozen=True, slots=True)
class AmazonEvent:
    event_id: str
    event_type: str
    resources: tuple[Resource, ...]
    envelope: str
    event_time: datetime | None = None
    idempotency_key: str | None = None
    subscription_id: str | None = None
    api_version: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def resource(self, key: str) -> str | None:
        """The value after the first ``key`` segment in any resource (``"order"``, ``"delivery"``,
        ``"tracker"``, ``"carrier"``, ``"refund"``, ``"return"``, ``"inventory-item"``...)."""
        for resource in self.resources:
            value = resource.get(key)
            if value is not None:
                return value
        return None

    @property
    def order_id(self) -> str | None:
        return self.resource("order")

    @property
    def business_product_id(self) -> str | None:
        return self.resources[0].business_product_id if self.resources else None

    @property
    def dedupe_key(self) -> str:
        """What makes a redelivery the same event: BwP's ``eventId`` (also inside ``idempotencyKey``)."""
        return self.event_id

    @property
    def ordering_key(self) -> str:
        """Jobs with one key run one at a time, in arrival order: every event of an Amazon order
        waits for the earlier ones of that order; others are keyed by their first resource."""
        if self.order_id is not None:
            return f"amazon:order:{self.order_id}"
        for resource in self.resources:
            if resource.pairs:
                key, value = resource.pairs[0]
                return f"amazon:{key}:{value}"
        return f"amazon:event:{self.event_id}"


def parse_event(body: bytes | str) -> AmazonEvent:
    """Parse a delivery body (webhook or EventBridge envelope, detected by its fields)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"body is not valid JSON: {exc}", code="MalformedJson") from None
    return event_from_json(payload)


def event_from_json(payload: Any) -> AmazonEvent:
    if not isinstance(payload, dict):
        raise Rejected(f"body must be a JSON object, got {_kind(payload)}", code="MalformedEnvelope")
    if "detail-type" in payload or "detail" in payload:
        return _from_eventbridge(payload)
    return _from_webhook(payload, envelope=WEBHOOK, where="")


def _from_webhook(body: dict[str, Any], *, envelope: str, where: str,
                  fallback: dict[str, Any] | None = None) -> AmazonEvent:
    fallback = fallback or {}
    event_type = _optional_str(body, "eventDescriptor", where) or fallback.get("type")
    if event_type is None:
        raise Rejected(f"{where}eventDescriptor is missing: every event names its type",
                       code="MissingEventType")
    if not _EVENT_TYPE.match(event_type):
        raise Rejected(f"{where}eventDescriptor {event_type[:80]!r} is not an event type name "
                       "(letters, digits and _ . -, at most 64)", code="BadEventType")
    event_id = _optional_str(body, "eventId", where)
    idempotency_key = _optional_str(body, "idempotencyKey", where)
    dedupe = event_id or idempotency_key or fallback.get("id")
    if dedupe is None:
        raise Rejected(f"{where}eventId and idempotencyKey are both missing: the event cannot be deduplicated",
                       code="MissingEventId")
    for name, value in (("eventId", event_id), ("idempotencyKey", idempotency_key)):
        if value is not None and len(value) > MAX_ID_LENGTH:
            raise Rejected(f"{where}{name} is longer than {MAX_ID_LENGTH} characters", code="BadEventId")
    if "resources" in body:
        resources = _resources(body["resources"], f"{where}resources")
    else:
        resources = fallback.get("resources", ())
    data = body.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Rejected(f"{where}data must be an object when present, got {_kind(data)}", code="MalformedEnvelope")
    event_time = _time(body.get("eventTime"), f"{where}eventTime")
    return AmazonEvent(
        event_id=dedupe, event_type=event_type, resources=resources, envelope=envelope,
        event_time=event_time or fallback.get("time"), idempotency_key=idempotency_key,
        subscription_id=_optional_str(body, "subscriptionId", where),
        api_version=_optional_str(body, "apiVersion", where), data=data)


def _from_eventbridge(payload: dict[str, Any]) -> AmazonEvent:
    detail = payload.get("detail")
    if detail is None:
        detail = {}
    if not isinstance(detail, dict):
        raise Rejected(f"detail must be an object (the webhook event), got {_kind(detail)}",
                       code="MalformedEnvelope")
    fallback: dict[str, Any] = {}
    outer_type = _optional_str(payload, "detail-type", "")
    if outer_type is not None:
        fallback["type"] = outer_type
    outer_id = _optional_str(payload, "id", "")
    if outer_id is not None:
        if len(outer_id) > MAX_ID_LENGTH:
            raise Rejected(f"id is longer than {MAX_ID_LENGTH} characters", code="BadEventId")
        fallback["id"] = outer_id
    if "resources" in payload:
        fallback["resources"] = _resources(payload["resources"], "resources")
    outer_time = _time(payload.get("time"), "time")
    if outer_time is not None:
        fallback["time"] = outer_time
    return _from_webhook(detail, envelope=EVENTBRIDGE, where="detail.", fallback=fallback)


def parse_resource(path: str, where: str = "resource") -> Resource:
    """``businessProduct/{id}`` followed by key/value pairs; a key without a value is an error."""
    if len(path) > MAX_RESOURCE_LENGTH:
        raise Rejected(f"{where} is longer than {MAX_RESOURCE_LENGTH} characters", code="BadResource")
    _printable(path, where)
    segments = path.strip("/").split("/")
    if len(segments) < 2 or segments[0] != BUSINESS_PRODUCT or not segments[1].strip():
        raise Rejected(f"{where} {path[:120]!r} does not start with {BUSINESS_PRODUCT}/<id>", code="BadResource")
    rest = segments[2:]
    if len(rest) % 2:
        raise Rejected(f"{where} {path[:120]!r}: segment {rest[-1][:40]!r} has no value after it "
                       "(expected key/value pairs)", code="BadResource")
    pairs = []
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if not _KEY.match(key):
            raise Rejected(f"{where} {path[:120]!r}: {key[:40]!r} is not a resource key", code="BadResource")
        if not value.strip():
            raise Rejected(f"{where} {path[:120]!r}: {key} has an empty value", code="BadResource")
        if len(value) > MAX_VALUE_LENGTH:
            raise Rejected(f"{where}: the {key} value is longer than {MAX_VALUE_LENGTH} characters",
                           code="BadResource")
        pairs.append((key, value))
    return Resource(path=path, business_product_id=segments[1], pairs=tuple(pairs))


def _resources(value: Any, where: str) -> tuple[Resource, ...]:
    if not isinstance(value, list):
        raise Rejected(f"{where} must be a list of resource paths, got {_kind(value)}", code="BadResource")
    if len(value) > MAX_RESOURCES:
        raise Rejected(f"{where} has {len(value)} entries, at most {MAX_RESOURCES} are accepted", code="BadResource")
    parsed = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise Rejected(f"{where}[{index}] must be a string, got {_kind(item)}", code="BadResource")
        parsed.append(parse_resource(item, f"{where}[{index}]"))
    return tuple(parsed)


def _optional_str(body: dict[str, Any], key: str, where: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected(f"{where}{key} must be a string, got {_kind(value)}", code="MalformedEnvelope")
    value = value.strip()
    if not value:
        raise Rejected(f"{where}{key} is empty", code="MalformedEnvelope")
    _printable(value, f"{where}{key}")
    return value


def _printable(value: str, where: str) -> None:
    """Control characters and lone surrogates (valid in JSON escapes) cannot be stored as text."""
    if _UNSTORABLE.search(value):
        raise Rejected(f"{where} contains control characters or unpaired surrogates", code="MalformedEnvelope")


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected(f"{where} must be an ISO 8601 time string, got {_kind(value)}", code="BadTime")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(f"{where} {value[:60]!r} is not an ISO 8601 time", code="BadTime") from None
    if parsed.tzinfo is None:
        raise Rejected(f"{where} {value[:60]!r} has no time zone", code="BadTime")
    return parsed


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
