"""EcoOptiGen's rules on hand-built histories (hpo.search.ecooptigen)."""

from __future__ import annotations

import math

import pytest

from hpo.search.ecooptigen import Knowledge, budget_check, instance_cost, margin, subset_sizes, verdict

REGION = ("tiny", "task", "newline")


def test_rule1_valid_n_carries_to_smaller_max_tokens_invalid_n_to_larger() -> None:
    k = Knowledge()
    k.region(REGION).learn(max_tokens=16, n=4, valid=True)  # n=4 fits at 16 new tokens
    k.region(REGION).learn(max_tokens=8, n=10, valid=False)  # n=10 is too costly already at 8
    assert k.before(REGION, max_tokens=8, n=4) == "valid"  # fewer new tokens, same n: cheaper, still valid
    assert k.before(REGION, max_tokens=32, n=4) == "check"  # more new tokens: unknown
    assert k.before(REGION, max_tokens=16, n=10) == "prune"  # invalid at 8 → invalid at 16, no generation
    assert k.before(REGION, max_tokens=16, n=12) == "prune"  # a larger n than an invalid one
    assert k.before(REGION, max_tokens=4, n=10) == "check"  # invalid at 8 says nothing about 4
    assert k.before(REGION, max_tokens=16, n=6) == "check"  # between the largest valid and the smallest invalid
    assert k.before(("tiny", "qa", "newline"), max_tokens=16, n=10) == "check"  # another template: another region


def test_rule1_keeps_the_largest_valid_and_smallest_invalid() -> None:
    k = Knowledge()
    known = k.region(REGION)
    for n, valid in [(2, True), (6, False), (3, True), (9, False), (5, False), (1, True)]:
        known.learn(max_tokens=8, n=n, valid=valid)
    assert (known.max_valid_n(8), known.min_invalid_n(8)) == (3, 5)
    assert k.before(REGION, 8, 3) == "valid" and k.before(REGION, 8, 4) == "check" and k.before(REGION, 8, 5) == "prune"


def test_rule2_subsets_double_and_the_margin_shrinks_to_zero() -> None:
    assert subset_sizes(1) == [1]
    assert subset_sizes(10) == [1, 2, 4, 8, 10]
    assert subset_sizes(16) == [1, 2, 4, 8, 16]
    assert margin(1, 100) == pytest.approx(0.1 * math.sqrt(0.99))
    assert margin(25, 100) == pytest.approx(0.1 * math.sqrt(0.75 / 25))
    assert margin(100, 100) == 0.0
    sizes = subset_sizes(100)
    assert all(margin(a, 100) > margin(b, 100) for a, b in zip(sizes, sizes[1:], strict=False))


def test_rule2_stops_early_when_clearly_over_or_under() -> None:
    # target 100 tokens per instance; an instance costing 120 is clearly over (margin after 1 of 64 is ~9.9 %)
    over = budget_check([120.0] * 64, target=100)
    assert [(c.size, c.verdict) for c in over] == [(1, "invalid")]
    under = budget_check([85.0] * 64, target=100)
    assert [(c.size, c.verdict) for c in under] == [(1, "valid")]
    # 105 is within the first margins (9.9 % after 1 of 64, 7.0 % after 2): invalid once the margin is below 5 %
    # (4.8 % after 4)
    near = budget_check([105.0] * 64, target=100)
    assert [c.verdict for c in near] == ["grow", "grow", "invalid"] and near[-1].size == 4
    # exactly at the target: valid only once the whole data is seen (margin 0)
    exact = budget_check([100.0] * 8, target=100)
    assert [c.size for c in exact] == [1, 2, 4, 8] and exact[-1].verdict == "valid"


def test_rule2_follows_the_running_average() -> None:
    # cheap first instances, expensive later ones: valid is declared only if the prefix is clearly under
    costs = [80.0, 130.0, 130.0, 130.0, 130.0, 130.0, 130.0, 130.0]
    checks = budget_check(costs, target=100)
    assert checks[0].verdict == "valid"  # 80 after one instance: clearly under, EcoOptiGen stops checking
    costs = [95.0, 130.0, 130.0, 130.0, 130.0, 130.0, 130.0, 130.0]
    checks = budget_check(costs, target=100)
    assert [(c.size, c.verdict) for c in checks] == [(1, "grow"), (2, "invalid")]
    assert checks[-1].average_tokens == pytest.approx(112.5)


def test_verdict_and_cost_arguments() -> None:
    assert verdict(100.0, 10, 10, 100.0) == "valid" and verdict(100.01, 10, 10, 100.0) == "invalid"
    with pytest.raises(ValueError, match="target: got 0"):
        verdict(1.0, 1, 2, 0)
    with pytest.raises(ValueError, match="total: got 0"):
        subset_sizes(0)
    assert instance_cost(50, [4, 8, 6]) == 68.0
    assert instance_cost(1000, [500, 500], prices=(0.5, 1.5)) == pytest.approx(0.5 + 1.5)
