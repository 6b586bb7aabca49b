"""The flags and intervals simulated in the designs the measured suites use, under the null and
under a stated effect (pe_bench.report.stats: Student-t interval and sign-flip test over seeds).

Designs (10 seeds each, as suites/attacks.yaml's digits tier and suites/defenses-matrix.yaml).
Under the null the attacked encoder and its reference are exchangeable at each seed, but each
carries its own per-seed shift (the attacked encoder's is not shared by its twin) and skewed
per-target effects; under an effect the attacked encoder adds it.
- backdoor: per seed, a skewed ASR level (Beta(0.6, 6): most seeds low, a few high) shared by
  both encoders, each encoder's own shift (normal, sd 0.1), hits binomial on 400 triggered
  inputs. The same design serves `vs none` (a defense that does nothing but perturb).
- targeted: per seed, 5 targets redrawn, each with a clean hit probability (uniform 0.3-0.7);
  each encoder adds its own per-seed shift (sd 0.2) and its own skewed per-target effect (+0.4
  for one target in five, -0.1 for the rest: mean 0, sd 0.2), so the within-seed correlation
  of the differences is 0.5 (ICC of shift vs target effect).
Null: every flag's false-positive rate <= 0.05 and the interval covers 0 in >= 0.93 of suites.
A test over targets instead of seeds flags the targeted null far more often than 5%: the reason
the seed is the unit. Power: the stated effects are flagged in >= 0.8 of suites.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pe_bench.report.stats import Interval, paired_interval, seed_interval, sign_flip_p

SEEDS, TARGETS, TRIGGERED, SUITES = 10, 5, 400, 800


def backdoor(rng: np.random.Generator, effect: float = 0.0) -> Interval | None:
    level = rng.beta(0.6, 6.0, SEEDS)
    twin = np.clip(level + rng.normal(0.0, 0.1, SEEDS), 0.0, 1.0)
    attacked = np.clip(level + rng.normal(0.0, 0.1, SEEDS) + effect, 0.0, 1.0)
    d = rng.binomial(TRIGGERED, attacked) / TRIGGERED - rng.binomial(TRIGGERED, twin) / TRIGGERED
    return seed_interval(list(enumerate(d.tolist())))


def _encoder(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """One encoder's hit probabilities: its own per-seed shift and skewed target effects."""
    shift = rng.normal(0.0, 0.2, (SEEDS, 1))
    skewed = np.where(rng.random(base.shape) < 0.2, 0.4, -0.1)
    return np.clip(base + shift + skewed, 0.0, 1.0)


def targeted_hits(rng: np.random.Generator, effect: float = 0.0) -> np.ndarray:
    """(seeds, targets) hit differences, attacked minus twin."""
    base = rng.uniform(0.3, 0.7, (SEEDS, TARGETS))
    attacked = np.clip(_encoder(rng, base) + effect, 0.0, 1.0)
    twin = _encoder(rng, base)
    return (rng.random(base.shape) < attacked).astype(float) - (rng.random(base.shape) < twin)


def targeted(rng: np.random.Generator, effect: float = 0.0) -> Interval | None:
    d = targeted_hits(rng, effect)
    return paired_interval([(s, (s, t), float(d[s, t])) for s in range(SEEDS) for t in range(TARGETS)])


def _null(design: Callable[..., Interval | None], seed: int) -> tuple[float, float]:
    """Share of null suites flagged, and share whose interval covers 0."""
    rng = np.random.default_rng(seed)
    found = [design(rng) for _ in range(SUITES)]
    flagged = np.mean([ci is not None and ci.significant for ci in found])
    covered = np.mean([ci is not None and ci.low <= 0.0 <= ci.high for ci in found])
    return float(flagged), float(covered)


@pytest.mark.parametrize("design", [backdoor, targeted], ids=["backdoor", "targeted"])
def test_under_the_null_the_flag_holds_5_percent_and_the_interval_covers(design: Callable[..., Interval | None]) -> None:
    flagged, covered = _null(design, seed=11)
    assert flagged <= 0.05
    assert covered >= 0.93


def test_a_test_over_targets_would_not_hold_the_null() -> None:
    """The same targeted null, tested over the 50 targets instead of the 10 seeds: the per-seed
    shift makes targets of a seed move together and the flag fires far too often."""
    rng = np.random.default_rng(5)
    ps = [sign_flip_p(targeted_hits(rng).ravel()) for _ in range(600)]
    assert np.mean(np.array(ps) < 0.05) > 0.07  # 0.097 measured


@pytest.mark.parametrize(("design", "effect"), [(backdoor, 0.2), (targeted, 0.5)], ids=["backdoor", "targeted"])
def test_the_stated_effects_are_flagged(design: Callable[..., Interval | None], effect: float) -> None:
    """Backdoor: +0.2 ASR at every seed (0.96 flagged); targeted: +0.5 hit probability (0.88);
    both before clipping. Smaller effects need more seeds: +0.1 backdoor is flagged in 0.47."""
    rng = np.random.default_rng(13)
    flagged = np.mean([(ci := design(rng, effect)) is not None and ci.significant for _ in range(300)])
    assert flagged >= 0.8
