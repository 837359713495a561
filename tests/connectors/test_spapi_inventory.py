"""The SP-API inventory connector (LWA, paging, targeted calls, restarts, errors) against the SP-API
sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from primebridge.config import SpApiConfig, settings_from_dict
from primebridge.connectors.http import AuditEntry, build_client
from primebridge.connectors.spapi import LwaTokens, RateLimiter, SpApiInventory, build_inventory_source
from primebridge.connectors.spapi.errors import (
    AccessDenied,
    InvalidInput,
    NextTokenExpired,
    ServerError,
    Throttled,
)
from primebridge.connectors.spapi.inventory import OPERATION
from primebridge.domain.errors import ConfigError, PermanentError, Rejected, TransientError
from primebridge.sandbox.profile import sandbox_settings
from primebridge.sandbox.server import ThreadedServer
from primebridge.sandbox.spapi import DEFAULT_REFRESH_TOKEN, DEFAULT_SELLER, create_app

CLIENT_ID = "sandbox-lwa-client"
CLIENT_SECRET = "sandbox-lwa-secret"
SIZE = 230


class Recorder:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(e.request) for e in self.entries if e.operation.endswith("/summaries")]


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(catalogue_size=SIZE, rate=1000, burst=1000), name="spapi") as srv:
        yield srv


@pytest.fixture
def admin(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as client:
        client.post("/reset").raise_for_status()
        client.put("/catalogue", json={"size": SIZE, "seed": 0, "page_size": 50}).raise_for_status()
        client.put("/rate-limit", json={"rate": 1000, "burst": 1000}).raise_for_status()
        client.put("/knobs", json={"error_rate": 0, "throttle_rate": 0, "latency_ms": 0,
                                   "retry_after_seconds": 1}).raise_for_status()
        client.put("/next-token", json={"ttl_seconds": 30}).raise_for_status()
        client.put("/lwa", json={"token_ttl_seconds": 3600}).raise_for_status()
        yield client


def config(server: ThreadedServer, **overrides: Any) -> SpApiConfig:
    values: dict[str, Any] = {
        "endpoint": server.url, "lwa_url": f"{server.url}/auth/o2/token", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "refresh_token": DEFAULT_REFRESH_TOKEN, "seller_id": DEFAULT_SELLER,
        "rate_per_second": 1000, "burst": 1000, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
    }
    values.update(overrides)
    return SpApiConfig(**values)


def counters(admin: httpx.Client) -> dict[str, int]:
    return admin.get("/stats").json()["counters"]


def all_skus(source: SpApiInventory) -> list[str]:
    return [s.seller_sku for page in source.scan() for s in page]


def test_full_scan_pages_with_next_token_and_sends_the_documented_parameters(
        server: ThreadedServer, admin: httpx.Client) -> None:
    audit = Recorder()
    source = build_inventory_source(config(server), audit)
    pages = list(source.scan())
    assert [len(p) for p in pages] == [50, 50, 50, 50, 30]
    skus = [s.seller_sku for p in pages for s in p]
    assert skus == sorted(set(skus)) and len(skus) == SIZE
    first = pages[0][0]
    assert isinstance(first.fulfillable_quantity, int) and first.fn_sku and first.asin and first.last_updated
    calls = audit.calls()
    assert len(calls) == 5
    params = httpx.URL(calls[0]["url"]).params
    assert dict(params) == {"details": "true", "granularityType": "Marketplace", "granularityId": "ATVPDKIKX0DER",
                            "marketplaceIds": "ATVPDKIKX0DER"}
    assert all("nextToken" in httpx.URL(c["url"]).params for c in calls[1:])
    assert counters(admin)["lwa.issued"] == 1


def test_access_token_is_cached_and_never_written_to_the_audit(server: ThreadedServer, admin: httpx.Client) -> None:
    audit = Recorder()
    source = build_inventory_source(config(server), audit)
    all_skus(source)
    source.summaries(["SKU-000001"])
    assert counters(admin)["lwa.issued"] == 1
    text = "\n".join(e.request + e.response for e in audit.entries)
    assert "Atza|" not in text and DEFAULT_REFRESH_TOKEN not in text and CLIENT_SECRET not in text


def test_token_is_renewed_before_it_expires(server: ThreadedServer, admin: httpx.Client) -> None:
    now = [0.0]
    http = build_client(system="spapi", base_url=server.url, timeout=10)
    tokens = LwaTokens(http, f"{server.url}/auth/o2/token", CLIENT_ID, CLIENT_SECRET, DEFAULT_REFRESH_TOKEN,
                       renew_before=300, clock=lambda: now[0])
    first = tokens.token()
    now[0] = 3299.0
    assert tokens.token() == first
    now[0] = 3301.0  # within the last 300 s of the hour: renewed early
    assert tokens.token() != first
    assert counters(admin)["lwa.issued"] == 2


def test_an_access_token_refused_early_is_renewed_once(server: ThreadedServer, admin: httpx.Client) -> None:
    source = build_inventory_source(config(server))
    source.summaries(["SKU-000001"])
    admin.post("/lwa/expire").raise_for_status()
    assert [s.seller_sku for s in source.summaries(["SKU-000002"])] == ["SKU-000002"]
    assert counters(admin)["lwa.issued"] == 2


def test_bad_refresh_token_is_a_permanent_error_naming_the_grant(server: ThreadedServer, admin: httpx.Client) -> None:
    source = build_inventory_source(config(server, refresh_token="Atzr|revoked"))
    with pytest.raises(PermanentError, match="invalid_grant"):
        source.summaries(["SKU-000001"])


def test_targeted_calls_ask_at_most_50_skus_each(server: ThreadedServer, admin: httpx.Client) -> None:
    audit = Recorder()
    source = build_inventory_source(config(server), audit)
    wanted = [f"SKU-{i:06d}" for i in range(0, 240, 2)] + ["NO-SUCH-SKU", "SKU-000000"]
    found = source.summaries(wanted)
    assert sorted(s.seller_sku for s in found) == sorted(f"SKU-{i:06d}" for i in range(0, SIZE, 2))
    sizes = [len(httpx.URL(c["url"]).params["sellerSkus"].split(",")) for c in audit.calls()]
    assert sizes == [50, 50, 21]


def test_expired_next_token_restarts_without_losing_or_repeating_skus(
        server: ThreadedServer, admin: httpx.Client) -> None:
    source = build_inventory_source(config(server))
    scan = source.scan()
    yielded = [s.seller_sku for s in next(scan)] + [s.seller_sku for s in next(scan)]
    # While the scan is paused, the catalogue changes behind and ahead of it, and the token dies.
    admin.post("/inventory", json=[{"sellerSku": "SKU-000010-B", "fulfillableQuantity": 4}]).raise_for_status()
    admin.delete("/inventory/SKU-000150").raise_for_status()
    admin.post("/next-token/expire").raise_for_status()
    yielded += [s.seller_sku for page in scan for s in page]
    assert len(yielded) == len(set(yielded)), "no SKU twice"
    expected = {f"SKU-{i:06d}" for i in range(SIZE)} - {"SKU-000150"} | {"SKU-000010-B"}
    assert set(yielded) == expected
    assert counters(admin)["next_token.expired"] == 1


def test_a_scan_whose_tokens_keep_expiring_gives_up_after_the_configured_restarts(
        server: ThreadedServer, admin: httpx.Client) -> None:
    admin.put("/next-token", json={"ttl_seconds": -1}).raise_for_status()
    source = build_inventory_source(config(server, max_scan_restarts=2))
    with pytest.raises(NextTokenExpired) as caught:
        all_skus(source)
    assert isinstance(caught.value, TransientError)
    assert counters(admin)["next_token.expired"] == 3


def test_429_body_becomes_a_throttled_error_with_code_and_retry_after(
        server: ThreadedServer, admin: httpx.Client) -> None:
    source = build_inventory_source(config(server, max_retries=2))
    source.summaries(["SKU-000001"])  # the LWA token first: the knobs fault the token endpoint too
    admin.put("/knobs", json={"throttle_rate": 1.0, "retry_after_seconds": 0.02}).raise_for_status()
    with pytest.raises(Throttled) as caught:
        source.summaries(["SKU-000001"])
    error = caught.value
    assert isinstance(error, TransientError) and error.status == 429 and error.code == "QuotaExceeded"
    assert "You exceeded your quota" in str(error) and error.retry_after == pytest.approx(0.02)
    assert counters(admin)["throttled"] == 3  # first try + 2 retries


def test_retries_back_off_with_jitter_and_honour_retry_after() -> None:
    responses = iter([
        httpx.Response(429, json={"errors": [{"code": "QuotaExceeded", "message": "slow down"}]},
                       headers={"Retry-After": "0.3"}),
        httpx.Response(503, json={"errors": [{"code": "ServiceUnavailable", "message": "later"}]}),
        httpx.Response(200, json={"payload": {"granularity": {}, "inventorySummaries": [
            {"sellerSku": "A", "inventoryDetails": {"fulfillableQuantity": 3}}]}}),
    ])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "Atza|x", "token_type": "bearer", "expires_in": 3600})
        return next(responses)

    slept: list[float] = []
    http = build_client(system="spapi", base_url="https://sp.example", timeout=5,
                        transport=httpx.MockTransport(handler))
    tokens = LwaTokens(http, "https://lwa.example/auth/o2/token", "c", "s", "r")
    limiter = RateLimiter(1000, 1000)
    source = SpApiInventory(http, tokens, limiter, seller_id="S", marketplace_id="M", backoff_base=0.1,
                            backoff_max=1.0, sleep=slept.append, rng=random.Random(1))
    assert [s.fulfillable_quantity for s in source.summaries(["A"])] == [3]
    assert slept[0] >= 0.3                 # Retry-After of the 429
    assert 0.1 <= slept[1] <= 0.2          # second attempt: jittered within [base, 2 × base]
    assert limiter.bucket("S", OPERATION).tokens() < 1000  # the 429 drained the bucket


def test_server_errors_are_transient(server: ThreadedServer, admin: httpx.Client) -> None:
    source = build_inventory_source(config(server, max_retries=0))
    source.summaries(["SKU-000001"])
    admin.put("/knobs", json={"error_rate": 1.0}).raise_for_status()
    with pytest.raises(ServerError, match="ServiceUnavailable"):
        source.summaries(["SKU-000001"])


def test_an_unknown_marketplace_is_invalid_input(server: ThreadedServer, admin: httpx.Client) -> None:
    source = build_inventory_source(config(server, marketplace_id="A1PA6795UKMFR9"))
    with pytest.raises(InvalidInput) as caught:
        all_skus(source)
    assert isinstance(caught.value, Rejected) and caught.value.code == "InvalidInput"
    assert "Invalid marketplace id" in str(caught.value)


def test_a_forbidden_answer_that_is_not_about_the_token_is_access_denied() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "Atza|x", "expires_in": 3600})
        return httpx.Response(403, json={"errors": [{"code": "Unauthorized",
                                                     "message": "Access to requested resource is denied."}]})

    http = build_client(system="spapi", base_url="https://sp.example", timeout=5,
                        transport=httpx.MockTransport(handler))
    source = SpApiInventory(http, LwaTokens(http, "https://lwa.example/auth/o2/token", "c", "s", "r"), RateLimiter(),
                            seller_id="S", marketplace_id="M")
    with pytest.raises(AccessDenied, match="Unauthorized: Access to requested resource is denied"):
        source.summaries(["A"])


def test_the_bucket_follows_the_rate_limit_header(server: ThreadedServer, admin: httpx.Client) -> None:
    admin.put("/rate-limit", json={"rate": 7, "burst": 1000}).raise_for_status()
    limiter = RateLimiter(2.0, 1000)
    source = build_inventory_source(config(server), limiter=limiter)
    source.summaries(["SKU-000001"])
    assert limiter.bucket(DEFAULT_SELLER, OPERATION).rate == 7.0


def test_a_client_faster_than_the_plan_meets_429s_and_still_reads_everything(
        server: ThreadedServer, admin: httpx.Client) -> None:
    """The sandbox enforces its bucket: a client that ignores it is throttled, backs off and retries."""
    admin.put("/rate-limit", json={"rate": 2, "burst": 1}).raise_for_status()
    limiter = RateLimiter(100_000, 100_000, adjust_from_header=False)
    source = build_inventory_source(config(server, max_retries=20, backoff_base_seconds=0.1,
                                           backoff_max_seconds=0.3), limiter=limiter)
    wanted = [f"SKU-{i:06d}" for i in range(100)]  # two calls of 50 back to back
    assert sorted(s.seller_sku for s in source.summaries(wanted)) == wanted
    assert counters(admin)["throttled"] >= 1


def test_quantities_are_passed_through_as_amazon_sent_them(server: ThreadedServer, admin: httpx.Client) -> None:
    admin.post("/inventory", json=[{"sellerSku": "SKU-000001", "fulfillableQuantity": -3},
                                   {"sellerSku": "SKU-000002", "fulfillableQuantity": "lots"},
                                   {"sellerSku": "SKU-000003", "fulfillableQuantity": 0}]).raise_for_status()
    source = build_inventory_source(config(server))
    found = {s.seller_sku: s.fulfillable_quantity for s in source.summaries(["SKU-000001", "SKU-000002",
                                                                             "SKU-000003"])}
    assert found == {"SKU-000001": -3, "SKU-000002": "lots", "SKU-000003": 0}


def test_sandbox_profile_points_the_spapi_section_at_the_sandbox(server: ThreadedServer, admin: httpx.Client) -> None:
    settings = sandbox_settings(amazon_url="http://127.0.0.1:9", sap_url="http://127.0.0.1:9",
                                netsuite_url="http://127.0.0.1:9", store_url="sqlite://", spapi_url=server.url)
    source = build_inventory_source(settings.spapi)
    assert [s.seller_sku for s in source.summaries(["SKU-000005"])] == ["SKU-000005"]


def test_endpoint_follows_region_and_sandbox_unless_set() -> None:
    assert SpApiConfig(region="eu").resolved_endpoint() == "https://sellingpartnerapi-eu.amazon.com"
    assert SpApiConfig(region="fe", use_sandbox=True).resolved_endpoint() == \
        "https://sandbox.sellingpartnerapi-fe.amazon.com"
    assert SpApiConfig(region="fe", endpoint="http://127.0.0.1:8104/").resolved_endpoint() == "http://127.0.0.1:8104"
    with pytest.raises(ConfigError, match=r"spapi\.endpoints"):
        SpApiConfig(endpoints={"na": "https://x"}, region="eu").resolved_endpoint()
    with pytest.raises(ConfigError, match=r"spapi\.sku_batch_size"):
        settings_from_dict({"spapi": {"sku_batch_size": 51}})


def test_secrets_are_references_resolved_when_the_source_is_built() -> None:
    cfg = settings_from_dict({"spapi": {"client_id": "c"}}).spapi
    assert str(cfg.refresh_token) == "env:PRIMEBRIDGE_SPAPI_REFRESH_TOKEN"
    with pytest.raises(ConfigError, match="PRIMEBRIDGE_SPAPI_CLIENT_SECRET"):
        build_inventory_source(cfg)
