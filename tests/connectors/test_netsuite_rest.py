"""NetSuiteRest against the sandbox: records, SuiteQL paging, error mapping and the concurrency cap."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tests.sandbox.netsuite_fixtures import ACCOUNT_ID, CREDS, admin, netsuite_config, serve

from primebridge.config import NetSuiteFieldsConfig
from primebridge.connectors.http import AuditEntry, build_client
from primebridge.connectors.netsuite import build_netsuite_rest
from primebridge.connectors.netsuite.governance import shared_semaphore
from primebridge.connectors.netsuite.rest import NetSuiteRest
from primebridge.connectors.netsuite.suiteql import sql_literal, sql_timestamp, suiteql
from primebridge.connectors.netsuite.tba import TbaAuth
from primebridge.domain.errors import PermanentError, Rejected, TransientError
from primebridge.sandbox.server import ThreadedServer

SO = "salesOrder"

server = serve()


@pytest.fixture()
def url(server: ThreadedServer) -> str:
    admin(server.url, "POST", "reset")
    admin(server.url, "PUT", "knobs", {"latency_ms": 0, "error_rate": 0, "throttle_rate": 0})
    admin(server.url, "PUT", "governance", {"concurrency_limit": 5, "gate_closed": False})
    admin(server.url, "POST", "sales-orders", {
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "lines": [{"item": "SKU-1", "quantity": 2, "rate": 10, "location": "AMZ"},
                  {"item": "SKU-2", "quantity": 1, "rate": 5, "location": "AMZ"}]})
    return server.url


def _rest(url: str, limit: int = 4, **auth: str) -> NetSuiteRest:
    http = build_client(system="netsuite", base_url=url, timeout=10)
    http.auth = TbaAuth(account_id=ACCOUNT_ID, **{**CREDS, **auth})
    return NetSuiteRest(http, concurrency=threading.BoundedSemaphore(limit))


def _stats(url: str) -> dict[str, Any]:
    return admin(url, "GET", "stats")


def test_get_expands_sublists_and_returns_none_for_unknown_ids(url: str) -> None:
    rest = _rest(url)
    record = rest.get(SO, "1001")
    assert record is not None
    assert [line["line"] for line in record["item"]["items"]] == [1, 2]
    assert "shippingAddress" not in record  # the seed has none; empty fields are left out
    flat = rest.get(SO, "1001", expand_sub_resources=False)
    assert flat is not None and set(flat["item"]) == {"links"}
    assert set(flat["shippingAddress"]) == {"links"}
    assert rest.get(SO, "424242") is None


def test_patch_updates_body_and_one_line_without_touching_the_others(url: str) -> None:
    rest = _rest(url)
    rest.patch(SO, "1001", {"memo": "hello", "item": {"items": [{"line": 2, "custcol_pb_amazon_line_id": "L2"}]}})
    record = rest.get(SO, "1001")
    assert record is not None and record["memo"] == "hello"
    lines = {line["line"]: line for line in record["item"]["items"]}
    assert lines[2]["custcol_pb_amazon_line_id"] == "L2"
    assert "custcol_pb_amazon_line_id" not in lines[1] and lines[1]["quantity"] == 2


def test_patch_with_replace_removes_unlisted_lines(url: str) -> None:
    rest = _rest(url)
    rest.patch(SO, "1001", {"item": {"items": [{"line": 1}]}}, replace=["item"])
    record = rest.get(SO, "1001")
    assert record is not None and [line["line"] for line in record["item"]["items"]] == [1]


def test_create_and_transform_read_the_new_id_from_location(url: str) -> None:
    rest = _rest(url)
    customer = rest.get(SO, "1001")["entity"]["id"]  # type: ignore[index]
    item = rest.get(SO, "1001")["item"]["items"][0]["item"]["id"]  # type: ignore[index]
    new_id = rest.create(SO, {"entity": {"id": customer}, "orderStatus": {"id": "B"},
                              "item": {"items": [{"item": {"id": item}, "quantity": 3}]}})
    assert new_id.isdigit() and new_id != "1001"
    created = rest.get(SO, new_id)
    assert created is not None and created["status"]["id"] == "B"
    fulfillment = rest.transform(SO, new_id, "itemFulfillment", {"shipStatus": {"id": "C"}})
    shipped = rest.get("itemFulfillment", fulfillment)
    assert shipped is not None and shipped["createdFrom"]["id"] == new_id
    assert rest.get(SO, new_id)["status"]["id"] == "F"  # type: ignore[index]


def test_bad_value_is_rejected_with_netsuites_detail(url: str) -> None:
    with pytest.raises(Rejected) as caught:
        _rest(url).patch(SO, "1001", {"item": {"items": [{"line": 1, "quantity": "many"}]}})
    assert caught.value.code == "INVALID_CONTENT"
    assert "PATCH salesOrder 1001" in str(caught.value)
    assert "Invalid Field Value many" in str(caught.value)


def test_unknown_field_is_an_error_because_the_client_asks_for_strict_names(url: str) -> None:
    with pytest.raises(Rejected, match="memmo"):
        _rest(url).patch(SO, "1001", {"memmo": "typo"})


def test_patch_of_unknown_id_is_rejected_not_ignored(url: str) -> None:
    with pytest.raises(Rejected, match="NONEXISTENT_ID"):
        _rest(url).patch(SO, "9999", {"memo": "x"})


def test_wrong_credentials_are_permanent(url: str) -> None:
    with pytest.raises(PermanentError, match="INVALID_LOGIN"):
        _rest(url, token_secret="wrong").get(SO, "1001")


def test_throttling_is_transient_and_honours_retry_after(url: str) -> None:
    admin(url, "PUT", "knobs", {"throttle_rate": 1.0, "retry_after_seconds": 7})
    with pytest.raises(TransientError, match="CONCURRENCY_LIMIT_EXCEEDED") as caught:
        _rest(url).get(SO, "1001")
    assert caught.value.retry_after == 7


def test_server_error_is_transient(url: str) -> None:
    admin(url, "PUT", "knobs", {"error_rate": 1.0})
    with pytest.raises(TransientError, match="UNEXPECTED_ERROR"):
        _rest(url).patch(SO, "1001", {"memo": "x"})


def test_network_error_is_transient() -> None:
    from primebridge.sandbox.server import free_port

    with pytest.raises(TransientError, match="ConnectError"):
        _rest(f"http://127.0.0.1:{free_port()}").get(SO, "1")


def _wait_for(url: str, key: str, value: int) -> None:
    deadline = time.monotonic() + 10
    while _stats(url)[key] != value:
        assert time.monotonic() < deadline, f"sandbox never reached {key}={value}: {_stats(url)}"
        time.sleep(0.01)


def test_account_concurrency_limit_gives_a_transient_error(url: str) -> None:
    admin(url, "PUT", "governance", {"concurrency_limit": 1, "gate_closed": True})
    holder = threading.Thread(target=lambda: _rest(url).get(SO, "1001"))
    holder.start()
    try:
        _wait_for(url, "in_flight", 1)
        with pytest.raises(TransientError, match="CONCURRENCY_LIMIT_EXCEEDED"):
            _rest(url).get(SO, "1001")
    finally:
        admin(url, "PUT", "governance", {"gate_closed": False})
        holder.join()
    assert _stats(url)["throttled"] == 1


def test_shared_semaphore_caps_requests_in_flight(url: str) -> None:
    admin(url, "PUT", "governance", {"concurrency_limit": 50, "gate_closed": True})
    rest = _rest(url, limit=4)
    started = threading.Semaphore(0)
    results: list[bool] = []

    def work() -> None:
        started.release()
        results.append(rest.get(SO, "1001") is not None)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    try:
        for _ in threads:
            assert started.acquire(timeout=10)
        _wait_for(url, "in_flight", 4)
        time.sleep(0.2)  # give a missing cap the chance to show: the gate holds everything admitted
        assert _stats(url)["in_flight"] == 4
    finally:
        admin(url, "PUT", "governance", {"gate_closed": False})
        for thread in threads:
            thread.join()
    assert results == [True] * 16
    assert _stats(url)["max_in_flight"] == 4


def test_shared_semaphore_registry_is_per_account() -> None:
    a = shared_semaphore("https://1-sb1.suitetalk.api.netsuite.com/", 4)
    assert shared_semaphore("https://1-SB1.suitetalk.api.netsuite.com", 4) is a
    assert shared_semaphore("https://2.suitetalk.api.netsuite.com", 4) is not a
    assert shared_semaphore("https://1-sb1.suitetalk.api.netsuite.com", 2) is not a


# -- SuiteQL -------------------------------------------------------------------------------------------


def test_sql_literal_escapes_quotes() -> None:
    assert sql_literal("O'Brien") == "'O''Brien'"
    assert sql_literal("'; DROP TABLE x --") == "'''; DROP TABLE x --'"
    assert sql_literal(42) == "42"
    assert sql_literal(True) == "'T'"
    assert sql_literal(None) == "NULL"
    with pytest.raises(TypeError):
        sql_literal(1.5)  # type: ignore[arg-type]


def test_sql_timestamp_is_seconds_in_the_given_zone() -> None:
    moment = datetime(2025, 1, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    assert sql_timestamp(moment) == "TO_TIMESTAMP('2025-01-31 23:59:59', 'YYYY-MM-DD HH24:MI:SS')"
    pacific = timezone(timedelta(hours=-8))
    assert "'2025-01-31 15:59:59'" in sql_timestamp(moment, pacific)
    with pytest.raises(ValueError):
        sql_timestamp(datetime(2025, 1, 1))


def test_suiteql_pages_through_more_than_two_pages(url: str) -> None:
    for n in range(24):
        admin(url, "POST", "sales-orders", {"customer": f"C{n}", "lines": [{"item": "SKU-1", "quantity": 1}]})
    rest = _rest(url)
    rows = list(rest.suiteql("SELECT id, tranid FROM transaction WHERE type = 'SalesOrd' ORDER BY id",
                             page_size=10))
    assert [int(r["id"]) for r in rows] == list(range(1001, 1026))
    assert all("links" not in r and r["tranid"] == f"SO{r['id']}" for r in rows)
    assert _stats(url)["operations"]["SuiteQL"] == 3


def test_suiteql_error_names_the_problem(url: str) -> None:
    with pytest.raises(Rejected, match="nosuchcolumn"):
        list(_rest(url).suiteql("SELECT nosuchcolumn FROM transaction"))


def test_suiteql_stops_on_a_page_that_makes_no_progress() -> None:
    class Stuck:
        def suiteql_page(self, query: str, *, limit: int, offset: int) -> dict[str, Any]:
            return {"items": [], "hasMore": True, "links": []}

    with pytest.raises(PermanentError, match="hasMore"):
        list(suiteql(Stuck(), "SELECT id FROM transaction"))


def test_factory_audits_with_operation_names_and_redacts_auth(url: str) -> None:
    entries: list[AuditEntry] = []

    class Sink:
        def record(self, entry: AuditEntry) -> None:
            entries.append(entry)

    cfg = netsuite_config(url, fields=NetSuiteFieldsConfig(shopper_token_field="custbody_pb_spid"))
    rest = build_netsuite_rest(cfg, audit=Sink())
    rest.patch(SO, "1001", {"custbody_pb_spid": "shopper-secret-value"})
    rest.get(SO, "1001")
    list(rest.suiteql("SELECT id FROM transaction"))
    assert [e.operation for e in entries] == ["PATCH salesOrder", "GET salesOrder", "SuiteQL"]
    assert all("sandbox-ts" not in e.request and "oauth_signature" not in e.request for e in entries)
    assert all("shopper-secret-value" not in e.request + e.response for e in entries)
