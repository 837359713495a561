"""OMS → Buy with Prime end to end, the behaviour SAP S/4HANA and NetSuite share: written once and run
for each OMS (what differs per OMS lives in test_fulfill_sap.py and test_fulfill_netsuite.py)."""

from __future__ import annotations

import pytest

from tests.e2e import harness
from tests.e2e.harness import Bridge, Sandboxes, assert_fulfilled, closed_port_url, make_bridge, wait_for

sandboxes = harness.sandboxes
store_url = harness.store_url
bridge = harness.bridge

UNCHANGED = "unchanged since last sync"


@pytest.fixture(params=["sap", "netsuite"])
def oms(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _new_order(bridge: Bridge, oms: str) -> str:
    return bridge.seeder.sap_order() if oms == "sap" else bridge.seeder.netsuite_order()


def test_the_echo_of_our_own_write_back_is_a_no_op_without_any_amazon_call(bridge: Bridge, oms: str) -> None:
    order_id = _new_order(bridge, oms)
    bridge.push(oms, order_id)
    bridge.run_until_idle()
    assert_fulfilled(bridge, oms, order_id)
    amazon_before = bridge.seeder.amazon_stats()

    # SAP raises a "Changed" event for the texts we wrote; NetSuite's User Event script fires on our PATCH.
    echo = bridge.push(oms, order_id)

    assert echo.json()["jobs"] == 1
    bridge.run_until_idle()
    last = bridge.jobs()[-1]
    assert last.status == "done" and last.outcome.startswith(UNCHANGED)
    assert bridge.seeder.amazon_stats() == amazon_before


def test_amazon_throttling_is_retried_and_creates_the_order_once(bridge: Bridge, oms: str) -> None:
    order_id = _new_order(bridge, oms)
    bridge.seeder.amazon_knobs(throttle_rate=1.0, retry_after_seconds=0.1)
    bridge.start_worker()

    bridge.push(oms, order_id)
    wait_for(lambda: (job := bridge.jobs()[0]).attempts >= 1 and job.status == "queued",
             "a throttled attempt")
    bridge.seeder.amazon_knobs(throttle_rate=0.0)
    job = wait_for(lambda: (j := bridge.jobs()[0]).status in ("done", "dead", "rejected") and j, "the job")

    assert job.status == "done", job.last_error
    assert job.attempts >= 2
    stats = bridge.seeder.amazon_stats()
    assert stats.get("graphql.throttled", 0) + stats.get("token.throttled", 0) >= 1
    assert stats["createOrder.created"] == 1
    assert_fulfilled(bridge, oms, order_id)


def test_an_unreachable_oms_is_retried_and_the_job_is_not_lost(sandboxes: Sandboxes, bridge: Bridge,
                                                               store_url: str, oms: str) -> None:
    order_id = _new_order(bridge, oms)
    broken = make_bridge(sandboxes, store_url, urls={oms: closed_port_url()})
    try:
        assert broken.push(oms, order_id).status_code == 202  # intake never needs the OMS
        broken.start_worker()
        wait_for(lambda: (job := broken.jobs()[0]).attempts >= 2 and job.status == "queued",
                 "two failed attempts")
        broken.stop_workers()
    finally:
        broken.close()
    (job,) = bridge.jobs()
    assert job.status == "queued"
    assert "Connect" in (job.last_error or ""), job.last_error
    assert bridge.amazon_orders_for(oms, order_id) == []

    bridge.start_worker()  # the healthy service shares the store and picks the job up
    wait_for(lambda: bridge.jobs()[0].status == "done", "the retried job")
    assert_fulfilled(bridge, oms, order_id)
