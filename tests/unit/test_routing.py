"""Every rule of ``decide``: which orders go to Amazon, which are refused, and what Amazon is sent."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from primebridge.domain.model import (
    Address,
    Alias,
    DeliveryProvider,
    ExecutionState,
    FulfillmentRequest,
    Money,
    SalesOrder,
    SalesOrderLine,
)
from primebridge.domain.routing import (
    MAX_AMAZON_OTHER_LINES,
    MAX_AMAZON_PRIME_LINES,
    Fulfill,
    Invalid,
    MissingPrimeData,
    NotForAmazon,
    OtherLines,
    RoutingPolicy,
    decide,
)

AMZ = "AMZ1"
SHIP_TO = Address(name="Ada Lovelace", street="1 Main St", city="Seattle", postal_code="98101",
                  country_code="US", region="WA", phone="+1 206 555 0100")
POLICY = RoutingPolicy(
    amazon_locations=frozenset({AMZ}),
    prime_shipping_methods=frozenset({"PRIME"}),
    delivery_speeds={"PRIME": "ONE_DAY", "GROUND": "STANDARD", "EXPRESS": "TWO_DAY"},
)


def line(line_id: str = "10", item: str = "ITEM-1", qty: str = "1", location: str | None = AMZ,
         **kw: object) -> SalesOrderLine:
    values: dict[str, object] = {"delivery_preview_id": f"prev-{line_id}",
                                 "delivery_offer_id": f"offer-{line_id}"}
    values.update(kw)
    return SalesOrderLine(line_id=line_id, item=item, quantity=Decimal(qty), location=location,
                          unit_price=Money(Decimal("9.99"), "USD"), title=f"Item {item}", **values)  # type: ignore[arg-type]


def order(*lines: SalesOrderLine, **kw: object) -> SalesOrder:
    values: dict[str, object] = {
        "oms": "sap", "order_id": "4711", "currency": "USD", "ship_to": SHIP_TO,
        "customer_name": "Ada Lovelace", "customer_email": "ada@example.com",
        "order_type": "OR", "status": "A", "shipping_method": "PRIME",
        "shopper_identity_token": "shopper-tok",
        "total": Money(Decimal("19.98"), "USD"),
    }
    values.update(kw)
    return SalesOrder(lines=lines or (line(),), **values)  # type: ignore[arg-type]


def fulfill(decision: object) -> FulfillmentRequest:
    assert isinstance(decision, Fulfill), decision
    return decision.request


def invalid(decision: object, code: str) -> Invalid:
    assert isinstance(decision, Invalid), decision
    assert decision.code == code, decision
    return decision


# -- eligibility filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(("order_type", "eligible"), [("OR", True), ("RE", False), (None, False)])
def test_order_type_filter(order_type: str | None, eligible: bool) -> None:
    policy = replace(POLICY, order_types=frozenset({"OR"}))
    decision = decide(order(order_type=order_type), policy)
    if eligible:
        fulfill(decision)
    else:
        assert isinstance(decision, NotForAmazon) and "order type" in decision.reason


def test_no_order_type_filter_routes_every_type() -> None:
    fulfill(decide(order(order_type="ZXX"), POLICY))


@pytest.mark.parametrize(("status", "eligible"), [("A", True), ("B", True), ("C", False), (None, False)])
def test_status_filter(status: str | None, eligible: bool) -> None:
    policy = replace(POLICY, statuses=frozenset({"A", "B"}))
    decision = decide(order(status=status), policy)
    if eligible:
        fulfill(decision)
    else:
        assert isinstance(decision, NotForAmazon) and "status" in decision.reason


def test_control_flag_required() -> None:
    policy = replace(POLICY, require_control_flag=True)
    decision = decide(order(control_flag=False), policy)
    assert isinstance(decision, NotForAmazon) and "control flag" in decision.reason
    fulfill(decide(order(control_flag=True), policy))
    fulfill(decide(order(control_flag=False), POLICY))


def test_filters_come_before_validation() -> None:
    """An order of another type is none of Amazon's business even when it could not be sent anyway."""
    policy = replace(POLICY, order_types=frozenset({"OR"}))
    assert isinstance(decide(order(order_type="RE", ship_to=None), policy), NotForAmazon)


