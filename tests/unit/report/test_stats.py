"""The statistics behind leaderboard intervals and flags: reference formulas for the exact
tests and Holm, invariance to row order, targets counted once, and simulations of whole
suites showing the flag is calibrated under a null and detects a large effect."""

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
    diff = 0.3 + 0.05 * rng.normal(size=(3, 10))
    ci = paired_interval(cells(diff, targets_redrawn=True))
    assert ci is not None and ci.low < ci.mean < ci.high and ci.excludes_zero
    assert ci.mean == pytest.approx(diff.mean()) and ci.units == 30 and ci.p < 0.001


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


def test_a_target_trained_at_several_seeds_counts_once() -> None:
    """5 targets hit at every one of 6 seeds: 30 pairs but 5 units, so the exact test cannot
    go below 2/2^5, and the interval reflects that only 5 targets were seen."""
    fixed = paired_interval(cells(np.ones((6, 5)), targets_redrawn=False))
    redrawn = paired_interval(cells(np.ones((6, 5)), targets_redrawn=True))
    assert fixed.units == 5 and fixed.p == pytest.approx(0.0625)
    assert redrawn.units == 30 and redrawn.p < 1e-8


def test_seed_level_variation_widens_the_interval() -> None:
    """Same pair-level noise, but one seed far off: resampling seeds must show it."""
    rng = np.random.default_rng(3)
    tight = 0.2 + 0.01 * rng.normal(size=(3, 10))
    spread = tight.copy()
    spread[2] += 0.6
    a = paired_interval(cells(tight, targets_redrawn=True))
    b = paired_interval(cells(spread, targets_redrawn=True))
    assert (b.high - b.low) > 5 * (a.high - a.low)


def test_empty_and_the_adjusted_flag() -> None:
    assert paired_interval([]) is None and seed_interval([]) is None
    raw = [paired_interval(cells(np.ones((1, 6)), targets_redrawn=True)) for _ in range(3)]
    assert all(ci.p < 0.05 and ci.significant for ci in raw)  # p = 2/64 each
    fixed = adjusted([*raw, None])
    assert fixed[3] is None and all(ci.p_adjusted == pytest.approx(3 / 32) for ci in fixed[:3])
    assert not any(ci.significant for ci in fixed[:3])  # the flag reads the corrected p


# -- simulated suites ---------------------------------------------------------------------------------------
def simulate(rng: np.random.Generator, effect: float, targets_redrawn: bool, n_targets: int = 5) -> bool:
    """One suite of one cell: 3-6 seeds; targets with heterogeneous baseline hit probability
    and, at `effect` 0, a target-specific effect of +-0.35 (random sign: zero on average over
    targets, large for each target, the case where counting a target once per seed inflates
    false positives); a per-seed shift shared by the attacked encoder and its clean twin.
    Returns the flag: the exact test significant (one cell: nothing to correct)."""
    seeds = int(rng.integers(3, 7))
    shape = (seeds, n_targets)
    per = shape if targets_redrawn else (n_targets,)
    base = np.broadcast_to(rng.uniform(0.35, 0.65, size=per), shape)
    clean = np.clip(base + rng.normal(0, 0.05, size=(seeds, 1)), 0.01, 0.99)
    attacked = np.clip(clean + (effect or 0.35 * rng.choice([-1.0, 1.0], size=per)), 0.0, 1.0)
    hit = rng.random(shape) < attacked
    hit_clean = rng.random(shape) < clean
    ci = paired_interval(cells(hit.astype(float) - hit_clean, targets_redrawn), resamples=100)
    return ci is not None and ci.significant


@pytest.mark.parametrize(("targets_redrawn", "n_targets"), [(False, 5), (False, 12), (True, 5)])
def test_the_flag_is_calibrated_under_no_effect(targets_redrawn: bool, n_targets: int) -> None:
    """600 suites each: the same targets at every seed (5 or 12) or targets redrawn per seed."""
    rng = np.random.default_rng(12 + n_targets + targets_redrawn)
    flags = [simulate(rng, 0.0, targets_redrawn, n_targets) for _ in range(600)]
    assert np.mean(flags) <= 0.06


@pytest.mark.parametrize(("targets_redrawn", "n_targets"), [(True, 5), (False, 12)])
def test_the_flag_detects_a_large_effect(targets_redrawn: bool, n_targets: int) -> None:
    """A +0.5 hit-probability effect: flagged in at least 80% of 300 suites (5 targets seen
    at every seed can never be flagged: see test_a_target_trained_at_several_seeds_counts_once)."""
    rng = np.random.default_rng(7)
    flags = [simulate(rng, 0.5, targets_redrawn, n_targets) for _ in range(300)]
    assert np.mean(flags) >= 0.8
