"""The SP-API sandbox over HTTP: LWA, the enforced usage plan, page tokens that expire, the generated
catalogue, validation and the admin API. A fake clock drives buckets and lifetimes (no sleeping)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from primebridge.sandbox.server import ThreadedServer
from primebridge.sandbox.spapi import DEFAULT_MARKETPLACE, DEFAULT_REFRESH_TOKEN, create_app
from primebridge.sandbox.spapi.catalogue import Catalogue

PATH = "/fba/inventory/v1/summaries"
BASE = {"details": "true", "granularityType": "Marketplace", "granularityId": DEFAULT_MARKETPLACE,
        "marketplaceIds": DEFAULT_MARKETPLACE}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[httpx.Client]:
    app = create_app(catalogue_size=120, page_size=50, rate=2, burst=2, clock=clock)
    with ThreadedServer(app, name="spapi") as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def token(client: httpx.Client, **form: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": DEFAULT_REFRESH_TOKEN,
            "client_id": "sandbox-lwa-client", "client_secret": "sandbox-lwa-secret", **form}
    return client.post("/auth/o2/token", data=data)


def get(client: httpx.Client, access: str, **params: Any) -> httpx.Response:
    return client.get(PATH, params={**BASE, **params}, headers={"x-amz-access-token": access})


def unlimited(client: httpx.Client) -> str:
    client.put("/_sandbox/rate-limit", json={"rate": 1000, "burst": 1000}).raise_for_status()
    return token(client).json()["access_token"]


def test_lwa_issues_one_hour_tokens_for_a_known_refresh_token(sandbox: httpx.Client) -> None:
    answer = token(sandbox)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["access_token"].startswith("Atza|")
    assert token(sandbox, grant_type="client_credentials").json()["error"] == "unsupported_grant_type"
    assert token(sandbox, client_secret="wrong").status_code == 401
    refused = token(sandbox, refresh_token="Atzr|unknown")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_access_tokens_expire_and_are_refused_with_the_sp_api_body(sandbox: httpx.Client, clock: Clock) -> None:
    access = token(sandbox).json()["access_token"]
    assert get(sandbox, access).status_code == 200
    clock.now += 3601
    refused = get(sandbox, access)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "Unauthorized"
    assert "expired" in refused.json()["errors"][0]["details"]


def test_usage_plan_is_enforced_with_burst_and_continuous_refill(sandbox: httpx.Client, clock: Clock) -> None:
    access = token(sandbox).json()["access_token"]
    assert [get(sandbox, access).status_code for _ in range(3)] == [200, 200, 429]
    throttled = get(sandbox, access)
    assert throttled.json() == {"errors": [{"code": "QuotaExceeded",
                                            "message": "You exceeded your quota for the requested resource.",
                                            "details": ""}]}
    assert throttled.headers["x-amzn-RateLimit-Limit"] == "2"
    clock.now += 0.25                       # half a token at 2/s
    assert get(sandbox, access).status_code == 429
    clock.now += 0.25
    ok = get(sandbox, access)
    assert ok.status_code == 200 and ok.headers["x-amzn-RateLimit-Limit"] == "2"
    clock.now += 60                         # refills up to the burst, not beyond
    assert [get(sandbox, access).status_code for _ in range(3)] == [200, 200, 429]
    counters = sandbox.get("/_sandbox/stats").json()["counters"]
    assert counters["requests"] == 9 and counters["throttled"] == 4


def test_pages_follow_next_token_beside_the_payload(sandbox: httpx.Client) -> None:
    access = unlimited(sandbox)
    skus: list[str] = []
    params: dict[str, str] = {}
    while True:
        body = get(sandbox, access, **params).json()
        assert body["payload"]["granularity"] == {"granularityType": "Marketplace",
                                                  "granularityId": DEFAULT_MARKETPLACE}
        skus += [s["sellerSku"] for s in body["payload"]["inventorySummaries"]]
        if "pagination" not in body:
            break
        params = {"nextToken": body["pagination"]["nextToken"]}
    assert skus == [f"SKU-{i:06d}" for i in range(120)]
    summary = get(sandbox, access, sellerSkus="SKU-000007").json()["payload"]["inventorySummaries"][0]
    assert set(summary["inventoryDetails"]) >= {"fulfillableQuantity", "reservedQuantity", "unfulfillableQuantity"}
    bare = get(sandbox, access, details="false", sellerSkus="SKU-000007").json()["payload"]["inventorySummaries"][0]
    assert "inventoryDetails" not in bare


def test_next_token_expires_after_its_ttl_and_cannot_be_forged(sandbox: httpx.Client, clock: Clock) -> None:
    access = unlimited(sandbox)
    next_token = get(sandbox, access).json()["pagination"]["nextToken"]
    clock.now += 29
    assert get(sandbox, access, nextToken=next_token).status_code == 200
    clock.now += 2                         # 31 s after it was issued
    expired = get(sandbox, access, nextToken=next_token)
    assert expired.status_code == 400
    assert expired.json()["errors"][0] == {"code": "InvalidInput", "message": "Next token is invalid or expired",
                                           "details": ""}
    fresh = get(sandbox, access).json()["pagination"]["nextToken"]
    assert get(sandbox, access, nextToken=fresh[:-2] + "xx").status_code == 400
    assert get(sandbox, access, nextToken=fresh, sellerSkus="SKU-000001").status_code == 400  # another query
    sandbox.post("/_sandbox/next-token/expire").raise_for_status()
    assert get(sandbox, access, nextToken=fresh).status_code == 400


def test_requests_outside_the_model_are_invalid_input(sandbox: httpx.Client) -> None:
    access = unlimited(sandbox)
    cases = [{"granularityType": "Country"},
             {"marketplaceIds": f"{DEFAULT_MARKETPLACE},A1PA6795UKMFR9"},
             {"marketplaceIds": "A1PA6795UKMFR9", "granularityId": "A1PA6795UKMFR9"},
             {"sellerSkus": ",".join(f"S{i}" for i in range(51))}]
    for params in cases:
        answer = get(sandbox, access, **params)
        assert answer.status_code == 400, params
        assert answer.json()["errors"][0]["code"] == "InvalidInput"


def test_admin_sets_quantities_adds_and_deletes_skus(sandbox: httpx.Client) -> None:
    access = unlimited(sandbox)
    sandbox.post("/_sandbox/inventory", json=[
        {"sellerSku": "SKU-000003", "fulfillableQuantity": 7},
        {"sellerSku": "AAA-NEW", "fulfillableQuantity": "n/a", "productName": "odd"},
    ]).raise_for_status()
    assert sandbox.delete("/_sandbox/inventory/SKU-000004").status_code == 200
    assert sandbox.delete("/_sandbox/inventory/SKU-000004").status_code == 404
    page = get(sandbox, access).json()["payload"]["inventorySummaries"]
    by_sku = {s["sellerSku"]: s for s in page}
    assert page[0]["sellerSku"] == "AAA-NEW" and by_sku["AAA-NEW"]["inventoryDetails"]["fulfillableQuantity"] == "n/a"
    assert by_sku["SKU-000003"]["inventoryDetails"]["fulfillableQuantity"] == 7
    assert "SKU-000004" not in by_sku
    assert sandbox.get("/_sandbox/inventory/SKU-000003").json()["inventoryDetails"]["fulfillableQuantity"] == 7
    assert sandbox.get("/_sandbox/catalogue").json()["count"] == 120
    assert sandbox.post("/_sandbox/inventory", json=[{"fulfillableQuantity": 1}]).status_code == 400


def test_catalogue_size_and_seed_are_configurable_and_deterministic(sandbox: httpx.Client) -> None:
    access = unlimited(sandbox)
    sandbox.put("/_sandbox/catalogue", json={"size": 250_000, "seed": 7, "page_size": 100}).raise_for_status()
    first = get(sandbox, access).json()
    assert len(first["payload"]["inventorySummaries"]) == 100
    assert sandbox.get("/_sandbox/catalogue").json()["count"] == 250_000
    again = get(sandbox, access).json()["payload"]["inventorySummaries"]
    assert again == first["payload"]["inventorySummaries"]
    assert sandbox.put("/_sandbox/catalogue", json={"size": "many"}).status_code == 400


def test_generated_catalogue_is_lazy_and_seeks_by_cursor() -> None:
    catalogue = Catalogue(size=1_000_000, seed=3)
    assert catalogue.width == 6
    it = catalogue.after("SKU-765431")
    assert [next(it) for _ in range(2)] == ["SKU-765432", "SKU-765433"]
    assert catalogue.record("SKU-999999") is not None and catalogue.record("SKU-1000000") is None
    quantities = [catalogue.generated_quantity(i) for i in range(1000)]
    assert quantities == [Catalogue(size=10, seed=3).generated_quantity(i) for i in range(1000)]
    assert len(set(quantities)) > 100 and min(quantities) >= 0
    assert quantities != [Catalogue(size=10, seed=4).generated_quantity(i) for i in range(1000)]


def test_knobs_answer_in_sp_api_shapes_and_reset_restores(sandbox: httpx.Client) -> None:
    access = unlimited(sandbox)
    sandbox.put("/_sandbox/knobs", json={"error_rate": 1.0}).raise_for_status()
    failed = get(sandbox, access)
    assert failed.status_code == 503 and failed.json()["errors"][0]["code"] == "ServiceUnavailable"
    sandbox.put("/_sandbox/knobs", json={"error_rate": 0, "throttle_rate": 1.0}).raise_for_status()
    throttled = get(sandbox, access)
    assert throttled.status_code == 429 and throttled.json()["errors"][0]["code"] == "QuotaExceeded"
    sandbox.put("/_sandbox/knobs", json={"throttle_rate": 0}).raise_for_status()
    sandbox.post("/_sandbox/inventory", json=[{"sellerSku": "ZZZ", "fulfillableQuantity": 1}]).raise_for_status()
    sandbox.post("/_sandbox/reset").raise_for_status()
    assert sandbox.get("/_sandbox/stats").json()["counters"] == {}
    assert sandbox.get("/_sandbox/inventory/ZZZ").status_code == 404
