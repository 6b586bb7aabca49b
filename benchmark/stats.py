"""Seed- and target-aware statistics for leaderboards.

An attack's effect is read per target pair against the paired clean twin (same seed, same
clean batches): d = poisoned - clean, for p(target) or for a hit. Seed-to-seed noise at small
scale is as large as the effect, so confidence intervals come from a two-level (cluster)
bootstrap: resample seeds with replacement, then target pairs within each drawn seed
(Davison & Hinkley, "Bootstrap Methods and their Application", 1997, sec. 3.8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def cluster_bootstrap(per_seed: Sequence[np.ndarray], level: float = 0.95,
                      resamples: int = RESAMPLES, seed: int = 0) -> Interval | None:
    """Percentile CI of the mean difference; `per_seed[s]` holds seed s's per-pair differences.

    Returns None without data; with a single seed only targets are resampled (the interval then
    ignores seed-to-seed variation, which the leaderboard flags separately)."""
    groups = [np.asarray(g, dtype=np.float64) for g in per_seed if len(g)]
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):
        drawn = rng.integers(0, len(groups), size=len(groups)) if len(groups) > 1 else [0]
        values = [groups[s][rng.integers(0, len(groups[s]), size=len(groups[s]))] for s in drawn]
        means[i] = np.concatenate(values).mean()
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(np.concatenate(groups).mean()), float(low), float(high))
