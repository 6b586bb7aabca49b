"""Seed- and target-aware statistics for leaderboards: intervals, exact paired tests, Holm.

An effect is read per target pair against a paired reference (the clean twin, the undefended
encoder, another attack at the same seed and targets): d = this - reference, for p(target) or a
hit. A target pair is identified by (task, index, target_class); the same target trained at
several seeds is one target seen several times, not several targets (issue 12).

- Interval: a percentile bootstrap that resamples seeds and distinct targets independently (the
  two-way "pigeonhole" bootstrap of Owen, Ann. Appl. Stat. 2007, for crossed random effects;
  Davison & Hinkley, "Bootstrap Methods and their Application", 1997, sec. 3.8 for clusters).
  When targets are redrawn per seed it varies both the seeds and the targets within them; when
  the same targets recur at every seed it varies both factors of the crossed layout. Inputs are
  sorted canonically first, so the order rows are read in never changes a result.
- Test: an exact sign-flip (randomisation) test over target clusters (`sign_flip_p`), a paired
  test that stays exact when targets recur across seeds; with one appearance per target and
  0/1 hits it *is* McNemar's exact test (McNemar 1947).
- Multiplicity: Holm's step-down adjustment (Holm, Scand. J. Statist. 1979) over the lines of a
  board, per column (`holm`); the `n.s.` flag reads the adjusted p-value.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

RESAMPLES = 2000
ALPHA = 0.05
EXACT_MAX = 16  # sign-flip tests enumerate every sign pattern up to this many clusters
RANDOM_FLIPS = 20000  # beyond it: Monte Carlo flips, p = (1 + hits) / (1 + draws)
TOL = 1e-12
Cell = tuple[Hashable, Hashable, float]  # (seed, target identity, difference)


@dataclass(frozen=True)
class Interval:
    """A paired difference: mean with a percentile interval, the exact test's p-value (`p`),
    the p-value after the board's multiplicity correction (`p_adjusted`), and the number of
    independent units (target clusters, or seeds) the test rests on."""

    mean: float
    low: float
    high: float
    p: float | None = None
    p_adjusted: float | None = None
    units: int = 0

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def significant(self) -> bool:
        """The flag a line shows: the corrected exact test (raw p before any correction)."""
        p = self.p if self.p_adjusted is None else self.p_adjusted
        return p is not None and p < ALPHA


def _key(value: Hashable) -> str:
    return repr(value)


def paired_interval(cells: Sequence[Cell], level: float = 0.95, resamples: int = RESAMPLES,
                    seed: int = 0) -> Interval | None:
    """Interval and exact test of the mean of `cells` (seed, target, d); None without cells.

    The mean is over every (seed, target) difference; the bootstrap draws seeds and targets
    independently with replacement and weights each cell by the product of its seed's and
    its target's multiplicities (resamples where no drawn target was seen at a drawn seed are
    skipped); the test flips the sign of each target's net difference over its seeds."""
    if not cells:
        return None
    seeds = sorted({c[0] for c in cells}, key=_key)
    targets = sorted({c[1] for c in cells}, key=_key)
    s_at = {s: i for i, s in enumerate(seeds)}
    t_at = {t: i for i, t in enumerate(targets)}
    total = np.zeros((len(seeds), len(targets)))
    count = np.zeros_like(total)
    for s, t, d in cells:
        total[s_at[s], t_at[t]] += d
        count[s_at[s], t_at[t]] += 1
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(seeds), np.full(len(seeds), 1 / len(seeds)), size=resamples)
    v = rng.multinomial(len(targets), np.full(len(targets), 1 / len(targets)), size=resamples)
    num = ((w @ total) * v).sum(axis=1)
    den = ((w @ count) * v).sum(axis=1)
    low, high = _percentiles(num[den > 0] / den[den > 0], level)
    return Interval(float(total.sum() / count.sum()), low, high, p=sign_flip_p(total.sum(axis=0)),
                    units=len(targets))


def seed_interval(per_seed: Sequence[tuple[Hashable, float]], level: float = 0.95,
                  resamples: int = RESAMPLES, seed: int = 0) -> Interval | None:
    """Interval and exact test of a per-seed difference (e.g. PA - CA of the paired twin):
    the seeds are the resampled and the sign-flipped unit. None without seeds."""
    if not per_seed:
        return None
    values = np.array([d for _, d in sorted(per_seed, key=lambda sd: _key(sd[0]))], dtype=np.float64)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(values), np.full(len(values), 1 / len(values)), size=resamples)
    low, high = _percentiles(w @ values / len(values), level)
    return Interval(float(values.mean()), low, high, p=sign_flip_p(values), units=len(values))


def _percentiles(means: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def sign_flip_p(values: Sequence[float] | np.ndarray) -> float:
    """Two-sided exact p-value of "the sum of `values` is symmetric about 0".

    Valid when the units are independent and, under the null, each unit's value is as likely
    to be +x as -x: true of a target's net hit flip (this hit minus the reference's, summed over
    the seeds it was trained at) when the attack does nothing, because the two encoders are then
    exchangeable at every seed (Fisher's randomisation argument; Good, "Permutation, Parametric
    and Bootstrap Tests of Hypotheses", 2005, ch. 3). Statistic |sum|; zero units carry no
    information and drop out. With equal magnitudes (0/1 hits, each target once) this is the
    exact sign test on b (this encoder hits, the reference misses) and c (the reverse),
    p = min(1, 2 P[Bin(b + c, 1/2) <= min(b, c)]): McNemar's exact test (McNemar,
    Psychometrika 1947; Agresti, "Categorical Data Analysis", 2013, sec. 11.1)."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.abs(v) > TOL])
    if v.size == 0:
        return 1.0
    size = np.abs(v)
    if np.allclose(size, size[0]):
        b = int((v > 0).sum())
        return binomial_two_sided(b, v.size - b)
    observed = abs(v.sum()) - 1e-9 * size.sum()
    if v.size <= EXACT_MAX:
        signs = 1 - 2 * ((np.arange(2 ** v.size)[:, None] >> np.arange(v.size)) & 1)
        return float((np.abs(signs @ size) >= observed).mean())
    flips = np.random.default_rng(0).choice([-1.0, 1.0], size=(RANDOM_FLIPS, v.size))
    return float((1 + (np.abs(flips @ size) >= observed).sum()) / (1 + RANDOM_FLIPS))


def binomial_two_sided(b: int, c: int) -> float:
    """Exact two-sided sign test of b successes against c failures (p = 1/2)."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)
    return min(1.0, 2 * tail)


def holm(ps: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and is not counted): the i-th
    smallest of m becomes max over j <= i of min(1, (m - j + 1) p_(j)) (Holm 1979). Controls
    the family-wise error rate under any dependence between the tests."""
    present = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    out: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        out[i] = running
    return out


def adjusted(intervals: Sequence[Interval | None]) -> list[Interval | None]:
    """`intervals` with `p_adjusted` set by Holm over those that carry a p-value."""
    ps = holm([None if ci is None else ci.p for ci in intervals])
    return [None if ci is None else replace(ci, p_adjusted=p) for ci, p in zip(intervals, ps, strict=True)]