def test_no_amazon_line_is_not_for_amazon() -> None:
    decision = decide(order(line(location="1000"), line("20", location=None)), POLICY)
    assert isinstance(decision, NotForAmazon) and "Amazon" in decision.reason


def test_no_amazon_line_wins_over_missing_ship_to() -> None:
    assert isinstance(decide(order(line(location="1000"), ship_to=None), POLICY), NotForAmazon)


def test_only_cancelled_amazon_lines_is_not_for_amazon() -> None:
    decision = decide(order(line(cancelled=True), line("20", location="1000")), POLICY)
    assert isinstance(decision, NotForAmazon)


# -- ship-to ---------------------------------------------------------------------------------------


def test_missing_ship_to() -> None:
    invalid(decide(order(ship_to=None), POLICY), "MissingShipTo")


@pytest.mark.parametrize("field_name", ["name", "street", "city", "postal_code", "country_code"])
def test_incomplete_ship_to_names_the_field(field_name: str) -> None:
    ship_to = replace(SHIP_TO, **{field_name: ""})
    decision = invalid(decide(order(ship_to=ship_to), POLICY), "IncompleteShipTo")
    assert field_name in decision.reason


def test_ship_to_without_optional_region_and_phone_is_fine() -> None:
    request = fulfill(decide(order(ship_to=replace(SHIP_TO, region=None, phone=None)), POLICY))
    assert request.recipient.region is None


# -- lines: quantity, SKU --------------------------------------------------------------------------


@pytest.mark.parametrize("qty", ["0", "-1", "-0.5"])
def test_quantity_must_be_positive(qty: str) -> None:
    decision = invalid(decide(order(line(qty=qty)), POLICY), "InvalidQuantity")
    assert "line 10" in decision.reason


def test_fractional_positive_quantity_passes_through() -> None:
    assert fulfill(decide(order(line(qty="1.5")), POLICY)).lines[0].quantity == Decimal("1.5")


def test_merchant_line_quantity_is_checked_when_sent() -> None:
    decision = decide(order(line(), line("20", location="1000", qty="0")), POLICY)
    assert invalid(decision, "InvalidQuantity").reason.startswith("line 20")


def test_omitted_merchant_line_is_not_checked() -> None:
    policy = replace(POLICY, other_lines=OtherLines.OMIT, sku_identity_fallback=False,
                     sku_map={"ITEM-1": "SKU-1"})
    request = fulfill(decide(order(line(), line("20", item="NOMAP", location="1000", qty="0")), policy))
    assert [f.oms_line_id for f in request.lines] == ["10"]


def test_unmapped_sku_without_identity_fallback() -> None:
    policy = replace(POLICY, sku_identity_fallback=False)
    decision = invalid(decide(order(line(item="WIDGET")), policy), "UnmappedSku")
    assert "WIDGET" in decision.reason and "line 10" in decision.reason


def test_sku_mapped_through_sku_map() -> None:
    policy = replace(POLICY, sku_map={"WIDGET": "AMZ-WIDGET-01"}, sku_identity_fallback=False)
    request = fulfill(decide(order(line(item="WIDGET")), policy))
    assert request.lines[0].sku == "AMZ-WIDGET-01"


def test_sku_map_wins_over_identity_fallback() -> None:
    policy = replace(POLICY, sku_map={"WIDGET": "AMZ-WIDGET-01"})
    skus = [f.sku for f in fulfill(decide(order(line(item="WIDGET"), line("20", item="BOLT")), policy)).lines]
    assert skus == ["AMZ-WIDGET-01", "BOLT"]


