"""Seed-level statistics for leaderboards: intervals, exact paired tests, Holm.

An effect is read against a paired reference (the clean twin, the undefended encoder, another
attack at the same seed): d = this - reference, per target pair (targeted lines: a hit or
p(target)) or per seed (backdoor lines and PA: over the same triggered inputs / test images).
The unit of every interval and test is the seed: each seed trains one attacked encoder and
one reference, so the differences of targets within a seed share an encoder and are not
independent (a per-seed shift of the attacked encoder that its twin does not share moves them
together: a test over targets then flags 15-26% of null suites at 10 seeds; over seeds, at most
the nominal 5%). A target pair is identified by (task, index, target class); a line says how
many pairs and distinct targets it holds.

- Per seed: the mean of its differences (one value per seed; targets recurring at every seed
  are the same fixed targets at each).
- Interval: Student's t over the seed values, mean +- t(n-1, 0.975) sd / sqrt(n). Why t and not
  a bootstrap: with 3-10 seeds a percentile bootstrap undercovers (0.79 at 3 seeds, 0.85-0.88
  at 10 in null simulations of this project's suites) and BCa does no better at these sizes;
  under the null the seed differences are symmetric (the two encoders of a seed are
  exchangeable), where t covers 0.95-0.96 (tests/unit/report/test_stats_designs.py). Under a
  strongly skewed true effect (present at a few seeds only) its coverage of the mean falls to
  about 0.89 at 10 seeds: docs/metrics.md says so.
- Test: an exact two-sided sign-flip (randomisation) test over seeds (`sign_flip_p`), valid
  under that exchangeability whatever the distribution; n seeds cannot go below p = 2/2^n.
- Multiplicity: Holm's step-down adjustment (Holm, Scand. J. Statist. 1979) over a family of
  comparisons (`holm`); the `n.s.` flag reads the adjusted p.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import stdtrit

from pe_bench.store.declarations import ALPHA  # one level for every verdict (pe_bench.config.comparisons)

LEVEL = 0.95
EXACT_MAX = 16  # sign-flip tests enumerate every sign pattern up to this many units
RANDOM_FLIPS = 20000  # beyond it: Monte Carlo flips, p = (1 + hits) / (1 + draws)
TOL = 1e-12
Cell = tuple[Hashable, Hashable, float]  # (seed, target identity, difference)


@dataclass(frozen=True)
class Interval:
    """A paired difference: the mean of its per-seed values with a Student-t interval, the exact
    sign-flip test's p-value over seeds (`p`), the p-value after the family's multiplicity
    correction (`p_adjusted`), the number of seeds the interval rests on (`units`), of them the
    seeds the test rests on (`untied`: a seed whose difference is 0 drops out of the sign-flip
    test, so p cannot go below 2/2^untied), and the declared family it was tested in (`family`;
    None: exploratory, pe_bench.config.comparisons)."""

    mean: float
    low: float
    high: float
    p: float | None = None
    p_adjusted: float | None = None
    units: int = 0
    family: str | None = None
    untied: int | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def significant(self) -> bool:
        """The flag a line shows: the corrected exact test (raw p before any correction)."""
        p = self.p if self.p_adjusted is None else self.p_adjusted
        return p is not None and p < ALPHA

    @property
    def verdict(self) -> str:
        """What a board may say of it: `supported` (its declared family's adjusted p < ALPHA),
        `n.s.`, or `exploratory` (no declared family: never supported, whatever its p)."""
        if self.family is None or self.p_adjusted is None:
            return "exploratory"
        return "supported" if self.p_adjusted < ALPHA else "n.s."


def mean_present(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are there (None where none is: e.g. no trial recorded one)."""
    got = [float(v) for v in values if v is not None]
    return sum(got) / len(got) if got else None


def _key(value: Hashable) -> str:
    return repr(value)


def paired_interval(cells: Sequence[Cell], level: float = LEVEL) -> Interval | None:
    """Interval and exact test of per-target differences `cells` (seed, target, d), with the
    seed as the unit: each seed's cells are averaged into one value (`seed_interval`). None
    without cells."""
    by_seed: dict[Hashable, list[float]] = {}
    for s, _, d in cells:
        by_seed.setdefault(s, []).append(d)
    return seed_interval([(s, math.fsum(ds) / len(ds)) for s, ds in by_seed.items()], level)


def seed_interval(per_seed: Sequence[tuple[Hashable, float]], level: float = LEVEL) -> Interval | None:
    """Interval and exact test of one difference per seed: the mean with a Student-t interval
    (one seed: the value itself, no width) and the sign-flip test over seeds. None without seeds."""
    if not per_seed:
        return None
    values = np.array([d for _, d in sorted(per_seed, key=lambda sd: _key(sd[0]))], dtype=np.float64)
    mean, n = float(math.fsum(values) / len(values)), len(values)
    half = 0.0
    if n > 1:
        half = float(stdtrit(n - 1, 1 - (1 - level) / 2)) * float(values.std(ddof=1)) / math.sqrt(n)
    untied = int((np.abs(values) > TOL).sum())
    return Interval(mean, mean - half, mean + half, p=sign_flip_p(values), units=n, untied=untied)


def sign_flip_p(values: Sequence[float] | np.ndarray) -> float:
    """Two-sided exact p-value of "the sum of `values` is symmetric about 0".

    Valid when the units are independent and, under the null, each unit's value is as likely
    to be +x as -x: true of a seed's difference (attacked minus reference, over the same inputs)
    when the attack does nothing, because the two encoders of a seed are then exchangeable
    (Fisher's randomisation argument; Good, "Permutation, Parametric and Bootstrap Tests of
    Hypotheses", 2005, ch. 3). Statistic |sum|; zero units carry no information and drop out;
    every sign pattern is enumerated up to EXACT_MAX units, beyond that RANDOM_FLIPS random ones
    with p = (1 + k) / (1 + RANDOM_FLIPS), never 0. With equal magnitudes this is the exact sign
    test, p = min(1, 2 P[Bin(b + c, 1/2) <= min(b, c)]) on b positive and c negative units
    (McNemar's exact test when the units are 0/1 discordant pairs: McNemar, Psychometrika 1947)."""
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


def in_families(entries: Sequence[tuple[Interval | None, Hashable | None]]) -> list[Interval | None]:
    """Each interval tested in its family (entry: the interval and its family, e.g. (suite, name);
    None: in no family) with `p_adjusted` by Holm over the family's present intervals and
    `family` set to the family's last part; an interval in no family is exploratory (family and
    p_adjusted None)."""
    out: list[Interval | None] = [None if ci is None else replace(ci, family=None, p_adjusted=None)
                                  for ci, _ in entries]
    members: dict[Hashable, list[int]] = {}
    for i, (ci, family) in enumerate(entries):
        if ci is not None and family is not None:
            members.setdefault(family, []).append(i)
    for family, found in members.items():
        name = str(family[-1] if isinstance(family, tuple) else family)
        tested = adjusted([replace(ci, family=name) for i in found if (ci := out[i]) is not None])
        for i, ci in zip(found, tested, strict=True):
            out[i] = ci
    return out
