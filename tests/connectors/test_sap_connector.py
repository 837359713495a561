"""The SAP connector (OData client, auth, errors, sales-order adapter) against the real SAP sandbox."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from tests.sandbox import sap_fixtures
from tests.sandbox.sap_fixtures import SERVICE, Track, sample_order, sap_config, seed

from primebridge.config import SapFieldsConfig
from primebridge.connectors.http import build_client
from primebridge.connectors.sap import SapBasicAuth, build_sap_orders
from primebridge.connectors.sap.mapping import map_order
from primebridge.connectors.sap.odata import ODataClient
from primebridge.connectors.sap.values import entity_etag
from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.domain.model import Address
from primebridge.sandbox.server import ThreadedServer, free_port

# The shared fixtures (a conftest would be the usual home; these are re-exported by name).
sap_server = sap_fixtures.sap_server
admin = sap_fixtures.admin
track = sap_fixtures.track


def odata_client(url: str, *, page_size: int = 100, password: str = "s3cret") -> ODataClient:
    http = build_client(system="sap", base_url=url, timeout=10)
    return ODataClient(http, SERVICE, auth=SapBasicAuth("bridge", password), page_size=page_size)


def mock_http(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return build_client(system="sap", base_url="http://127.0.0.1:1", timeout=5,
                        transport=httpx.MockTransport(handler))


def stats(admin: httpx.Client) -> dict[str, int]:
    return dict(admin.get("/_sandbox/stats").json())


def header_text(admin: httpx.Client, order_id: str, text_id: str) -> list[str]:
    view = admin.get(f"/_sandbox/sales-orders/{order_id}").json()
    return [t["LongText"] for t in view["texts"] if t["LongTextID"] == text_id]


# -- read_order mapping -------------------------------------------------------------------------

def test_read_order_maps_header_partners_texts_and_lines(track: Track, sap_server: ThreadedServer,
                                                         admin: httpx.Client) -> None:
    order_id = seed(admin)
    order = track(build_sap_orders(sap_config(sap_server.url))).read_order(order_id)

    assert order is not None
    assert (order.oms, order.order_id, order.order_type, order.currency) == ("sap", order_id, "OR", "USD")
    assert order.ship_to == Address(name="Bob Receiver", street="Pine St 22", city="Tacoma",
                                    postal_code="98402", country_code="US", region="WA", phone="+1 555 0100")
    assert (order.customer_name, order.customer_email, order.customer_id) == (
        "Ann Buyer", "ann@example.com", "1000001")
    assert order.on_hold is False
    assert order.control_flag is True
    assert order.shopper_identity_token == "shopper-token-1"
    assert order.shipping_method == "01"
    assert order.amazon_order_id is None
    # TotalNetAmount excludes the rejected line: 2 x 19.99 + 1 x 5.00
    assert order.total is not None and order.total.amount == Decimal("44.98")
    assert order.tax_total is not None and order.tax_total.amount == Decimal("3.60")

    first, second, third = order.lines
    assert (first.line_id, first.item, first.quantity, first.location, first.title) == (
        "10", "SKU-1", Decimal("2"), "1010", "Widget")
    assert first.unit_price is not None and first.unit_price.amount == Decimal("19.99")
    assert first.tax is not None and first.tax.amount == Decimal("3.20")
    assert (first.delivery_preview_id, first.delivery_offer_id) == ("preview-1", "offer-1")
    assert first.cancelled is False
    assert second.location == "2000" and second.delivery_preview_id is None
    assert third.cancelled is True

    view = admin.get(f"/_sandbox/sales-orders/{order_id}").json()
    assert order.version == view["etag"]
    stored = datetime.fromisoformat(view["LastChangeDateTime"])
    assert order.changed_at is not None and order.changed_at.tzinfo is not None
    # JSON carries milliseconds; the stored value has microseconds
    assert timedelta(0) <= stored - order.changed_at < timedelta(milliseconds=1)


def test_read_order_hold_missing_control_text_and_no_ship_to(track: Track, sap_server: ThreadedServer,
                                                            admin: httpx.Client) -> None:
    order_id = seed(admin, sample_order(delivery_block="01", ship_to=None, texts={"Z006": "tok"}))
    order = track(build_sap_orders(sap_config(sap_server.url))).read_order(order_id)
    assert order is not None
    assert order.on_hold is True
    assert order.control_flag is False
    assert order.ship_to is None


def test_read_order_matches_internal_partner_function_codes(track: Track, sap_server: ThreadedServer,
                                                           admin: httpx.Client) -> None:
    ship_to = {**sample_order()["ship_to"], "function": "WE"}  # a system answering with internal codes
    order_id = seed(admin, sample_order(ship_to=ship_to))
    order = track(build_sap_orders(sap_config(sap_server.url))).read_order(order_id)
    assert order is not None and order.ship_to is not None and order.ship_to.name == "Bob Receiver"

    external = track(build_sap_orders(sap_config(sap_server.url, fields={"ship_to_partner_function": "SH"})))
    order_id2 = seed(admin)
    mapped = external.read_order(order_id2)
    assert mapped is not None and mapped.ship_to is not None and mapped.ship_to.city == "Tacoma"


def test_read_order_unknown_is_none_and_bad_id_rejected(track: Track, sap_server: ThreadedServer,
                                                        admin: httpx.Client) -> None:
    orders = track(build_sap_orders(sap_config(sap_server.url)))
    assert orders.read_order("99999") is None
    with pytest.raises(Rejected, match="not a valid SalesOrder"):
        orders.read_order("12345678901")


def test_order_id_with_quote_is_escaped_in_the_key(track: Track, sap_server: ThreadedServer,
                                                   admin: httpx.Client) -> None:
    order_id = seed(admin, sample_order(id="A'1"))
    order = track(build_sap_orders(sap_config(sap_server.url))).read_order(order_id)
    assert order is not None and order.order_id == "A'1"


# -- changed_order_ids --------------------------------------------------------------------------

def test_changed_order_ids_uses_watermark_inclusively(track: Track, sap_server: ThreadedServer,
                                                      admin: httpx.Client) -> None:
    orders = track(build_sap_orders(sap_config(sap_server.url, page_size=2)))
    ids = [seed(admin, sample_order(items=[{"material": f"M{i}"}])) for i in range(5)]
    # Distinct change times: orders seeded within one millisecond would share the watermark instant.
    for i, order_id in enumerate(ids):
        admin.patch(f"/_sandbox/sales-orders/{order_id}",
                    json={"last_change": (datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=i)).isoformat()}
                    ).raise_for_status()
    everything = list(orders.changed_order_ids(datetime(2000, 1, 1, tzinfo=UTC)))
    assert [order_id for order_id, _ in everything] == ids
    assert all(later >= earlier for (_, earlier), (_, later) in itertools.pairwise(everything))

    watermark = everything[2][1]
    since = list(orders.changed_order_ids(watermark))
    assert [order_id for order_id, _ in since] == ids[2:]

    # An order changed exactly at the watermark instant is included (ge, not gt).
    exact = datetime(2030, 1, 1, 12, 0, 0, 5000, tzinfo=UTC)
    admin.patch(f"/_sandbox/sales-orders/{ids[1]}",
                json={"last_change": exact.isoformat()}).raise_for_status()
    assert list(orders.changed_order_ids(exact)) == [(ids[1], exact)]
    admin.patch(f"/_sandbox/sales-orders/{ids[1]}", json={"last_change": everything[1][1].isoformat()})

    admin.patch(f"/_sandbox/sales-orders/{ids[0]}", json={"delivery_block": "01"}).raise_for_status()
    after = list(orders.changed_order_ids(everything[-1][1]))
    assert [order_id for order_id, _ in after] == [ids[4], ids[0]]
    assert after[-1][1] > everything[-1][1]


def test_changed_order_ids_keyset_paging_with_same_millisecond(track: Track) -> None:
    """Seven orders changed in the same millisecond, page size 2: every one exactly once."""
    stamp = "/Date(1735725600123+0000)/"  # 2025-01-01T10:00:00.123Z
    rows = [{"SalesOrder": str(100 + i), "LastChangeDateTime": stamp} for i in range(7)]
    requests: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.params)
        top = int(request.url.params["$top"])
        skip = int(request.url.params.get("$skip", "0"))
        return httpx.Response(200, json={"d": {"results": rows[skip:skip + top]}})

    orders = track(build_sap_orders(sap_config("http://127.0.0.1:1", page_size=2),
                                    transport=httpx.MockTransport(handler)))
    result = list(orders.changed_order_ids(datetime(2025, 1, 1, tzinfo=UTC)))

    assert [order_id for order_id, _ in result] == [str(100 + i) for i in range(7)]
    assert {changed for _, changed in result} == {datetime(2025, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)}
    assert [p.get("$skip") for p in requests] == [None, "2", "4", "6"]
    assert requests[0]["$filter"] == "LastChangeDateTime ge datetimeoffset'2025-01-01T00:00:00Z'"
    assert requests[1]["$filter"] == "LastChangeDateTime ge datetimeoffset'2025-01-01T10:00:00.1230000Z'"
    assert requests[0]["$orderby"] == "LastChangeDateTime asc,SalesOrder asc"
    assert requests[0]["$select"] == "SalesOrder,LastChangeDateTime"


# -- OData client: paging, parsing ------------------------------------------------------------

def test_query_pages_client_side_over_more_than_two_pages(track: Track, sap_server: ThreadedServer,
                                                          admin: httpx.Client) -> None:
    ids = [seed(admin, sample_order(items=[{"material": "M"}])) for _ in range(7)]
    client = track(odata_client(sap_server.url, page_size=2))
    rows = list(client.query("A_SalesOrder", select=["SalesOrder", "TotalNetAmount"],
                             orderby="SalesOrder asc"))
    assert [row["SalesOrder"] for row in rows] == ids
    assert stats(admin)["GET A_SalesOrder"] == 4  # 2 + 2 + 2 + 1
    limited = client.query("A_SalesOrder", top=3, select="SalesOrder", orderby="SalesOrder asc")
    assert [row["SalesOrder"] for row in limited] == ids[:3]


def test_query_follows_server_driven_next_links(track: Track, sap_server: ThreadedServer,
                                                admin: httpx.Client) -> None:
    ids = [seed(admin, sample_order(items=[{"material": "M"}])) for _ in range(7)]
    admin.put("/_sandbox/settings", json={"server_page_size": 2}).raise_for_status()
    client = track(odata_client(sap_server.url, page_size=5))
    rows = list(client.query("A_SalesOrder", select="SalesOrder", orderby="SalesOrder asc"))
    assert [row["SalesOrder"] for row in rows] == ids
    # window 1 ($top=5): 3 pages via __next; window 2 ($skip=5): 1 page
    assert stats(admin)["GET A_SalesOrder"] == 4


def test_next_link_to_another_host_is_rebased_onto_the_configured_one() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if "$skiptoken" in request.url.params:
            return httpx.Response(200, json={"d": {"results": [{"SalesOrder": "2"}]}})
        return httpx.Response(200, json={"d": {"results": [{"SalesOrder": "1"}],
                                               "__next": "http://internal.example/sap/opu/odata/sap/"
                                                         "API_SALES_ORDER_SRV/A_SalesOrder?$skiptoken=1"}})

    client = ODataClient(mock_http(handler), SERVICE, auth=SapBasicAuth("u", "p"))
    assert [row["SalesOrder"] for row in client.query("A_SalesOrder")] == ["1", "2"]
    assert hosts == ["127.0.0.1", "127.0.0.1"]


def test_repeated_next_link_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"d": {"results": [{"SalesOrder": "1"}],
                                               "__next": "A_SalesOrder?$skiptoken=1"}})

    client = ODataClient(mock_http(handler), SERVICE, auth=SapBasicAuth("u", "p"))
    with pytest.raises(PermanentError, match="repeats the same __next"):
        list(client.query("A_SalesOrder"))


def test_get_entity_parses_dates_and_decimals_and_keeps_etag(track: Track, sap_server: ThreadedServer,
                                                             admin: httpx.Client) -> None:
    order_id = seed(admin)
    client = track(odata_client(sap_server.url))
    entity = client.get_entity(f"A_SalesOrder('{order_id}')")
    assert entity is not None
    assert entity["TotalNetAmount"] == "44.98"  # Edm.Decimal travels as a string
    assert re.fullmatch(r"/Date\(\d+\+0000\)/", entity["LastChangeDateTime"])
    assert entity_etag(entity) == admin.get(f"/_sandbox/sales-orders/{order_id}").json()["etag"]
    assert client.get_entity("A_SalesOrder('424242')") is None


# -- CSRF ---------------------------------------------------------------------------------------

def test_csrf_token_fetched_once_and_session_cookie_kept(track: Track, sap_server: ThreadedServer,
                                                         admin: httpx.Client) -> None:
    order_id = seed(admin)
    client = track(odata_client(sap_server.url))
    for text_id, text in (("Z009", "a"), ("Z010", "b")):
        client.create(f"A_SalesOrder('{order_id}')/to_Text",
                      {"Language": "EN", "LongTextID": text_id, "LongText": text})
    numbers = stats(admin)
    assert numbers["csrf_fetches"] == 1
    assert numbers.get("csrf_rejections", 0) == 0
    assert numbers["sessions"] == 1
    assert header_text(admin, order_id, "Z010") == ["b"]


def test_csrf_expiry_is_refetched_and_retried_once(track: Track, sap_server: ThreadedServer,
                                                   admin: httpx.Client) -> None:
    order_id = seed(admin)
    orders = track(build_sap_orders(sap_config(sap_server.url)))
    order = orders.read_order(order_id)
    assert order is not None
    orders.write_amazon_ids(order, "AMZ-1", {})
    admin.post("/_sandbox/csrf/expire").raise_for_status()
    orders.write_amazon_ids(order, "AMZ-2", {})
    numbers = stats(admin)
    assert numbers["csrf_rejections"] == 1
    assert numbers["csrf_fetches"] == 2
    assert header_text(admin, order_id, "Z001") == ["AMZ-2"]


def test_csrf_rejected_twice_is_a_permanent_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, headers={"x-csrf-token": "tok"}, json={"d": {"EntitySets": []}})
        return httpx.Response(403, headers={"x-csrf-token": "Required"}, text="CSRF token validation failed")

    http = mock_http(handler)
    client = ODataClient(http, SERVICE, auth=SapBasicAuth("u", "p"))
    with pytest.raises(PermanentError, match="CSRF token validation failed"):
        client.create("A_SalesOrder('1')/to_Text", {"LongText": "x"})


# -- ETags and errors -----------------------------------------------------------------------------

def test_stale_etag_is_transient_and_reread_succeeds(track: Track, sap_server: ThreadedServer,
                                                     admin: httpx.Client) -> None:
    order_id = seed(admin)
    client = track(odata_client(sap_server.url))
    path = f"A_SalesOrder('{order_id}')"
    before = client.get_entity(path)
    assert before is not None
    admin.patch(f"/_sandbox/sales-orders/{order_id}", json={"shipping_condition": "02"}).raise_for_status()
    with pytest.raises(TransientError, match="changed since it was read"):
        client.update(path, {"DeliveryBlockReason": "01"}, etag=entity_etag(before))
    fresh = client.get_entity(path)
    assert fresh is not None and entity_etag(fresh) != entity_etag(before)
    client.update(path, {"DeliveryBlockReason": "01"}, etag=entity_etag(fresh))
    assert admin.get(f"/_sandbox/sales-orders/{order_id}").json()["DeliveryBlockReason"] == "01"


def test_missing_if_match_on_header_is_permanent(track: Track, sap_server: ThreadedServer,
                                                 admin: httpx.Client) -> None:
    order_id = seed(admin)
    with pytest.raises(PermanentError, match="If-Match"):
        track(odata_client(sap_server.url)).update(f"A_SalesOrder('{order_id}')",
                                                   {"DeliveryBlockReason": "01"}, etag=None)


def test_sap_error_body_becomes_clear_rejection(track: Track, sap_server: ThreadedServer,
                                                admin: httpx.Client) -> None:
    order_id = seed(admin)
    client = track(odata_client(sap_server.url))
    with pytest.raises(Rejected) as caught:
        client.update(f"A_SalesOrder('{order_id}')", {"TotalNetAmount": "1.00"}, etag="*")
    message = str(caught.value)
    assert f"A_SalesOrder('{order_id}')" in message
    assert "HTTP 400" in message and "read-only" in message
    assert caught.value.code == "SY/530"


def test_sap_lock_message_is_transient() -> None:
    body = {"error": {"code": "V1/042", "message": {"lang": "en", "value": "Sales document 4711 is currently "
                                                                              "being processed by USER1"}}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, headers={"x-csrf-token": "tok"}, json={"d": {}})
        return httpx.Response(400, json=body)

    http = mock_http(handler)
    client = ODataClient(http, SERVICE, auth=SapBasicAuth("u", "p"))
    with pytest.raises(TransientError, match="currently being processed"):
        client.update("A_SalesOrder('4711')", {"DeliveryBlockReason": "01"}, etag="*")


def test_wrong_password_is_permanent(track: Track, sap_server: ThreadedServer, admin: httpx.Client) -> None:
    order_id = seed(admin)
    orders = track(build_sap_orders(sap_config(sap_server.url, password="wrong")))
    with pytest.raises(PermanentError, match="HTTP 401"):
        orders.read_order(order_id)


def test_503_knob_is_transient_and_429_carries_retry_after(track: Track, sap_server: ThreadedServer,
                                                           admin: httpx.Client) -> None:
    order_id = seed(admin)
    orders = track(build_sap_orders(sap_config(sap_server.url)))
    admin.put("/_sandbox/knobs", json={"error_rate": 1.0}).raise_for_status()
    with pytest.raises(TransientError, match="HTTP 503"):
        orders.read_order(order_id)
    admin.put("/_sandbox/knobs", json={"error_rate": 0.0, "throttle_rate": 1.0, "retry_after_seconds": 7})
    with pytest.raises(TransientError) as caught:
        orders.read_order(order_id)
    assert caught.value.retry_after == 7


def test_connection_refused_is_transient(track: Track) -> None:
    orders = track(build_sap_orders(sap_config(f"http://127.0.0.1:{free_port()}")))
    with pytest.raises(TransientError, match="ConnectError"):
        orders.read_order("4711")


# -- write_amazon_ids ---------------------------------------------------------------------------

def test_write_amazon_ids_is_idempotent_and_updates_changed_values(track: Track, sap_server: ThreadedServer,
                                                                   admin: httpx.Client) -> None:
    order_id = seed(admin)
    orders = track(build_sap_orders(sap_config(sap_server.url)))
    order = orders.read_order(order_id)
    assert order is not None
    orders.write_amazon_ids(order, "AMZ-ORDER-1", {"10": "AMZ-L1", "20": "AMZ-L2"})
    first = stats(admin)
    assert first["creates"] == 3

    orders.write_amazon_ids(order, "AMZ-ORDER-1", {"10": "AMZ-L1", "20": "AMZ-L2"})
    second = stats(admin)
    assert second.get("creates") == 3 and second.get("updates", 0) == 0
    view = admin.get(f"/_sandbox/sales-orders/{order_id}").json()
    assert [t["LongText"] for t in view["texts"] if t["LongTextID"] == "Z001"] == ["AMZ-ORDER-1"]

    orders.write_amazon_ids(order, "AMZ-ORDER-2", {"10": "AMZ-L1", "20": "AMZ-L9"})
    third = stats(admin)
    assert third["creates"] == 3 and third["updates"] == 2

    reread = orders.read_order(order_id)
    assert reread is not None
    assert reread.amazon_order_id == "AMZ-ORDER-2"
    assert [line.amazon_line_id for line in reread.lines] == ["AMZ-L1", "AMZ-L9", None]
    assert reread.version != order.version  # texts count as a change of the order


def test_write_amazon_ids_with_subentity_etags_sends_if_match(track: Track) -> None:
    """[U] If SAP gives texts an ETag and enforces it, the update must carry it (else 428)."""
    from primebridge.sandbox.sap import create_app

    app = create_app(username="bridge", password="s3cret", subentity_etags=True)
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url) as own_admin:
        order_id = seed(own_admin)
        orders = track(build_sap_orders(sap_config(server.url)))
        order = orders.read_order(order_id)
        assert order is not None
        orders.write_amazon_ids(order, "AMZ-1", {"10": "L1"})
        orders.write_amazon_ids(order, "AMZ-2", {"10": "L2"})
        numbers = own_admin.get("/_sandbox/stats").json()
        assert numbers["updates"] == 2
        assert numbers.get("precondition_required", 0) == 0


def test_write_amazon_ids_rejects_unknown_line_and_deleted_order(track: Track, sap_server: ThreadedServer,
                                                                 admin: httpx.Client) -> None:
    order_id = seed(admin)
    orders = track(build_sap_orders(sap_config(sap_server.url)))
    order = orders.read_order(order_id)
    assert order is not None
    with pytest.raises(Rejected, match="has no item"):
        orders.write_amazon_ids(order, "AMZ-1", {"99": "L"})
    assert stats(admin).get("creates", 0) == 0
    admin.post("/_sandbox/reset").raise_for_status()
    with pytest.raises(Rejected, match="no longer exists"):
        orders.write_amazon_ids(order, "AMZ-1", {})


# -- OAuth client credentials ------------------------------------------------------------------

def test_oauth_token_cached_and_renewed_after_revocation(track: Track, sap_server: ThreadedServer,
                                                         admin: httpx.Client) -> None:
    order_id = seed(admin)
    cfg = sap_config(sap_server.url, auth="oauth", token_url=sap_server.url + "/sap/bc/sec/oauth2/token",
                     client_id="bridge-client", client_secret="bridge-secret")
    orders = track(build_sap_orders(cfg))
    assert orders.read_order(order_id) is not None
    assert orders.read_order(order_id) is not None
    assert stats(admin)["tokens_issued"] == 1
    admin.post("/_sandbox/oauth/revoke").raise_for_status()
    assert orders.read_order(order_id) is not None
    assert stats(admin)["tokens_issued"] == 2


def test_oauth_bad_client_secret_is_permanent(track: Track, sap_server: ThreadedServer,
                                              admin: httpx.Client) -> None:
    cfg = sap_config(sap_server.url, auth="oauth", token_url=sap_server.url + "/sap/bc/sec/oauth2/token",
                     client_id="bridge-client", client_secret="nope")
    with pytest.raises(PermanentError, match="client authentication failed"):
        track(build_sap_orders(cfg)).read_order("1")


def test_oauth_token_renewed_early_before_expiry() -> None:
    from primebridge.connectors.sap.auth import SapClientCredentials

    now = [0.0]
    issued: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        issued.append(request.content.decode())
        return httpx.Response(200, json={"access_token": f"t{len(issued)}", "expires_in": "300"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    auth = SapClientCredentials(http, "http://127.0.0.1:1/token", "c", "s", renew_before_seconds=60,
                                clock=lambda: now[0])
    assert auth.token() == "t1"
    now[0] = 239.0
    assert auth.token() == "t1"
    now[0] = 241.0  # within 60 s of expiry: renewed early
    assert auth.token() == "t2"
    assert all("grant_type=client_credentials" in body for body in issued)


def test_audit_never_shows_credentials_or_csrf_token(track: Track, sap_server: ThreadedServer,
                                                     admin: httpx.Client) -> None:
    from primebridge.connectors.http import AuditEntry

    entries: list[AuditEntry] = []

    class Sink:
        def record(self, entry: AuditEntry) -> None:
            entries.append(entry)

    order_id = seed(admin)
    orders = track(build_sap_orders(sap_config(sap_server.url), audit=Sink()))
    order = orders.read_order(order_id)
    assert order is not None
    orders.write_amazon_ids(order, "AMZ-1", {})
    dumped = json.dumps([e.request + e.response for e in entries])
    assert "s3cret" not in dumped and "YnJpZGdlOnMzY3JldA" not in dumped  # base64("bridge:s3cret")
    assert any(e.operation.startswith("POST") for e in entries)


def test_sap_client_parameter_goes_on_every_call_including_the_csrf_fetch() -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params, headers = request.url.params, request.headers
        seen.append((request.method, params.get("sap-client"), headers.get("x-csrf-token")))
        if request.method == "GET":
            return httpx.Response(200, headers={"x-csrf-token": "tok"}, json={"d": {"results": []}})
        return httpx.Response(201, json={"d": {}})

    client = ODataClient(mock_http(handler), SERVICE, auth=SapBasicAuth("u", "p"), sap_client="100")
    assert list(client.query("A_SalesOrder")) == []
    client.create("A_SalesOrder('1')/to_Text", {"LongText": "x"})
    assert seen == [("GET", "100", None), ("GET", "100", "Fetch"), ("POST", "100", "tok")]


def test_concurrent_callers_share_one_token_renewal() -> None:
    import threading

    from primebridge.connectors.sap.auth import SapClientCredentials

    release = threading.Event()
    issued: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        issued.append(1)
        release.wait(5)  # hold the first renewal open while the other callers arrive
        return httpx.Response(200, json={"access_token": f"t{len(issued)}", "expires_in": 300})

    auth = SapClientCredentials(httpx.Client(transport=httpx.MockTransport(handler)), "http://127.0.0.1:1/t",
                                "c", "s")
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(auth.token())) for _ in range(6)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert tokens == ["t1"] * 6
    assert len(issued) == 1


@pytest.mark.parametrize("stamp", ["/Date(99999999999999999)/", "/Date(999999999999999999999999)/"])
def test_out_of_range_change_date_is_a_rejection_naming_the_field(stamp: str) -> None:
    # timedelta overflows with OverflowError, which used to escape the ValueError handling unnamed.
    with pytest.raises(Rejected, match=r"A_SalesOrder 7: LastChangeDateTime .*out of range"):
        map_order({"SalesOrder": "7", "LastChangeDateTime": stamp}, SapFieldsConfig())
