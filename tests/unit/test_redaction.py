"""What the audit trail may keep: secrets masked in headers, bodies and URLs; useful fields kept."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from primebridge.connectors.http import (
    AuditedTransport,
    AuditEntry,
    build_client,
    redact_body,
    redact_headers,
    redact_json,
    redact_url,
)
from primebridge.runtime import context
from primebridge.runtime.context import Correlation

SECRET = "Sup3rSecretValue-9f8e7d"


class ListAudit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class BrokenAudit:
    def record(self, entry: AuditEntry) -> None:
        raise RuntimeError("audit database is down")


# -- headers ---------------------------------------------------------------------------------------


def test_secret_headers_are_masked_and_others_kept() -> None:
    headers = httpx.Headers({
        "Authorization": f"Bearer {SECRET}", "Cookie": f"SAP_SESSIONID={SECRET}", "X-CSRF-Token": SECRET,
        "x-api-access-key": SECRET, "Set-Cookie": f"sid={SECRET}", "Proxy-Authorization": f"Basic {SECRET}",
        "Content-Type": "application/json", "x-api-target-id": "store-1",
    })
    redacted = redact_headers(headers)
    assert SECRET not in json.dumps(redacted)
    lowered = {k.lower(): v for k, v in redacted.items()}
    assert lowered["authorization"] == lowered["cookie"] == lowered["x-csrf-token"] == "***"
    assert lowered["content-type"] == "application/json" and lowered["x-api-target-id"] == "store-1"


# -- bodies ----------------------------------------------------------------------------------------


def test_json_secret_keys_are_masked_at_any_depth() -> None:
    body = {
        "client_secret": SECRET, "password": SECRET, "access_token": SECRET, "token_type": "bearer",
        "variables": {"input": {
            "shopperIdentity": {"lwaAccessToken": {"value": SECRET}},
            "lineItems": [{"product": {"identifier": {"sku": "AMZ-SKU-1"}}, "amount": {"value": 2}}],
        }},
        "trackingNumber": "1Z999AA10123456784",
    }
    text = redact_body(json.dumps(body).encode(), "application/json")
    assert SECRET not in text
    data = json.loads(text)
    assert data["client_secret"] == data["password"] == data["access_token"] == "***"
    assert data["variables"]["input"]["shopperIdentity"]["lwaAccessToken"] == "***"
    assert data["variables"]["input"]["lineItems"][0]["product"]["identifier"]["sku"] == "AMZ-SKU-1"
    assert data["trackingNumber"] == "1Z999AA10123456784"


def test_json_body_is_recognised_without_a_content_type() -> None:
    text = redact_body(json.dumps([{"refresh_token": SECRET, "sku": "A"}]).encode(), None)
    assert SECRET not in text and json.loads(text) == [{"refresh_token": "***", "sku": "A"}]


def test_redact_json_leaves_scalars_and_non_secret_keys() -> None:
    plain = {"sku": "A", "quantity": 3, "tags": ["x"]}
    assert redact_json(plain) == plain
    assert redact_json("plain") == "plain"


def test_form_body_secret_is_masked() -> None:
    body = f"grant_type=client_credentials&client_id=app-1&client_secret={SECRET}".encode()
    text = redact_body(body, "application/x-www-form-urlencoded; charset=utf-8")
    assert SECRET not in text
    assert "client_id=app-1" in text and "grant_type=client_credentials" in text
    assert "client_secret=%2A%2A%2A" in text


def test_broken_json_is_kept_as_text() -> None:
    assert redact_body(b"{not json", "application/json") == "{not json"
    assert redact_body(b"", "application/json") == ""


def test_long_bodies_are_truncated() -> None:
    text = redact_body(b"x" * 100_000, "text/plain")
    assert 0 < len(text) <= 16_000


def test_large_json_body_is_still_redacted() -> None:
    body = json.dumps({"access_token": SECRET, "items": ["x" * 100] * 1000}).encode()
    assert len(body) > 64_000
    assert SECRET not in redact_body(body, "application/json")


# -- URLs ------------------------------------------------------------------------------------------


def test_url_query_secrets_are_masked() -> None:
    url = httpx.URL(f"http://127.0.0.1:8102/orders?token={SECRET}&sap-client=100&$top=5&access_token={SECRET}")
    text = redact_url(url)
    assert SECRET not in text
    assert "token=%2A%2A%2A" in text and "sap-client=100" in text and "%24top=5" in text


def test_url_without_query_is_unchanged() -> None:
    assert redact_url(httpx.URL("http://127.0.0.1:8102/a/b")) == "http://127.0.0.1:8102/a/b"


# -- the audited transport -------------------------------------------------------------------------


def _client(handler: Callable[[httpx.Request], httpx.Response], audit: object) -> httpx.Client:
    transport = AuditedTransport(httpx.MockTransport(handler), "amazon", audit)  # type: ignore[arg-type]
    return httpx.Client(base_url="http://127.0.0.1:9", transport=transport)


def _token_endpoint(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/token":
        return httpx.Response(200, json={"access_token": SECRET, "expires_in": 3600, "token_type": "bearer"})
    if request.url.path == "/denied":
        return httpx.Response(401, json={"errors": [{"message": "bad token"}]})
    return httpx.Response(200, json={"data": {"order": {"id": "322-ABC1-AAAAAA", "trackingNumber": "TN1"}}},
                          headers={"Set-Cookie": f"sid={SECRET}"})


def test_one_entry_per_request_with_the_current_correlation() -> None:
    audit = ListAudit()
    with _client(_token_endpoint, audit) as client:
        with context.correlated(oms="sap", oms_order_id="4711", job_id=7):
            client.post("/token", data={"grant_type": "client_credentials", "client_secret": SECRET})
            with context.correlated(amazon_order_id="322-ABC1-AAAAAA"):
                client.post("/graphql", json={"query": "query { order }"},
                            headers={"Authorization": f"Bearer {SECRET}"})
        client.get("/graphql", params={"token": SECRET})
    assert len(audit.entries) == 3
    first, second, third = audit.entries
    assert first.correlation == Correlation(oms="sap", oms_order_id="4711", job_id=7)
    assert second.correlation == Correlation(oms="sap", oms_order_id="4711",
                                             amazon_order_id="322-ABC1-AAAAAA", job_id=7)
    assert third.correlation == Correlation()
    assert [e.operation for e in audit.entries] == ["POST /token", "POST /graphql", "GET /graphql"]
    assert all(e.system == "amazon" and e.status == "ok" and e.http_status == 200 for e in audit.entries)
    assert all(e.duration_ms >= 0 for e in audit.entries)
    for entry in audit.entries:
        assert SECRET not in entry.request and SECRET not in entry.response
    assert "TN1" in second.response and "322-ABC1-AAAAAA" in second.response
    assert json.loads(first.request)["method"] == "POST"


def test_http_error_status_is_recorded_as_error() -> None:
    audit = ListAudit()
    with _client(_token_endpoint, audit) as client:
        assert client.get("/denied").status_code == 401
    (entry,) = audit.entries
    assert (entry.status, entry.http_status) == ("error", 401)
    assert "bad token" in entry.response


def test_network_error_is_recorded_and_raised() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    audit = ListAudit()
    with _client(refuse, audit) as client, context.correlated(oms="netsuite", oms_order_id="SO-9"), \
            pytest.raises(httpx.ConnectError):
        client.post("/token", data={"client_secret": SECRET})
    (entry,) = audit.entries
    assert entry.status == "error" and entry.http_status is None
    assert "ConnectError" in entry.response and "connection refused" in entry.response
    assert entry.correlation.oms_order_id == "SO-9"
    assert SECRET not in entry.request


def test_a_failing_audit_sink_does_not_fail_the_request() -> None:
    with _client(_token_endpoint, BrokenAudit()) as client:
        assert client.post("/token").json()["access_token"] == SECRET


def test_build_client_audits_through_the_given_transport() -> None:
    audit = ListAudit()
    client = build_client(system="sap", base_url="http://127.0.0.1:9", timeout=5, audit=audit,
                          transport=httpx.MockTransport(_token_endpoint),
                          operation=lambda request: f"sap:{request.url.path.strip('/')}")
    with client, context.correlated(oms="sap", oms_order_id="1"):
        client.get("/orders", headers={"x-csrf-token": SECRET, "Cookie": f"c={SECRET}"})
    (entry,) = audit.entries
    assert (entry.system, entry.operation, entry.correlation.oms_order_id) == ("sap", "sap:orders", "1")
    request = json.loads(entry.request)
    assert request["headers"]["x-csrf-token"] == "***" and request["headers"]["cookie"] == "***"
    assert SECRET not in entry.response  # the Set-Cookie of the answer


def test_a_password_in_the_url_is_masked() -> None:
    from primebridge.connectors.http import redact_url

    shown = redact_url(httpx.URL("https://merchant:hunter2@erp.example.com/odata?sap-client=100&token=abc"))
    assert "hunter2" not in shown and "abc" not in shown
    assert "merchant" in shown and "sap-client=100" in shown


def test_an_audit_store_that_fails_does_not_fail_the_call() -> None:
    class Broken:
        def record(self, entry: object) -> None:
            raise RuntimeError("store is down")

    with _client(_token_endpoint, Broken()) as client:  # type: ignore[arg-type]
        response = client.post("/token", data={"grant_type": "client_credentials", "client_secret": SECRET})
    assert response.status_code == 200
