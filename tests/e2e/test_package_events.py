"""Amazon package events end to end, into SAP S/4HANA and into NetSuite (scenarios in package_scenarios.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.e2e.harness import Bridge, Sandboxes
from tests.e2e.package_scenarios import (
    PackageWorld,
    delivered_before_in_transit_and_exact_duplicates,
    every_event_type_with_duplicates_and_reordering,
    package_world,
    sigkilled_workers_leave_one_document_per_package,
)

sandboxes = harness.sandboxes
store_url = harness.store_url
bridge = harness.bridge


@pytest.fixture(params=["sap", "netsuite"])
def oms(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(oms: str, bridge: Bridge, sandboxes: Sandboxes) -> Iterator[PackageWorld]:
    yield from package_world(oms, bridge, sandboxes)


@pytest.fixture
def unsubscribed(oms: str, bridge: Bridge, sandboxes: Sandboxes) -> Iterator[PackageWorld]:
    yield from package_world(oms, bridge, sandboxes, subscribe=False)


def test_every_event_type_with_duplicates_and_reordering(world: PackageWorld) -> None:
    every_event_type_with_duplicates_and_reordering(world)


def test_delivered_before_in_transit_and_exact_duplicates(unsubscribed: PackageWorld) -> None:
    delivered_before_in_transit_and_exact_duplicates(unsubscribed)


@pytest.mark.timeout(120)
def test_sigkilled_workers_leave_one_document_per_package(world: PackageWorld, tmp_path: Path,
                                                          store_url: str) -> None:
    sigkilled_workers_leave_one_document_per_package(world, tmp_path, store_url)
