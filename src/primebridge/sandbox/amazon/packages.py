"""The sandbox-only ``updateOrderPackageInformation`` (reference §2.9): package states, splits, trackers.

Documented rules reproduced:

| from | to | events |
|---|---|---|
| PENDING | IN_TRANSIT | PACKAGE_DELIVERY_IN_TRANSIT |
| PENDING | CANCELLED (CUSTOMER_REQUESTED, UNFULFILLABLE) | PACKAGE_DELIVERY_CANCELLED, REFUND_REQUESTED |
| IN_TRANSIT | DELIVERED | PACKAGE_DELIVERED |
| IN_TRANSIT | CANCELLED (UNDELIVERABLE) | PACKAGE_DELIVERY_CANCELLED, REFUND_REQUESTED |
| DELIVERED, CANCELLED | terminal | — |

Tracker updates (``packageTrackerState``) record a milestone and emit PACKAGE_TRACKER_MILESTONE_CHANGED;
a DELIVERED milestone also delivers the package (PACKAGE_DELIVERED). LOST / UNDELIVERABLE milestones
are only recorded: the package stays IN_TRANSIT until someone cancels it as UNDELIVERABLE.

Sandbox choices where the docs are silent:

- **Synchronous.** BwP applies the mutation asynchronously (minutes); the sandbox applies it before
  answering, and the events are published at once, so tests are deterministic. The delivery knobs
  (delivery.py) add the delays.
- **Splits.** Entries naming the same package with ``packageInformationDetailsFor`` take those
  quantities out of a PENDING package into a new package with a new id. The original keeps its id
  and the rest (still PENDING, unless an entry without ``packageInformationDetailsFor`` moves the
  rest too). When the entries take everything, the first entry keeps the original id.
- **Trackers.** A package gets its tracker when it goes IN_TRANSIT: carrier ``carrier_code``
  (``create_app`` argument, default ``ups``), a made-up tracking number, an IN_TRANSIT milestone,
  an estimated delivery 2–4 days later. Before that a tracker update is
  ``PackageTrackerNotAvailableForUpdate``. At most ``MAX_MILESTONES`` milestones per tracker
  (``UpdatePackageTrackerLimitExceeded``).
- Every cancellation creates a refund request (``order.refunds`` in the admin view) for the
  cancelled quantities, announced by REFUND_REQUESTED.
- Within one call a package takes either state entries or tracker entries, not both.

Error codes: the documented ``ConflictingPackageStateInput``, ``MissingCancellationReason``,
``InvalidPackageDeliveryDetailStateTransition``, ``PackageInformationDetailIdNotFound``,
``PackageTrackerNotAvailableForUpdate``, ``PackageTrackerNotFound``, ``UpdatePackageTrackerLimitExceeded``;
and ours: ``InvalidPackageSplit``, ``InvalidOrderLineItemAmount``, ``UnexpectedCancellationReason``,
``InvalidPackageTrackerState``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from primebridge.sandbox.amazon.events import (
    PACKAGE_DELIVERED,
    PACKAGE_DELIVERY_CANCELLED,
    PACKAGE_DELIVERY_IN_TRANSIT,
    PACKAGE_TRACKER_MILESTONE_CHANGED,
    REFUND_REQUESTED,
)
from primebridge.sandbox.amazon.validation import SandboxFault, invalid

JSON = dict[str, Any]
Emitted = tuple[str, tuple[str, ...]]  # (event type, resource segments after order/{id})

TERMINAL = frozenset({"DELIVERED", "CANCELLED"})
TRANSITIONS: dict[tuple[str, str], frozenset[str] | None] = {
    ("PENDING", "IN_TRANSIT"): None,
    ("PENDING", "CANCELLED"): frozenset({"CUSTOMER_REQUESTED", "UNFULFILLABLE"}),
    ("IN_TRANSIT", "DELIVERED"): None,
    ("IN_TRANSIT", "CANCELLED"): frozenset({"UNDELIVERABLE"}),
}
MAX_MILESTONES = 50
MILESTONE_TEXT = {
    "INFO_RECEIVED": "Shipping label created", "IN_TRANSIT": "In transit", "DELAYED": "Delayed",
    "OUT_FOR_DELIVERY": "Out for delivery", "AVAILABLE_FOR_PICKUP": "Available for pickup",
    "DELIVERY_ATTEMPTED": "Delivery attempted", "DELIVERED": "Delivered", "EXCEPTION": "Exception",
    "LOST": "Package lost", "UNDELIVERABLE": "Undeliverable", "RETURN_TO_SENDER": "Returning to sender",
    "CUSTOMER_ACTION": "Action required",
}
FULFILLMENT_CENTER = {"locality": "Seattle", "region": "WA", "country": "US"}


@dataclass
class Context:
    """What the mutation needs from the sandbox besides the order (lock held by the caller)."""

    now_iso: Callable[[], str]
    carrier_code: str = "ups"
    emitted: list[Emitted] = field(default_factory=list)


def new_package(contents: list[tuple[str, int]]) -> JSON:
    return {"id": str(uuid.uuid4()), "aliases": [], "state": "PENDING", "reason": None,
            "contents": contents, "tracker": None}


def update_packages(order: JSON, details: list[JSON], ctx: Context) -> list[Emitted]:
    """Validate every entry, then apply them all; an invalid call changes nothing."""
    packages = {package["id"]: package for package in order["packages"]}
    groups: dict[str, list[JSON]] = {}
    kinds: dict[str, str] = {}
    for index, detail in enumerate(details):
        state = detail.get("packageState") or {}
        info, tracker = state.get("packageInformationState"), state.get("packageTrackerState")
        where = f"packageInformation.details[{index}]"
        if info is not None and tracker is not None:
            raise invalid("ConflictingPackageStateInput",
                          f"{where}: give packageInformationState or packageTrackerState, not both")
        if info is None and tracker is None:
            raise invalid("ConflictingPackageStateInput",
                          f"{where}: needs one of packageInformationState, packageTrackerState")
        package_id = detail["id"]
        if package_id not in packages:
            raise invalid("PackageInformationDetailIdNotFound", f"order {order['id']} has no package {package_id}")
        kind = "info" if info is not None else "tracker"
        if kinds.setdefault(package_id, kind) != kind:
            raise invalid("ConflictingPackageStateInput",
                          f"package {package_id} is given both a package state and a tracker state in one call")
        groups.setdefault(package_id, []).append(info if info is not None else tracker)
    plans = [(_plan_info(order, packages[pid], entries) if kinds[pid] == "info"
              else _plan_tracker(packages[pid], entries)) for pid, entries in groups.items()]
    for apply in plans:
        apply(ctx)
    return ctx.emitted


# -- package states ------------------------------------------------------------------------------


def _check_transition(package: JSON, target: str, reason: str | None) -> None:
    current = package["state"]
    if current in TERMINAL:
        raise invalid("InvalidPackageDeliveryDetailStateTransition",
                      f"package {package['id']} is {current}, a terminal state")
    if target == "CANCELLED" and not reason:
        raise invalid("MissingCancellationReason", f"package {package['id']}: CANCELLED needs a reason")
    if target != "CANCELLED" and reason:
        raise invalid("UnexpectedCancellationReason",
                      f"package {package['id']}: a reason is only given with state CANCELLED")
    if (current, target) not in TRANSITIONS:
        raise invalid("InvalidPackageDeliveryDetailStateTransition",
                      f"package {package['id']} cannot go from {current} to {target}")
    reasons = TRANSITIONS[(current, target)]
    if reasons is not None and reason not in reasons:
        raise invalid("InvalidPackageDeliveryDetailStateTransition",
                      f"package {package['id']}: from {current} the cancellation reason must be "
                      f"{' or '.join(sorted(reasons))}, not {reason}")


def _amounts(package: JSON, entry: JSON) -> dict[str, int] | None:
    details_for = entry.get("packageInformationDetailsFor")
    if details_for is None:
        return None
    contents = dict(package["contents"])
    amounts: dict[str, int] = {}
    for item in details_for["orderLineItemAmounts"]:
        line_id, value = item["lineItemId"]["lineItemId"], item["amount"]["value"]
        if line_id not in contents:
            raise invalid("InvalidOrderLineItemAmount", f"package {package['id']} holds no line item {line_id}")
        if value <= 0:
            raise invalid("InvalidOrderLineItemAmount", f"line item {line_id}: amount must be greater than 0")
        amounts[line_id] = amounts.get(line_id, 0) + value
    if not amounts:
        raise invalid("InvalidOrderLineItemAmount", "packageInformationDetailsFor.orderLineItemAmounts is empty")
    return amounts


def _plan_info(order: JSON, package: JSON, entries: list[JSON]) -> Callable[[Context], None]:
    for entry in entries:
        _check_transition(package, entry["state"], entry.get("reason"))
    contents = dict(package["contents"])
    parts = [(entry, _amounts(package, entry)) for entry in entries]
    if len(parts) == 1 and parts[0][1] == contents:
        parts = [(entries[0], None)]  # "all of it", spelled out
    whole = [entry for entry, amounts in parts if amounts is None]
    partial = [(entry, amounts) for entry, amounts in parts if amounts is not None]
    if len(whole) > 1:
        raise invalid("ConflictingPackageStateInput",
                      f"package {package['id']} is given more than one state for all of its content")
    taken: dict[str, int] = {}
    for _, amounts in partial:
        for line_id, value in amounts.items():
            taken[line_id] = taken.get(line_id, 0) + value
    over = [line_id for line_id, value in taken.items() if value > contents[line_id]]
    if over:
        raise invalid("InvalidOrderLineItemAmount",
                      f"package {package['id']} holds fewer units of line item {over[0]} than requested")
    if partial and package["state"] != "PENDING":
        raise invalid("InvalidPackageSplit", f"package {package['id']} is {package['state']}; only a PENDING "
                                             "package can be split")
    rest = [(line_id, value - taken.get(line_id, 0)) for line_id, value in package["contents"]
            if value - taken.get(line_id, 0) > 0]
    if whole and partial and not rest:
        raise invalid("InvalidOrderLineItemAmount",
                      f"package {package['id']}: the split entries take everything, nothing is left for the "
                      "entry without packageInformationDetailsFor")

    def apply(ctx: Context) -> None:
        position = order["packages"].index(package)
        pieces: list[tuple[JSON, JSON]] = []
        for entry, amounts in partial:
            piece = new_package([(line_id, amounts[line_id]) for line_id, _ in package["contents"]
                                 if line_id in amounts])
            pieces.append((piece, entry))
        if not rest and pieces:
            # Everything was split off: the first piece keeps the original package (id and aliases).
            first, entry = pieces.pop(0)
            package["contents"] = first["contents"]
            pieces.insert(0, (package, entry))
        else:
            package["contents"] = rest
            if whole:
                pieces.insert(0, (package, whole[0]))
        for offset, (piece, _) in enumerate(p for p in pieces if p[0] is not package):
            order["packages"].insert(position + 1 + offset, piece)
        order_of = {id(entry): index for index, entry in enumerate(entries)}
        for piece, entry in sorted(pieces, key=lambda pair: order_of[id(pair[1])]):  # events in input order
            _transition(order, piece, entry["state"], entry.get("reason"), ctx)

    return apply


def _transition(order: JSON, package: JSON, target: str, reason: str | None, ctx: Context) -> None:
    package["state"] = target
    now = ctx.now_iso()
    if target == "IN_TRANSIT":
        package["tracker"] = _new_tracker(ctx.carrier_code, now)
        ctx.emitted.append((PACKAGE_DELIVERY_IN_TRANSIT, ("delivery", package["id"])))
    elif target == "DELIVERED":
        if package.get("tracker"):
            _add_milestone(package["tracker"], {"state": "DELIVERED"}, now)
        ctx.emitted.append((PACKAGE_DELIVERED, ("delivery", package["id"])))
    elif target == "CANCELLED":
        package["reason"] = reason
        refund_id = secrets.token_hex(32)
        order.setdefault("refunds", []).append({
            "id": refund_id, "state": "PENDING", "createdAt": now, "refundRequestReason": reason,
            "packageId": package["id"],
            "refundFor": {"orderLineItems": [{"lineItem": {"id": line_id}, "amount": {"value": value}}
                                             for line_id, value in package["contents"]]}})
        ctx.emitted.append((PACKAGE_DELIVERY_CANCELLED, ("delivery", package["id"])))
        ctx.emitted.append((REFUND_REQUESTED, ("refund", refund_id)))


# -- trackers ------------------------------------------------------------------------------------


def _new_tracker(carrier_code: str, now: str) -> JSON:
    number = "1Z" + secrets.token_hex(8).upper()
    shipped = datetime.now(UTC)
    tracker = {
        "packageTrackerIdentifier": {"trackingNumber": number, "carrierCode": carrier_code},
        "trackingUrl": f"https://track.amazon.com/tracking/{number}",
        "estimatedDeliveryDate": {"earliest": (shipped + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "latest": (shipped + timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "latestMilestone": None,
        "milestones": [],
    }
    _add_milestone(tracker, {"state": "IN_TRANSIT"}, now)
    return tracker


def _add_milestone(tracker: JSON, entry: JSON, now: str) -> None:
    code = entry["state"]
    milestone = {
        "status": {"code": code, "message": {"locale": "en-US", "value": entry.get("message") or MILESTONE_TEXT[code]}},
        "address": dict(entry.get("address") or FULFILLMENT_CENTER),
        "occurredAt": entry.get("occurredAt") or now,
    }
    tracker["milestones"].append(milestone)
    tracker["latestMilestone"] = milestone


def tracker_matches(tracker: JSON | None, identifier: JSON) -> bool:
    if not tracker:
        return False
    own = tracker["packageTrackerIdentifier"]
    return (own["trackingNumber"] == identifier["trackingNumber"]
            and own["carrierCode"].lower() == str(identifier["carrierCode"]).lower())


def _plan_tracker(package: JSON, entries: list[JSON]) -> Callable[[Context], None]:
    tracker = package.get("tracker")
    if package["state"] == "PENDING" or tracker is None:
        raise invalid("PackageTrackerNotAvailableForUpdate",
                      f"package {package['id']} has no tracker yet (it has not shipped)")
    if package["state"] in TERMINAL:
        raise invalid("InvalidPackageDeliveryDetailStateTransition",
                      f"package {package['id']} is {package['state']}; its tracker takes no more milestones")
    for index, entry in enumerate(entries):
        if not tracker_matches(tracker, entry["packageTrackerIdentifier"]):
            ident = entry["packageTrackerIdentifier"]
            raise SandboxFault("ResourceNotFoundError", "PackageTrackerNotFound",
                               f"package {package['id']} has no tracker {ident['carrierCode']} "
                               f"{ident['trackingNumber']}")
        if entry["state"] == "PENDING":
            raise invalid("InvalidPackageTrackerState", "PENDING is not a milestone the sandbox can set")
        if entry["state"] == "DELIVERED" and index < len(entries) - 1:
            raise invalid("InvalidPackageDeliveryDetailStateTransition",
                          f"package {package['id']}: no milestone can follow DELIVERED")
    if len(tracker["milestones"]) + len(entries) > MAX_MILESTONES:
        raise invalid("UpdatePackageTrackerLimitExceeded",
                      f"package {package['id']}: a tracker keeps at most {MAX_MILESTONES} milestones")

    def apply(ctx: Context) -> None:
        ident = tracker["packageTrackerIdentifier"]
        segments = ("carrier", ident["carrierCode"], "tracker", ident["trackingNumber"])
        for entry in entries:
            _add_milestone(tracker, entry, ctx.now_iso())
            ctx.emitted.append((PACKAGE_TRACKER_MILESTONE_CHANGED, segments))
            if entry["state"] == "DELIVERED":
                package["state"] = "DELIVERED"
                ctx.emitted.append((PACKAGE_DELIVERED, ("delivery", package["id"])))

    return apply
