"""The statistics behind leaderboard intervals and flags: reference formulas for the exact
tests, the t interval and Holm, invariance to row order, the seed as the unit. Simulations of
the measured suites' designs: tests/unit/report/test_stats_designs.py."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from pe_bench.report.stats import adjusted, binomial_two_sided, holm, paired_interval, seed_interval, sign_flip_p


# -- reference formulas -----------------------------------------------------------------------------
def test_the_sign_test_is_mcnemars_exact_test() -> None:
    """b discordant pairs one way, c the other: p = min(1, 2 P[Bin(b+c, 1/2) <= min(b, c)])."""
    for b, c in [(5, 0), (8, 3), (12, 0), (3, 3), (0, 0), (1, 9)]:
        n, k = b + c, min(b, c)
        want = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
        assert binomial_two_sided(b, c) == pytest.approx(want)
        flips = [1.0] * b + [-1.0] * c + [0.0] * 7  # ties (both hit or both miss) drop out
        assert sign_flip_p(flips) == pytest.approx(want)
    assert binomial_two_sided(5, 0) == pytest.approx(0.0625)  # 5 targets can never reach 0.05


def test_the_sign_flip_test_enumerates_every_sign_pattern() -> None:
    values = [3.0, -1.0, 2.0, 2.0, 0.5, 4.0]
    observed = abs(sum(values))
    patterns = list(itertools.product((1, -1), repeat=len(values)))
    want = sum(abs(sum(s * abs(v) for s, v in zip(signs, values, strict=True))) >= observed - 1e-9
               for signs in patterns) / len(patterns)
    assert sign_flip_p(values) == pytest.approx(want)
    assert sign_flip_p(values[::-1]) == sign_flip_p(values)


def test_holm_step_down() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone: 0.06
    assert holm([0.01, 0.04, 0.03, None, 0.005]) == pytest.approx([0.03, 0.06, 0.06, None, 0.02])
    assert holm([0.02, 0.9]) == pytest.approx([0.04, 0.9])
    assert holm([]) == []


# -- intervals ------------------------------------------------------------------------------------------
def cells(diff: np.ndarray, targets_redrawn: bool) -> list[tuple[int, tuple[str, int, int], float]]:
    """(seed, target, d) cells of a seeds x targets array of differences."""
    return [(s, ("digits", t + (100 * s if targets_redrawn else 0), 1), float(d))
            for s, row in enumerate(diff) for t, d in enumerate(row)]


def test_the_interval_brackets_the_mean_and_detects_a_clear_effect() -> None:
    rng = np.random.default_rng(1)
    diff = 0.3 + 0.05 * rng.normal(size=(6, 10))
    ci = paired_interval(cells(diff, targets_redrawn=True))
    assert ci is not None and ci.low < ci.mean < ci.high and ci.excludes_zero
    assert ci.mean == pytest.approx(diff.mean()) and ci.units == 6 and ci.p == pytest.approx(2 / 64)


def test_the_interval_is_students_t_over_the_seed_means() -> None:
    """Pinned against the reference: mean +- t(n-1, 0.975) sd / sqrt(n) of the per-seed means
    (t(9, 0.975) = 2.2622 for 10 seeds: a 90% interval would use 1.8331)."""
    rng = np.random.default_rng(4)
    diff = rng.normal(0.1, 0.3, size=(10, 5))
    ci = paired_interval(cells(diff, targets_redrawn=True))
    means = diff.mean(axis=1)
    half = 2.2621571627982 * means.std(ddof=1) / math.sqrt(10)
    assert ci is not None and ci.mean == pytest.approx(means.mean())
    assert (ci.low, ci.high) == pytest.approx((means.mean() - half, means.mean() + half))
    assert ci.p == pytest.approx(sign_flip_p(means))
    one = seed_interval([(0, 0.4)])
    assert one is not None and (one.low, one.mean, one.high, one.units) == (0.4, 0.4, 0.4, 1)


def test_the_monte_carlo_p_keeps_its_plus_one() -> None:
    """Beyond EXACT_MAX units the p-value is (1 + k) / (1 + draws): never 0. 20 positive values
    of distinct sizes: no random sign pattern reaches the observed sum, so p = 1 / 20001."""
    values = np.linspace(1.0, 2.0, 20)
    assert sign_flip_p(values) == pytest.approx(1 / 20001)


def test_no_order_of_the_cells_changes_a_result() -> None:
    rng = np.random.default_rng(2)
    data = cells(rng.normal(size=(4, 6)), targets_redrawn=False)
    first = paired_interval(data)
    for k in range(5):
        shuffled = data[:]
        random.Random(k).shuffle(shuffled)
        assert paired_interval(shuffled) == first
    per_seed = [(s, float(v)) for s, v in enumerate(rng.normal(size=5))]
    assert seed_interval(per_seed[::-1]) == seed_interval(per_seed)


def test_the_seed_is_the_unit_however_many_targets_it_holds() -> None:
    """5 targets hit at every one of 6 seeds: 30 pairs, 6 units, p = 2/2^6 whether the targets
    recur or are redrawn: targets of one seed share its encoder."""
    fixed = paired_interval(cells(np.ones((6, 5)), targets_redrawn=False))
    redrawn = paired_interval(cells(np.ones((6, 5)), targets_redrawn=True))
    assert fixed == redrawn and fixed is not None and fixed.units == 6 and fixed.p == pytest.approx(2 / 64)


def test_seed_level_variation_widens_the_interval() -> None:
    """Same pair-level noise, but one seed far off: the seed-level interval must show it."""
    rng = np.random.default_rng(3)
    tight = 0.2 + 0.01 * rng.normal(size=(3, 10))
    spread = tight.copy()
    spread[2] += 0.6
    a = paired_interval(cells(tight, targets_redrawn=True))
    b = paired_interval(cells(spread, targets_redrawn=True))
    assert a is not None and b is not None and (b.high - b.low) > 5 * (a.high - a.low)


def test_empty_and_the_adjusted_flag() -> None:
    assert paired_interval([]) is None and seed_interval([]) is None
    raw = [paired_interval(cells(np.ones((6, 1)), targets_redrawn=True)) for _ in range(3)]
    assert all(ci is not None and ci.p is not None and ci.p < 0.05 and ci.significant for ci in raw)  # 2/64 each
    fixed = adjusted([*raw, None])
    assert fixed[3] is None and all(ci is not None and ci.p_adjusted == pytest.approx(3 / 32) for ci in fixed[:3])
    assert not any(ci is not None and ci.significant for ci in fixed[:3])  # the flag reads the corrected p