def test_unmapped_merchant_line_is_invalid_when_sent() -> None:
    policy = replace(POLICY, sku_map={"ITEM-1": "SKU-1"}, sku_identity_fallback=False)
    decision = decide(order(line(), line("20", item="NOMAP", location="1000")), policy)
    assert "NOMAP" in invalid(decision, "UnmappedSku").reason


# -- line limits -----------------------------------------------------------------------------------


def _lines(n: int, start: int = 1, **kw: object) -> tuple[SalesOrderLine, ...]:
    return tuple(line(str(i * 10), item=f"ITEM-{i}", **kw) for i in range(start, start + n))  # type: ignore[arg-type]


def test_limits_match_the_reference() -> None:
    assert MAX_AMAZON_PRIME_LINES == 20 and MAX_AMAZON_OTHER_LINES == 20


def test_twenty_prime_lines_pass_twenty_one_are_too_many() -> None:
    request = fulfill(decide(order(*_lines(20)), POLICY))
    assert len(request.lines) == 20 and all(f.prime for f in request.lines)
    decision = invalid(decide(order(*_lines(21)), POLICY), "TooManyLines")
    assert "21 Prime lines" in decision.reason


def test_twenty_non_prime_amazon_lines_pass_twenty_one_are_too_many() -> None:
    request = fulfill(decide(order(*_lines(20), shipping_method="GROUND"), POLICY))
    assert len(request.lines) == 20 and not any(f.prime for f in request.lines)
    decision = invalid(decide(order(*_lines(21), shipping_method="GROUND"), POLICY), "TooManyLines")
    assert "21 non-Prime" in decision.reason


def test_twenty_prime_plus_twenty_non_prime_fit_in_one_order() -> None:
    policy = replace(POLICY, missing_prime_data=MissingPrimeData.NON_PRIME)
    lines = _lines(20) + _lines(20, start=21, delivery_preview_id=None)
    request = fulfill(decide(order(*lines), policy))
    assert sum(f.prime for f in request.lines) == 20 and len(request.lines) == 40


def test_twenty_one_non_prime_next_to_prime_lines_are_too_many() -> None:
    policy = replace(POLICY, missing_prime_data=MissingPrimeData.NON_PRIME)
    lines = _lines(1) + _lines(21, start=2, delivery_offer_id=None)
    assert "non-Prime" in invalid(decide(order(*lines), policy), "TooManyLines").reason


def test_cancelled_lines_do_not_count_against_the_limit() -> None:
    lines = _lines(20) + _lines(3, start=21, cancelled=True)
    assert len(fulfill(decide(order(*lines), POLICY)).lines) == 20


def test_merchant_lines_sent_to_amazon_count_against_the_other_items_limit() -> None:
    lines = _lines(1) + _lines(21, start=2, location="1000")
    invalid(decide(order(*lines), POLICY), "TooManyLines")


def test_omitted_merchant_lines_do_not_count() -> None:
    policy = replace(POLICY, other_lines=OtherLines.OMIT)
    lines = _lines(1) + _lines(25, start=2, location="1000")
    assert len(fulfill(decide(order(*lines), policy)).lines) == 1


# -- Prime data ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line_kw", "order_kw", "named"), [
    ({"delivery_preview_id": None}, {}, "delivery preview id"),
    ({"delivery_offer_id": ""}, {}, "delivery offer id"),
    ({}, {"shopper_identity_token": None}, "shopper identity token"),
])
def test_prime_line_missing_data_is_rejected(line_kw: dict[str, object], order_kw: dict[str, object],
                                              named: str) -> None:
    decision = invalid(decide(order(line(**line_kw), **order_kw), POLICY), "MissingPrimeData")  # type: ignore[arg-type]
    assert named in decision.reason and "line 10" in decision.reason


def test_missing_prime_data_reason_lists_everything_missing() -> None:
    decision = decide(order(line(delivery_preview_id=None, delivery_offer_id=None),
                            shopper_identity_token=None), POLICY)
    reason = invalid(decision, "MissingPrimeData").reason
    for name in ("delivery preview id", "delivery offer id", "shopper identity token"):
        assert name in reason


