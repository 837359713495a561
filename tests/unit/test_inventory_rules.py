"""The pure inventory rules: quantities, SKU mapping, the comparison and its references."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from primebridge.domain.inventory import DriftAction, InventorySummary
from primebridge.domain.inventory_rules import (
    Mapped,
    MappingSource,
    ProductRef,
    SkuMapping,
    Unmapped,
    compare,
    realtime_reference,
    reject_shared,
    run_reference,
    valid_quantity,
)

MAPPED = Mapped("SKU-1", "MAT-1", MappingSource.TABLE)


@pytest.mark.parametrize(("value", "expected"), [
    (0, Decimal(0)), (7, Decimal(7)), ("12", Decimal(12)), (" 3 ", Decimal(3)), (Decimal("4.0"), Decimal(4)),
    (-1, None), ("-2", None), ("abc", None), ("", None), (None, None), (True, None), (1.5, None),
    ("NaN", None), ("Infinity", None), ([], None),
])
def test_valid_quantity(value: object, expected: Decimal | None) -> None:
    assert valid_quantity(value) == expected


@pytest.mark.parametrize(("amazon", "oms", "action"), [
    (5, Decimal(5), DriftAction.NONE), (8, Decimal(5), DriftAction.INCREASE), (2, Decimal(5), DriftAction.DECREASE),
    (0, Decimal(3), DriftAction.DECREASE),
])
def test_compare_differences(amazon: int, oms: Decimal, action: DriftAction) -> None:
    decision = compare(InventorySummary("SKU-1", amazon), MAPPED, oms, reference="r1")
    assert decision.action is action
    assert decision.oms_item == "MAT-1"
    if action is DriftAction.NONE:
        assert decision.adjustment is None
    else:
        assert decision.adjustment is not None
        assert decision.adjustment.delta == Decimal(amazon) - oms
        assert decision.adjustment.reference == "r1"


def test_compare_unmapped_unknown_invalid_never_adjust() -> None:
    unmapped = compare(InventorySummary("X", 4), Unmapped("X", "not in table"), None, reference="r")
    assert (unmapped.action, unmapped.reason, unmapped.adjustment) == (DriftAction.UNMAPPED, "not in table", None)
    unknown = compare(InventorySummary("SKU-1", 4), MAPPED, None, oms_known=False, reference="r")
    assert unknown.action is DriftAction.UNKNOWN and "MAT-1" in unknown.reason and unknown.adjustment is None
    invalid = compare(InventorySummary("SKU-1", -3), MAPPED, Decimal(1), reference="r")
    assert invalid.action is DriftAction.INVALID and "-3" in invalid.reason and invalid.adjustment is None
    text = compare(InventorySummary("SKU-1", "lots"), MAPPED, Decimal(1), reference="r")  # type: ignore[arg-type]
    assert text.action is DriftAction.INVALID


@given(amazon=st.integers(0, 10**6), oms=st.integers(-10**6, 10**6))
def test_an_adjustment_always_lands_on_amazons_quantity(amazon: int, oms: int) -> None:
    decision = compare(InventorySummary("S", amazon), MAPPED, Decimal(oms), reference="r")
    if amazon == oms:
        assert decision.action is DriftAction.NONE
    else:
        assert decision.adjustment is not None
        assert decision.oms_quantity + decision.adjustment.delta == amazon  # type: ignore[operator]


def test_mapping_table_wins_per_oms_then_shared_then_products() -> None:
    mapping = SkuMapping({"sap": {"SKU-1": "MAT-1"}, "*": {"SKU-1": "ITEM-1", "SKU-2": "ITEM-2"}})
    product = ProductRef("SKU-1", sku="BWP-1", external_id="EXT-1")
    assert mapping.resolve("sap", "SKU-1", product) == Mapped("SKU-1", "MAT-1", MappingSource.TABLE)
    assert mapping.resolve("netsuite", "SKU-1", product) == Mapped("SKU-1", "ITEM-1", MappingSource.TABLE)
    assert mapping.resolve("netsuite", "SKU-3", ProductRef("SKU-3", sku="BWP-3")) == \
        Mapped("SKU-3", "BWP-3", MappingSource.PRODUCTS)
    by_external = SkuMapping({}, product_field="externalId")
    assert by_external.resolve("sap", "SKU-1", product) == Mapped("SKU-1", "EXT-1", MappingSource.PRODUCTS)


def test_unmapped_is_reported_never_guessed() -> None:
    mapping = SkuMapping({"sap": {"EMPTY": " "}})
    assert isinstance(mapping.resolve("sap", "SKU-9", None), Unmapped)
    assert "SKU-9" in mapping.resolve("sap", "SKU-9", None).reason  # type: ignore[union-attr]
    assert isinstance(mapping.resolve("sap", "EMPTY", ProductRef("EMPTY", sku="X")), Unmapped)
    no_field = mapping.resolve("sap", "SKU-4", ProductRef("SKU-4", sku=None, external_id="E"))
    assert isinstance(no_field, Unmapped) and "has no sku" in no_field.reason


def test_one_oms_item_from_two_skus_is_refused_in_the_table() -> None:
    with pytest.raises(ValueError, match="MAT-1"):
        SkuMapping({"sap": {"A": "MAT-1", "B": "MAT-1"}})
    with pytest.raises(ValueError, match="ITEM"):
        SkuMapping({"*": {"A": "ITEM", "B": "ITEM"}})
    with pytest.raises(ValueError, match="MAT-2"):
        SkuMapping({"*": {"A": "MAT-2"}, "sap": {"B": "MAT-2"}})
    SkuMapping({"*": {"A": "MAT-2"}, "sap": {"A": "MAT-3", "B": "MAT-2"}})  # A is overridden for sap: fine


def test_shared_items_in_one_batch_become_invalid() -> None:
    a = compare(InventorySummary("A", 1), Mapped("A", "SAME", MappingSource.PRODUCTS), Decimal(0), reference="ra")
    b = compare(InventorySummary("B", 2), Mapped("B", "SAME", MappingSource.PRODUCTS), Decimal(0), reference="rb")
    c = compare(InventorySummary("C", 3), Mapped("C", "OTHER", MappingSource.PRODUCTS), Decimal(0), reference="rc")
    out = reject_shared([a, b, c])
    assert [d.action for d in out] == [DriftAction.INVALID, DriftAction.INVALID, DriftAction.INCREASE]
    assert "A, B" in out[0].reason and out[0].adjustment is None


def test_references_are_stable_short_and_distinct() -> None:
    ref = run_reference(1234567, "netsuite", "SKU-" + "x" * 60)
    assert ref == run_reference(1234567, "netsuite", "SKU-" + "x" * 60)
    assert len(ref) <= 25
    assert len({run_reference(1, oms, sku) for oms in ("sap", "netsuite") for sku in ("A", "B")}) == 4
    assert run_reference(1, "sap", "A") != run_reference(2, "sap", "A")
    assert realtime_reference("sap", "A", "ev-1") == realtime_reference("sap", "A", "ev-1")
    assert realtime_reference("sap", "A", "ev-1") != realtime_reference("sap", "A", "ev-2")
