"""The Buy with Prime connector's package side: ``AmazonOrder.packages`` read from the ``order``
query (states, lines, trackers, milestones), ``add_package_alias``, and the pure mapping's errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tests.sandbox import amazon_package_fixtures
from tests.sandbox.amazon_fixtures import CLIENT_ID, CLIENT_SECRET, TARGET_ID, amazon_line, request
from tests.sandbox.amazon_package_fixtures import PACKAGES, Bwp, milestone, state, variables

from primebridge.config import AmazonConfig
from primebridge.connectors.amazon import BwpOrders, build_amazon_orders
from primebridge.connectors.amazon.errors import BadResponse
from primebridge.connectors.amazon.mapping import aliases_from_json, order_from_json
from primebridge.connectors.amazon.packages import packages_from_json, parse_time
from primebridge.domain.errors import Rejected
from primebridge.domain.model import Alias, ExecutionState
from primebridge.domain.packages import CancellationReason, PackageLine, PackageState

server = amazon_package_fixtures.server
bwp = amazon_package_fixtures.bwp


def orders(url: str, transport: httpx.BaseTransport | None = None) -> BwpOrders:
    cfg = AmazonConfig(graphql_url=f"{url}/graphql", token_url=f"{url}/token", client_id=CLIENT_ID,
                       client_secret=CLIENT_SECRET, target_id=TARGET_ID)
    return build_amazon_orders(cfg, transport=transport)


def started(client: BwpOrders, order_id: str = "4711") -> tuple[str, str, str]:
    """An order with one Amazon line of 3 units, started: ``(order id, line id, package id)``."""
    order = client.create_order(request(order_id, amazon_line(quantity="3", order_id=order_id),
                                        state=ExecutionState.STARTED))
    [package] = order.packages
    return order.order_id, order.lines[0].line_id, package.package_id


def test_a_pending_package_is_read_with_its_lines(bwp: Bwp) -> None:
    client = orders(bwp.url)
    order_id, line_id, package_id = started(client)
    order = client.get_order(order_id)
    assert order is not None
    [package] = order.packages
    assert (package.package_id, package.state, package.reason, package.tracker) == (
        package_id, PackageState.PENDING, None, None)
    assert package.lines == (PackageLine(line_id, Decimal(3)),)
    by_alias = client.get_order_by_alias(Alias("OMS_ORDER_ID", "4711"))
    assert by_alias is not None and by_alias.packages == order.packages


def test_shipped_split_and_tracked_packages(bwp: Bwp) -> None:
    client = orders(bwp.url)
    order_id, line_id, package_id = started(client)
    bwp.update(order_id, state(package_id, "CANCELLED", "UNFULFILLABLE", {line_id: 1}),
               state(package_id, "IN_TRANSIT"))
    shipped = {p.package_id: p for p in client.get_order(order_id).packages}  # type: ignore[union-attr]
    rest = shipped.pop(package_id)
    [cancelled] = shipped.values()
    assert (cancelled.state, cancelled.reason, cancelled.lines) == (
        PackageState.CANCELLED, CancellationReason.UNFULFILLABLE, (PackageLine(line_id, Decimal(1)),))
    assert not cancelled.failed_delivery
    assert (rest.state, rest.lines) == (PackageState.IN_TRANSIT, (PackageLine(line_id, Decimal(2)),))
    tracker = rest.tracker
    assert tracker is not None and tracker.carrier_code == "ups" and tracker.tracking_number.startswith("1Z")
    assert tracker.tracking_url and tracker.estimated_delivery_earliest and tracker.estimated_delivery_latest
    assert tracker.estimated_delivery_earliest.tzinfo is not None
    assert tracker.latest_milestone is not None and tracker.latest_milestone.code == "IN_TRANSIT"

    raw_tracker = {"packageTrackerIdentifier": {"trackingNumber": tracker.tracking_number,
                                                "carrierCode": tracker.carrier_code}}
    bwp.update(order_id, milestone(package_id, raw_tracker, "DELIVERY_ATTEMPTED", occurredAt="2025-01-20T12:34:56Z",
                                   address={"locality": "Tacoma", "region": "WA", "country": "US"},
                                   message="Nobody home"),
               milestone(package_id, raw_tracker, "LOST"))
    lost = next(p for p in client.get_order(order_id).packages if p.package_id == package_id)  # type: ignore[union-attr]
    assert lost.state is PackageState.IN_TRANSIT and lost.failed_delivery
    assert lost.tracker is not None
    assert [m.code for m in lost.tracker.milestones] == ["IN_TRANSIT", "DELIVERY_ATTEMPTED", "LOST"]
    attempted = lost.tracker.milestones[1]
    assert (attempted.occurred_at, attempted.message, attempted.locality, attempted.region, attempted.country) == (
        datetime(2025, 1, 20, 12, 34, 56, tzinfo=UTC), "Nobody home", "Tacoma", "WA", "US")

    bwp.update(order_id, state(package_id, "CANCELLED", "UNDELIVERABLE"))
    gone = next(p for p in client.get_order(order_id).packages if p.package_id == package_id)  # type: ignore[union-attr]
    assert (gone.state, gone.reason, gone.failed_delivery) == (
        PackageState.CANCELLED, CancellationReason.UNDELIVERABLE, True)


def test_add_package_alias_is_idempotent(bwp: Bwp) -> None:
    client = orders(bwp.url)
    order_id, _, package_id = started(client)
    alias = Alias("OMS_DELIVERY_ID", "80000001")
    first = client.add_package_alias(order_id, package_id, alias)
    again = client.add_package_alias(order_id, package_id, alias)
    for order in (first, again):
        [package] = order.packages
        assert package.aliases == (alias,)
    with pytest.raises(Rejected) as refused:
        client.add_package_alias(order_id, "no-such-package", alias)
    assert refused.value.code == "PackageInformationDetailIdNotFound"


class RefuseKnownAliases(httpx.BaseTransport):
    """Forwards to the sandbox, but answers an ``updateOrder`` the way a stricter BwP might: a
    ValidationError for an alias the package has already (the sandbox itself accepts it silently),
    or for every alias with ``refuse_all``."""

    def __init__(self, url: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.raw = httpx.Client(base_url=url)
        self.refused = 0
        self.refuse_all = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.url.path.endswith("/graphql") else {}
        if body.get("operationName") == "updateOrder":
            order_id = body["variables"]["orderIdentifier"]["orderId"]
            stored = self.raw.get(f"/_sandbox/orders/{order_id}").json()
            wanted = body["variables"]["input"]["packageInformation"]["details"][0]
            have = next((p["aliases"] for p in stored["packageInformation"]["details"] if p["id"] == wanted["id"]), [])
            if self.refuse_all or wanted["aliases"][0] in have:
                self.refused += 1
                error = {"message": "alias exists", "extensions": {"classification": {
                    "type": "ValidationError", "code": "DuplicateAlias"}}}
                return httpx.Response(200, json={"data": None, "errors": [error]})
        return self.inner.handle_request(request)


def test_add_package_alias_accepts_a_refusal_when_the_alias_is_there(bwp: Bwp) -> None:
    transport = RefuseKnownAliases(bwp.url)
    client = orders(bwp.url, transport=transport)
    order_id, _, package_id = started(client)
    alias = Alias("OMS_DELIVERY_ID", "80000001")
    client.add_package_alias(order_id, package_id, alias)
    order = client.add_package_alias(order_id, package_id, alias)
    assert transport.refused == 1 and order.packages[0].aliases == (alias,)
    transport.refuse_all = True  # a refusal of an alias the package does not carry stays an error
    with pytest.raises(Rejected) as refused:
        client.add_package_alias(order_id, package_id, Alias("OMS_DELIVERY_ID", "80000002"))
    assert refused.value.code == "DuplicateAlias" and transport.refused == 2


def test_update_document_validates_for_packages(bwp: Bwp) -> None:
    """The sandbox mutation document used by the tests and the demo is valid against the schema."""
    order = bwp.create()
    assert bwp.gql(PACKAGES, variables(order["id"]))["data"]["updateOrderPackageInformation"]["order"]["id"]


# -- pure mapping -----------------------------------------------------------------------------------

def detail(**overrides: Any) -> dict[str, Any]:
    base = {"id": "pkg-1", "state": "IN_TRANSIT", "reason": None, "aliases": [],
            "packageInformationDetailsFor": {"orderLineItemAmounts": [
                {"lineItem": {"id": "line-1"}, "amount": {"value": 2, "unit": "ONE"}}]},
            "packageTracker": None}
    return {**base, **overrides}


def parse(*details: Any) -> Any:
    return packages_from_json({"details": list(details)}, "322-X", aliases=aliases_from_json)


@pytest.mark.parametrize(("raw", "message"), [
    (detail(id=None), "has no id"),
    (detail(state="LOST"), "state is 'LOST'"),
    (detail(state=None), "has no state"),
    (detail(reason="BORED"), "reason is 'BORED'"),
    (detail(packageInformationDetailsFor={"orderLineItemAmounts": [{"lineItem": {}, "amount": {"value": 1}}]}),
     "has no lineItem.id"),
    (detail(packageInformationDetailsFor={"orderLineItemAmounts": [
        {"lineItem": {"id": "l"}, "amount": {"value": "two"}}]}), "is not a number"),
    (detail(packageInformationDetailsFor={"orderLineItemAmounts": [
        {"lineItem": {"id": "l"}, "amount": {"value": 0}}]}), "is not a positive number"),
    (detail(aliases="x"), "aliases is not a list"),
    (detail(packageTracker={"packageTrackerIdentifier": {"trackingNumber": "1Z", "carrierCode": "ups"},
                            "latestMilestone": {"status": {"code": "LOST"}, "occurredAt": "yesterday"}}),
     "is not an ISO-8601 time"),
    ("not an object", "is not an object"),
])
def test_bad_package_details_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(BadResponse, match=message) as error:
        parse(raw)
    assert "322-X" in str(error.value)


def test_lenient_where_bwp_may_leave_things_out() -> None:
    assert packages_from_json(None, "o", aliases=aliases_from_json) == ()
    assert packages_from_json({"summary": {"state": "PENDING"}}, "o", aliases=aliases_from_json) == ()
    with pytest.raises(BadResponse, match="details is not a list"):
        packages_from_json({"details": {}}, "o", aliases=aliases_from_json)
    [package] = parse(detail(packageTracker={"packageTrackerIdentifier": None}, packageInformationDetailsFor=None))
    assert package.tracker is None and package.lines == ()
    [package] = parse(detail(packageTracker={
        "packageTrackerIdentifier": {"trackingNumber": "1Z9", "carrierCode": "usps"},
        "estimatedDeliveryDate": {"earliest": "2025-01-22", "latest": None},
        "latestMilestone": {"status": {"code": "DELIVERED"}}, "milestones": [None, {"status": {}}]}))
    assert package.tracker is not None
    assert package.tracker.estimated_delivery_earliest == datetime(2025, 1, 22, tzinfo=UTC)
    assert package.tracker.latest_milestone is not None and package.tracker.latest_milestone.occurred_at is None
    assert package.tracker.milestones == ()


def test_order_from_json_carries_packages() -> None:
    raw = {"id": "322-X", "metadata": {"executionState": "STARTED"}, "lineItems": [],
           "packageInformation": {"details": [detail(aliases=[{"aliasType": "OMS", "aliasId": "1"}])]}}
    order = order_from_json(raw)
    [package] = order.packages
    assert package.aliases == (Alias("OMS", "1"),) and package.lines == (PackageLine("line-1", Decimal(2)),)
    assert order_from_json({**raw, "packageInformation": None}).packages == ()


def test_parse_time() -> None:
    assert parse_time("2025-01-20T12:34:56.789Z", "t") == datetime(2025, 1, 20, 12, 34, 56, 789000, tzinfo=UTC)
    assert parse_time("2025-01-20T12:34:56+02:00", "t").utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert parse_time(None, "t") is None
    with pytest.raises(BadResponse):
        parse_time(5, "t")