@pytest.mark.parametrize(("line_kw", "order_kw"), [
    ({"delivery_preview_id": None}, {}),
    ({"delivery_offer_id": None}, {}),
    ({}, {"shopper_identity_token": None}),
])
def test_prime_line_missing_data_is_sent_as_non_prime(line_kw: dict[str, object],
                                                      order_kw: dict[str, object]) -> None:
    policy = replace(POLICY, missing_prime_data=MissingPrimeData.NON_PRIME)
    request = fulfill(decide(order(line(**line_kw), **order_kw), policy))  # type: ignore[arg-type]
    (sent,) = request.lines
    assert sent.provider is DeliveryProvider.AMAZON and sent.prime is False
    assert sent.delivery_preview_id is None and sent.delivery_offer_id is None
    assert sent.delivery_speed == "ONE_DAY"
    assert request.shopper_identity_token is None


def test_shopper_token_kept_when_any_line_stays_prime() -> None:
    policy = replace(POLICY, missing_prime_data=MissingPrimeData.NON_PRIME)
    request = fulfill(decide(order(line(), line("20", delivery_preview_id=None)), policy))
    assert [f.prime for f in request.lines] == [True, False]
    first = request.lines[0]
    assert (first.delivery_preview_id, first.delivery_offer_id) == ("prev-10", "offer-10")
    assert request.shopper_identity_token == "shopper-tok"


@pytest.mark.parametrize("method", ["GROUND", None, ""])
def test_non_prime_shipping_method_needs_no_prime_data(method: str | None) -> None:
    decision = decide(order(line(delivery_preview_id=None, delivery_offer_id=None),
                            shipping_method=method, shopper_identity_token=None), POLICY)
    request = fulfill(decision)
    assert request.lines[0].prime is False and request.shopper_identity_token is None


def test_prime_line_carries_preview_and_offer_ids() -> None:
    request = fulfill(decide(order(), POLICY))
    (sent,) = request.lines
    assert (sent.prime, sent.delivery_preview_id, sent.delivery_offer_id) == (True, "prev-10", "offer-10")
    assert request.shopper_identity_token == "shopper-tok"


# -- other lines -----------------------------------------------------------------------------------


def test_other_lines_sent_as_merchant() -> None:
    request = fulfill(decide(order(line(), line("20", item="LOCAL", location="1000")), POLICY))
    amazon, merchant = request.lines
    assert amazon.provider is DeliveryProvider.AMAZON and amazon.delivery_speed == "ONE_DAY"
    assert merchant.provider is DeliveryProvider.MERCHANT and merchant.sku == "LOCAL"
    assert merchant.prime is False and merchant.delivery_speed is None
    assert merchant.delivery_preview_id is None and merchant.delivery_offer_id is None


def test_merchant_line_needs_no_prime_data() -> None:
    decision = decide(order(line(), line("20", location="1000", delivery_preview_id=None)), POLICY)
    assert len(fulfill(decision).lines) == 2


def test_other_lines_omitted() -> None:
    policy = replace(POLICY, other_lines=OtherLines.OMIT)
    lines = (line("10", location="1000"), line("20"), line("30", location=None))
    request = fulfill(decide(order(*lines), policy))
    assert [f.oms_line_id for f in request.lines] == ["20"]


def test_cancelled_lines_are_ignored() -> None:
    policy = replace(POLICY, sku_identity_fallback=False, sku_map={"ITEM-1": "SKU-1"})
    lines = (line(), line("20", item="NOMAP", qty="0", cancelled=True),
             line("30", item="NOMAP", location="1000", cancelled=True))
    request = fulfill(decide(order(*lines), policy))
    assert [f.oms_line_id for f in request.lines] == ["10"]


# -- order-level fields ----------------------------------------------------------------------------


def test_hold_creates_not_started_else_started() -> None:
    assert fulfill(decide(order(on_hold=True), POLICY)).execution_state is ExecutionState.NOT_STARTED
    assert fulfill(decide(order(on_hold=False), POLICY)).execution_state is ExecutionState.STARTED


