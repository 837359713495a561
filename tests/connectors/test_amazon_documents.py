"""Every GraphQL document the connector sends is valid against the sandbox's schema."""

from __future__ import annotations

from importlib import resources

import pytest
from graphql import build_schema, parse, validate

from primebridge.connectors.amazon.client import DOCUMENTS, FRAGMENTS, load_document, operation_name
from primebridge.sandbox.amazon.app import schema, schema_sdl


def test_every_document_file_is_sent_or_shared() -> None:
    folder = resources.files("primebridge.connectors.amazon") / "documents"
    files = {entry.name for entry in folder.iterdir() if entry.name.endswith(".graphql")}
    assert files == set(DOCUMENTS) | set(FRAGMENTS)
    assert {"createOrder.graphql", "order.graphql", "updateOrder.graphql"} <= set(DOCUMENTS)


def test_fragments_are_appended_only_where_spread() -> None:
    """Every shared fragment file is used, and a document that spreads none is sent as written
    (GraphQL rejects unused fragments, so documents of other kinds must not get OrderFields)."""
    for fragment in FRAGMENTS:
        text = (resources.files("primebridge.connectors.amazon") / "documents" / fragment).read_text()
        assert any(text in load_document(name) for name in DOCUMENTS), fragment
    for name in DOCUMENTS:
        document = load_document(name)
        assert ("...OrderFields" in document) == ("fragment OrderFields" in document)


def test_order_query_asks_for_packages_and_trackers() -> None:
    document = load_document("order.graphql")
    for field in ("packageInformation", "packageInformationDetailsFor", "orderLineItemAmounts", "packageTracker",
                  "trackingNumber", "carrierCode", "trackingUrl", "estimatedDeliveryDate", "latestMilestone",
                  "milestones", "occurredAt", "reason"):
        assert field in document, field


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_validates_against_sandbox_schema(name: str) -> None:
    errors = validate(schema(), parse(load_document(name)))
    assert errors == [], [e.message for e in errors]
    assert operation_name(load_document(name)) == name.removesuffix(".graphql")


@pytest.mark.parametrize(("old", "new"), [("executionState: OrderExecutionState", "state: OrderExecutionState"),
                                          ("  aliasType: String!", "  type: String!"),
                                          ("  deliveryProvider: DeliveryProvider\n", "  provider: DeliveryProvider\n"),
                                          ("  trackingUrl: String\n", "  trackingLink: String\n"),
                                          ("  milestones: [PackageMilestone]", "  events: [PackageMilestone]"),
                                          ("  occurredAt: String\n", "  occurred: String\n"),
                                          ("  orderLineItemAmounts: [OrderLineItemAmount]",
                                           "  amounts: [OrderLineItemAmount]")])
def test_a_renamed_field_fails_validation(old: str, new: str) -> None:
    """The check above is only worth something if it notices a drift between documents and schema.
    (Input fields travel in variables, not in the documents: the sandbox round trips cover those.)"""
    sdl = schema_sdl()
    assert old in sdl
    drifted = build_schema(sdl.replace(old, new, 1))
    failures = [validate(drifted, parse(load_document(name))) for name in DOCUMENTS]
    assert any(failures)
