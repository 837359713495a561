"""NetSuiteSalesOrders (the SalesOrderSystem port) against the sandbox, plus the pure mapping rules."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from tests.sandbox import netsuite_fixtures
from tests.sandbox.netsuite_fixtures import T0, admin, netsuite_config, serve

from primebridge.config import NetSuiteFieldsConfig
from primebridge.connectors.netsuite import build_netsuite_orders
from primebridge.connectors.netsuite.mapping import ship_to, to_sales_order
from primebridge.connectors.netsuite.sales_orders import NetSuiteSalesOrders, changed_orders_query
from primebridge.domain.errors import ConfigError, Rejected
from primebridge.domain.model import Address, Money
from primebridge.ports import SalesOrderSystem

ADDRESS = {"addressee": "Ada Lovelace", "addr1": "1 Main St", "addr2": "Apt 2", "city": "Seattle",
           "state": "WA", "zip": "98101", "country": "us", "phone": "+1 206 555 0100"}


server = serve()
url = netsuite_fixtures.url_at_t0


def _orders(url: str, **overrides: Any) -> NetSuiteSalesOrders:
    return build_netsuite_orders(netsuite_config(url, **overrides))


def _seed(url: str, **fields: Any) -> str:
    body: dict[str, Any] = {"customer": {"name": "Ada Lovelace", "email": "ada@example.com"}, "status": "B",
                            "lines": [{"item": "SKU-1", "quantity": 1, "rate": "10", "location": "AMZ-US"}]}
    body.update(fields)
    return admin(url, "POST", "sales-orders", body)["id"]


def _ops(url: str) -> dict[str, int]:
    return admin(url, "GET", "stats")["operations"]


def test_adapter_satisfies_the_port(url: str) -> None:
    orders: SalesOrderSystem = _orders(url)
    assert orders.name == "netsuite"


def test_read_order_maps_header_lines_and_custom_fields(url: str) -> None:
    order_id = _seed(url, status="A", ship_method={"id": "51", "name": "Prime Two-Day"}, currency="USD",
                     shipping_address=ADDRESS, shopper_token="shopper-tok", amazon_order_id="AMZ-9",
                     lines=[
                         {"item": {"id": "900", "name": "Widgets : WIDGET-1"}, "quantity": 2, "rate": "9.99",
                          "location": {"id": "8", "name": "Amazon MCF"}, "amazon": True,
                          "delivery_preview_id": "prev-1", "delivery_offer_id": "offer-1",
                          "amazon_line_id": "AL-1", "description": "Blue widget"},
                         {"item": "GADGET", "quantity": 1, "rate": "5", "location": "Store", "closed": True},
                         {"item": "10% off", "quantity": 1, "rate": "-1.5", "item_type": "Discount"},
                     ])
    order = _orders(url).read_order(order_id)
    assert order is not None
    assert (order.oms, order.order_id, order.extra["tranId"]) == ("netsuite", order_id, f"SO{order_id}")
    assert (order.status, order.on_hold, order.currency) == ("A", True, "USD")
    assert order.ship_to == Address(name="Ada Lovelace", street="1 Main St, Apt 2", city="Seattle",
                                    postal_code="98101", country_code="US", region="WA", phone="+1 206 555 0100")
    assert (order.customer_name, order.customer_email) == ("Ada Lovelace", "ada@example.com")
    assert (order.shipping_method, order.shopper_identity_token, order.amazon_order_id) == \
        ("51", "shopper-tok", "AMZ-9")
    assert order.changed_at == T0 and order.total == Money(Decimal("18.48"), "USD")
    first, second = order.lines  # the discount line carries no goods and is left out
    assert (first.line_id, first.item, first.quantity, first.location) == ("1", "WIDGET-1", Decimal(2), "8")
    assert first.unit_price == Money(Decimal("9.99"), "USD") and first.title == "Blue widget"
    assert (first.amazon_flag, first.delivery_preview_id, first.delivery_offer_id, first.amazon_line_id) == \
        (True, "prev-1", "offer-1", "AL-1")
    assert not first.cancelled
    assert (second.line_id, second.item, second.cancelled, second.amazon_flag) == ("2", "GADGET", True, False)


def test_hold_comes_from_the_hold_field_too(url: str) -> None:
    held = _seed(url, status="B", hold=True)
    free = _seed(url, status="B", hold=False)
    orders = _orders(url)
    assert orders.read_order(held).on_hold is True  # type: ignore[union-attr]
    assert orders.read_order(free).on_hold is False  # type: ignore[union-attr]
    no_field = _orders(url, fields=NetSuiteFieldsConfig(hold_field=None))
    assert no_field.read_order(held).on_hold is False  # type: ignore[union-attr]


def test_order_without_address_and_unknown_order(url: str) -> None:
    order_id = _seed(url, shipping_address=None)
    orders = _orders(url)
    order = orders.read_order(order_id)
    assert order is not None and order.ship_to is None
    assert orders.read_order("777777") is None


def test_all_lines_closed_reads_as_closed_status(url: str) -> None:
    order_id = _seed(url, lines=[{"item": "SKU-1", "quantity": 1, "closed": True}])
    order = _orders(url).read_order(order_id)
    assert order is not None and order.status == "H" and order.extra["orderStatus"] == "B"
    assert order.lines[0].cancelled


def test_currency_iso_code_is_looked_up_once(url: str) -> None:
    ids = [_seed(url, currency="EUR"), _seed(url, currency="EUR")]
    orders = _orders(url)
    assert {orders.read_order(i).currency for i in ids} == {"EUR"}  # type: ignore[union-attr]
    assert _ops(url)["GET currency"] == 1


def test_changed_order_ids_from_a_watermark_oldest_first(url: str) -> None:
    first = _seed(url)
    admin(url, "PUT", "clock", {"advance_seconds": 60})
    third, second = _seed(url, id=3000), _seed(url, id=2000)
    orders = _orders(url)
    assert list(orders.changed_order_ids(T0 - timedelta(days=1))) == [
        (first, T0), (second, T0 + timedelta(seconds=60)), (third, T0 + timedelta(seconds=60))]
    # >= : an order changed in the watermark's own second is read again, not lost
    assert [i for i, _ in orders.changed_order_ids(T0 + timedelta(seconds=60, microseconds=500))] == \
        [second, third]
    assert list(orders.changed_order_ids(T0 + timedelta(seconds=61))) == []


def test_changes_by_the_integration_user_are_not_reported(url: str) -> None:
    a, b = _seed(url), _seed(url)
    admin(url, "PUT", "clock", {"advance_seconds": 60})
    echo_free = _orders(url, integration_user_id="7")
    order = echo_free.read_order(a)
    assert order is not None
    echo_free.write_amazon_ids(order, "AMZ-1", {"1": "AL-1"})
    since = T0 + timedelta(seconds=30)
    assert list(echo_free.changed_order_ids(since)) == []
    assert [i for i, _ in _orders(url).changed_order_ids(since)] == [a]  # without the exclusion
    admin(url, "PUT", "clock", {"advance_seconds": 60})
    admin(url, "PATCH", f"sales-orders/{b}", {"status": "B", "user_id": "3"})  # a user edits it
    assert list(echo_free.changed_order_ids(since)) == [(b, T0 + timedelta(seconds=120))]


def test_integration_user_must_be_an_internal_id(url: str) -> None:
    with pytest.raises(ConfigError, match="integration_user_id"):
        _orders(url, integration_user_id="7 OR 1=1")


def test_changed_orders_query_shape() -> None:
    query = changed_orders_query(T0, exclude_user="7")
    assert "t.type = 'SalesOrd'" in query
    assert "t.lastmodifieddate >= TO_TIMESTAMP('2025-03-01 12:00:00', 'YYYY-MM-DD HH24:MI:SS')" in query
    assert "t.lastmodifiedby <> 7" in query
    assert query.endswith("ORDER BY t.lastmodifieddate, t.id")


def test_write_amazon_ids_patches_once_and_is_idempotent(url: str) -> None:
    order_id = _seed(url, lines=[{"item": "A", "quantity": 1}, {"item": "B", "quantity": 2},
                                 {"item": "C", "quantity": 1, "amazon_line_id": "keep-me"}])
    orders = _orders(url)
    order = orders.read_order(order_id)
    assert order is not None
    orders.write_amazon_ids(order, "AMZ-42", {"1": "AL-1", "2": "AL-2"})
    assert _ops(url)["PATCH salesOrder"] == 1
    again = orders.read_order(order_id)
    assert again is not None and again.amazon_order_id == "AMZ-42"
    assert [line.amazon_line_id for line in again.lines] == ["AL-1", "AL-2", "keep-me"]
    orders.write_amazon_ids(again, "AMZ-42", {"1": "AL-1", "2": "AL-2"})
    assert _ops(url)["PATCH salesOrder"] == 1  # nothing to change → no call


def test_write_amazon_ids_sends_only_what_is_missing(url: str) -> None:
    order_id = _seed(url, amazon_order_id="AMZ-7",
                     lines=[{"item": "A", "quantity": 1, "amazon_line_id": "AL-1"}, {"item": "B", "quantity": 1}])
    orders = _orders(url)
    order = orders.read_order(order_id)
    assert order is not None
    orders.write_amazon_ids(order, "AMZ-7", {"1": "AL-1", "2": "AL-2"})
    after = orders.read_order(order_id)
    assert after is not None and [line.amazon_line_id for line in after.lines] == ["AL-1", "AL-2"]
    assert admin(url, "GET", f"sales-orders/{order_id}")["_sandbox"]["lastModifiedBy"] == "7"


def test_write_amazon_ids_refuses_unknown_lines(url: str) -> None:
    orders = _orders(url)
    order = orders.read_order(_seed(url))
    assert order is not None
    with pytest.raises(Rejected, match="no line 9"):
        orders.write_amazon_ids(order, "AMZ-1", {"9": "AL-9"})
    assert "PATCH salesOrder" not in _ops(url)


def test_factory_resolves_secret_references(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_TEST_NS_TS", "sandbox-ts")
    cfg = netsuite_config(url, token_secret="env:PB_TEST_NS_TS")
    assert "sandbox-ts" not in repr(cfg)
    assert build_netsuite_orders(cfg).read_order(_seed(url)) is not None
    with pytest.raises(ConfigError, match="consumer_secret"):
        build_netsuite_orders(netsuite_config(url).model_copy(update={"consumer_secret": None}))


# -- mapping without a server --------------------------------------------------------------------------


def _record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": "5", "currency": {"id": "1"}, "orderStatus": "B",
                              "lastModifiedDate": "2025-01-02T03:04:05Z",
                              "item": {"items": [{"line": 3, "item": {"id": "77"}, "quantity": 1.0,
                                                  "amount": 12.5, "custcol_pb_amazon_fulfilled": "T"}]}}
    record.update(fields)
    return record


def test_mapping_tolerates_simple_enums_text_checkboxes_and_missing_names() -> None:
    order = to_sales_order(_record(), currency="USD", fields=NetSuiteFieldsConfig())
    (line,) = order.lines
    assert (order.status, line.line_id, line.item, line.amazon_flag) == ("B", "3", "77", True)
    assert line.unit_price == Money(Decimal("12.5"), "USD")


def test_mapping_rejects_unexpanded_sublists_and_bad_numbers() -> None:
    with pytest.raises(Rejected, match="expandSubResources"):
        to_sales_order(_record(item={"links": []}), currency="USD", fields=NetSuiteFieldsConfig())
    bad = _record(item={"items": [{"line": 1, "item": {"id": "1"}, "quantity": "lots"}]})
    with pytest.raises(Rejected, match="line 1 quantity 'lots'"):
        to_sales_order(bad, currency="USD", fields=NetSuiteFieldsConfig())


@pytest.mark.parametrize("quantity", ["NaN", "Infinity", float("inf"), float("nan")])
def test_mapping_rejects_non_finite_quantities(quantity: Any) -> None:
    # Python's json accepts NaN/Infinity; they used to pass as Decimals and crash later, unnamed.
    bad = _record(item={"items": [{"line": 1, "item": {"id": "1"}, "quantity": quantity}]})
    with pytest.raises(Rejected, match=r"line 1 quantity .* is not a finite number"):
        to_sales_order(bad, currency="USD", fields=NetSuiteFieldsConfig())


def test_ship_to_falls_back_to_attention_and_customer_name() -> None:
    record = {"entity": {"id": "1", "refName": "ACME Corp"},
              "shippingAddress": {"attention": "Receiving", "addr1": "5 Dock Rd", "city": "Reno", "zip": "89501",
                                  "country": {"id": "US", "refName": "United States"}}}
    assert ship_to(record, "1") == Address("Receiving", "5 Dock Rd", "Reno", "89501", "US")
    record["shippingAddress"].pop("attention")
    assert ship_to(record, "1").name == "ACME Corp"  # type: ignore[union-attr]
    assert ship_to({"shippingAddress": {"links": []}}, "1") is None
