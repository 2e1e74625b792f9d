"""Quantities and requests (R1): parsed by the official client's parser, defaulted as Kubernetes does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from builders import within
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


# --- issue 28, item 3: hostile quantities are refused at once, as Kubernetes bounds them ----------

TOO_LARGE = ["1e100000000", "1E+100000000", "2e5000", "1e19", "9223372036854775808", "8Ei",
             "99999999999999999999999999Ki", "1e9223372036854775808", "1e" + "9" * 5000,
             "1" + "0" * 20000 + "m", 10**30, 1e300]
TOO_SMALL = ["1e-100000000", "1e-5000", "0.0000000001", "1e-" + "9" * 5000]


@pytest.mark.parametrize("value", TOO_LARGE, ids=lambda v: str(v)[:24])
def test_a_quantity_past_what_kubernetes_counts_is_refused_at_once(value):
    refused = pytest.raises(QuantityError, match=r"more than Kubernetes can count.*9223372036854775807")
    with within(5), refused:
        parse_quantity(value)


@pytest.mark.parametrize("value", TOO_SMALL, ids=lambda v: str(v)[:24])
def test_a_nonzero_quantity_below_1n_is_refused_at_once(value):
    with within(5), pytest.raises(QuantityError, match="less than 1n"):
        parse_quantity(value)


@pytest.mark.parametrize("value, parsed", [
    ("9223372036854775807", Decimal(2**63 - 1)), ("7Ei", Decimal(7 * 2**60)), ("1n", Decimal("1e-9")),
    ("0.000000001", Decimal("1e-9")), ("0e100000000", Decimal(0)), ("0.000e-99999999999", Decimal(0)),
    ("1.", Decimal(1)), ("+1", Decimal(1)),
])
def test_the_bounds_themselves_are_quantities(value, parsed):
    assert parse_quantity(value) == parsed


@pytest.mark.parametrize("value", ["1e1.5", "1.5e3Ki", ".", "1_000", " 1", "Infinity", "1e", "e3"])
def test_what_the_api_server_cannot_parse_is_refused(value):
    """Python's Decimal takes some of these; Kubernetes' grammar does not."""
    with pytest.raises(QuantityError, match="is not a Kubernetes quantity"):
        parse_quantity(value)


def test_no_quantity_is_ever_shown_by_building_a_huge_integer():
    with within(5):
        assert format_quantity(Decimal("1e100000000")) == "1E+100000000"