@pytest.mark.parametrize(("method", "speed"), [
    ("PRIME", "ONE_DAY"), ("EXPRESS", "TWO_DAY"), ("GROUND", "STANDARD"), ("COURIER", "STANDARD"),
    (None, "STANDARD"),
])
def test_delivery_speed_from_the_map(method: str | None, speed: str) -> None:
    request = fulfill(decide(order(line(), shipping_method=method), POLICY))
    assert request.lines[0].delivery_speed == speed


def test_default_delivery_speed_is_configurable() -> None:
    policy = replace(POLICY, default_delivery_speed="ECONOMY")
    request = fulfill(decide(order(shipping_method="UNKNOWN"), policy))
    assert request.lines[0].delivery_speed == "ECONOMY"


def test_order_and_line_aliases_contain_the_order_id() -> None:
    request = fulfill(decide(order(line("10"), line("20"), order_id="4711"), POLICY))
    assert request.alias == Alias("OMS_ORDER_ID", "4711")
    assert [f.alias for f in request.lines] == [Alias("OMS_LINE_ID", "4711/10"),
                                                 Alias("OMS_LINE_ID", "4711/20")]
    other = fulfill(decide(order(line("10"), order_id="4712"), POLICY))
    assert other.lines[0].alias != request.lines[0].alias


def test_alias_types_come_from_the_policy() -> None:
    policy = replace(POLICY, alias_type="EXTERNAL_ID", line_alias_type="OMS_ORDERLINE_KEY")
    request = fulfill(decide(order(), policy))
    assert request.alias == Alias("EXTERNAL_ID", "4711")
    assert request.lines[0].alias == Alias("OMS_ORDERLINE_KEY", "4711/10")


def test_request_carries_the_order_data() -> None:
    request = fulfill(decide(order(tax_total=Money(Decimal("1.00"), "USD")), POLICY))
    assert (request.oms, request.oms_order_id, request.currency) == ("sap", "4711", "USD")
    assert request.recipient == SHIP_TO
    assert (request.customer_name, request.customer_email) == ("Ada Lovelace", "ada@example.com")
    assert request.total == Money(Decimal("19.98"), "USD")
    assert request.tax_total == Money(Decimal("1.00"), "USD")
    sent = request.lines[0]
    assert (sent.title, sent.unit_price, sent.quantity) == ("Item ITEM-1", Money(Decimal("9.99"), "USD"), 1)


# -- line flag routing -----------------------------------------------------------------------------


@pytest.mark.parametrize(("use_line_flag", "flag", "location", "amazon"), [
    (True, True, None, True),
    (True, True, "1000", True),
    (True, False, None, False),
    (True, None, None, False),
    (True, False, AMZ, True),      # an Amazon location is Amazon's with or without the flag
    (False, True, None, False),    # the flag means nothing unless the policy says so
    (False, True, "1000", False),
])
def test_line_flag_routing(use_line_flag: bool, flag: bool | None, location: str | None,
                           amazon: bool) -> None:
    policy = replace(POLICY, use_line_flag=use_line_flag)
    decision = decide(order(line(location=location, amazon_flag=flag), line("20", location="1000")), policy)
    if not amazon:
        assert isinstance(decision, NotForAmazon)
        return
    first, second = fulfill(decision).lines
    assert first.provider is DeliveryProvider.AMAZON and second.provider is DeliveryProvider.MERCHANT


def test_netsuite_style_policy_routes_by_flag_only() -> None:
    policy = RoutingPolicy(use_line_flag=True, statuses=frozenset({"A", "B"}),
                           prime_shipping_methods=frozenset({"PRIME"}))
    decision = decide(order(line(location="3", amazon_flag=True), line("2", location="3", amazon_flag=False),
                            oms="netsuite", status="B"), policy)
    providers = [f.provider for f in fulfill(decision).lines]
    assert providers == [DeliveryProvider.AMAZON, DeliveryProvider.MERCHANT]
