"""Quantities and requests (R1): parsed by the official client's parser, defaulted as Kubernetes does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stepflow.capacity import (
    QuantityError,
    container_requests,
    describe,
    fits,
    format_quantity,
    free,
    parse_quantity,
)


@pytest.mark.parametrize("text, value", [
    ("500m", Decimal("0.5")), ("1.5", Decimal("1.5")), (2, Decimal(2)), ("1Gi", Decimal(2**30)),
    ("1e3", Decimal(1000)), ("128974848", Decimal(128974848)), ("129M", Decimal(129_000_000)),
])
def test_quantities_follow_the_kubernetes_grammar(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["lots", "1.5.5", "-1", "", True, None, [1], "1Gb"])
def test_what_is_not_a_quantity_is_refused_with_an_example(bad):
    with pytest.raises(QuantityError, match="quantity"):
        parse_quantity(bad)


def test_requests_default_to_limits_and_win_over_them():
    resources = {"limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": 1}, "requests": {"cpu": "500m"}}
    assert container_requests(resources) == {"cpu": Decimal("0.5"), "memory": Decimal(2**30),
                                             "nvidia.com/gpu": Decimal(1)}
    assert container_requests(None) == {} and container_requests({}) == {}


def test_a_bad_entry_is_named():
    with pytest.raises(QuantityError) as error:
        container_requests({"requests": {"cpu": "1", "memory": "much"}})
    assert error.value.field == "requests.memory"


def test_fits_limits_only_the_budgeted_resources():
    budget = {"cpu": Decimal(2)}
    assert fits({"cpu": Decimal(1), "memory": Decimal(10**12)}, {"cpu": Decimal(1)}, budget)
    assert not fits({"cpu": Decimal("1.001")}, {"cpu": Decimal(1)}, budget)
    assert free({"cpu": Decimal(3)}, budget) == {"cpu": Decimal(0)}  # never negative


@pytest.mark.parametrize("value, shown", [
    (Decimal("0.5"), "500m"), (Decimal(2), "2"), (Decimal(2**30), "1Gi"), (Decimal(3 * 2**20), "3Mi"),
    (Decimal("0.0005"), "0.0005"), (Decimal(1000), "1000"),
])
def test_quantities_are_shown_as_people_write_them(value, shown):
    assert format_quantity(value) == shown


def test_describe_lists_the_named_resources_in_order():
    assert describe({"cpu": Decimal(1), "memory": Decimal(2**30)}) == "cpu 1, memory 1Gi"
    assert describe({"cpu": Decimal(1)}, ["memory"]) == "memory 0"
