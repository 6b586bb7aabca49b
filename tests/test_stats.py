"""The cluster bootstrap behind leaderboard confidence intervals."""

from __future__ import annotations

import numpy as np

from pe_bench.stats import cluster_bootstrap


def test_interval_brackets_the_mean_and_detects_a_clear_effect() -> None:
    rng = np.random.default_rng(1)
    per_seed = [0.3 + 0.05 * rng.normal(size=10) for _ in range(3)]
    ci = cluster_bootstrap(per_seed)
    assert ci is not None and ci.low < ci.mean < ci.high and ci.excludes_zero
    assert abs(ci.mean - np.concatenate(per_seed).mean()) < 1e-12


def test_noise_around_zero_is_not_an_effect() -> None:
    rng = np.random.default_rng(2)
    ci = cluster_bootstrap([rng.normal(size=8) for _ in range(3)])
    assert ci is not None and not ci.excludes_zero


def test_seed_level_variation_widens_the_interval() -> None:
    """Same targets-level noise, but one seed far off: resampling seeds must show it."""
    rng = np.random.default_rng(3)
    tight = [0.2 + 0.01 * rng.normal(size=10) for _ in range(3)]
    spread = [tight[0], tight[1], tight[2] + 0.6]
    a, b = cluster_bootstrap(tight), cluster_bootstrap(spread)
    assert (b.high - b.low) > 5 * (a.high - a.low)


def test_empty_and_deterministic() -> None:
    assert cluster_bootstrap([]) is None and cluster_bootstrap([np.array([])]) is None
    data = [np.array([0.1, 0.2, -0.1]), np.array([0.3, 0.0])]
    assert cluster_bootstrap(data) == cluster_bootstrap(data)
