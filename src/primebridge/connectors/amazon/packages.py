"""``Order.packageInformation.details`` → ``AmazonPackage`` (domain/packages.py), and the package
alias input of ``updateOrder``. Pure, like mapping.py.

The package id is the "delivery id" of ``PACKAGE_*`` event resources; the flows find the package of
an event here and write their OMS document id back as a package alias (``BwpOrders.add_package_alias``).
Strict where a wrong value would mislead a flow (id, state, reason, quantities: ``BadResponse``
naming the field), lenient where BwP may leave things out (a tracker without identifier is
treated as no tracker yet, missing milestones as none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.connectors.amazon.errors import BadResponse
from primebridge.domain.model import Alias
from primebridge.domain.packages import (
    AmazonPackage,
    CancellationReason,
    Milestone,
    PackageLine,
    PackageState,
    Tracker,
)

JSON = dict[str, Any]


def packages_from_json(raw: Any, order_id: str, *, aliases: Any) -> tuple[AmazonPackage, ...]:
    """The packages of ``Order.packageInformation`` (``None`` or absent: no packages yet).

    ``aliases`` is ``mapping.aliases_from_json`` (passed in to keep one alias parser)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise BadResponse(f"BwP order {order_id}: packageInformation is not an object")
    details = raw.get("details")
    if details is None:
        return ()
    if not isinstance(details, list):
        raise BadResponse(f"BwP order {order_id}: packageInformation.details is not a list")
    return tuple(_package(order_id, index, entry, aliases) for index, entry in enumerate(details))


def _package(order_id: str, index: int, raw: Any, aliases: Any) -> AmazonPackage:
    where = f"order {order_id} packageInformation.details[{index}]"
    if not isinstance(raw, dict):
        raise BadResponse(f"BwP {where} is not an object")
    package_id = raw.get("id")
    if not isinstance(package_id, str) or not package_id:
        raise BadResponse(f"BwP {where} has no id")
    where = f"order {order_id} package {package_id}"
    state = _enum(PackageState, raw.get("state"), f"{where}: state")
    if state is None:
        raise BadResponse(f"BwP {where} has no state")
    return AmazonPackage(
        package_id=package_id,
        state=state,
        lines=_lines(raw.get("packageInformationDetailsFor"), where),
        reason=_enum(CancellationReason, raw.get("reason"), f"{where}: reason"),
        tracker=_tracker(raw.get("packageTracker"), where),
        aliases=aliases(raw.get("aliases"), where),
    )


def _enum(kind: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise BadResponse(f"BwP {where} is {value!r}, expected one of {', '.join(kind)}") from None


def _lines(raw: Any, where: str) -> tuple[PackageLine, ...]:
    if raw is None:
        return ()
    amounts = raw.get("orderLineItemAmounts") if isinstance(raw, dict) else None
    if amounts is None:
        return ()
    if not isinstance(amounts, list):
        raise BadResponse(f"BwP {where}: packageInformationDetailsFor.orderLineItemAmounts is not a list")
    lines = []
    for index, entry in enumerate(amounts):
        item = f"{where}: orderLineItemAmounts[{index}]"
        line = entry.get("lineItem") if isinstance(entry, dict) else None
        line_id = line.get("id") if isinstance(line, dict) else None
        if not isinstance(line_id, str) or not line_id:
            raise BadResponse(f"BwP {item} has no lineItem.id")
        amount = entry.get("amount")
        value = amount.get("value") if isinstance(amount, dict) else None
        try:
            quantity = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise BadResponse(f"BwP {item}: amount.value {value!r} is not a number") from None
        if not quantity.is_finite() or quantity <= 0:
            raise BadResponse(f"BwP {item}: amount.value {value!r} is not a positive number")
        lines.append(PackageLine(amazon_line_id=line_id, quantity=quantity))
    return tuple(lines)


def _tracker(raw: Any, where: str) -> Tracker | None:
    if not isinstance(raw, dict):
        return None
    ident = raw.get("packageTrackerIdentifier")
    number = ident.get("trackingNumber") if isinstance(ident, dict) else None
    carrier = ident.get("carrierCode") if isinstance(ident, dict) else None
    if not isinstance(number, str) or not number or not isinstance(carrier, str) or not carrier:
        return None
    estimate = raw.get("estimatedDeliveryDate") if isinstance(raw.get("estimatedDeliveryDate"), dict) else {}
    milestones = raw.get("milestones") if isinstance(raw.get("milestones"), list) else []
    url = raw.get("trackingUrl")
    return Tracker(
        tracking_number=number,
        carrier_code=carrier,
        tracking_url=url if isinstance(url, str) and url else None,
        estimated_delivery_earliest=parse_time(estimate.get("earliest"), f"{where}: estimatedDeliveryDate.earliest"),
        estimated_delivery_latest=parse_time(estimate.get("latest"), f"{where}: estimatedDeliveryDate.latest"),
        latest_milestone=_milestone(raw.get("latestMilestone"), f"{where}: latestMilestone"),
        milestones=tuple(m for i, entry in enumerate(milestones)
                         if (m := _milestone(entry, f"{where}: milestones[{i}]")) is not None),
    )


def _milestone(raw: Any, where: str) -> Milestone | None:
    if not isinstance(raw, dict):
        return None
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    code = status.get("code")
    if not isinstance(code, str) or not code:
        return None
    message = status.get("message") if isinstance(status.get("message"), dict) else {}
    address = raw.get("address") if isinstance(raw.get("address"), dict) else {}
    return Milestone(code=code, occurred_at=parse_time(raw.get("occurredAt"), f"{where}.occurredAt"),
                     message=_text(message.get("value")), locality=_text(address.get("locality")),
                     region=_text(address.get("region")), country=_text(address.get("country")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_time(value: Any, where: str) -> datetime | None:
    """ISO-8601 date or date-time (``Z`` allowed) as an aware datetime; naive values are UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadResponse(f"BwP {where} is not a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise BadResponse(f"BwP {where}: {value!r} is not an ISO-8601 time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def package_alias_input(package_id: str, aliases: tuple[Alias, ...]) -> JSON:
    """``UpdateOrderInput.packageInformation`` that appends ``aliases`` to one package."""
    return {"details": [{"id": package_id,
                         "aliases": [{"aliasType": a.alias_type, "aliasId": a.alias_id} for a in aliases]}]}
