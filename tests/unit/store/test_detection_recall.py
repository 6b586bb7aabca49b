"""Recall at a fixed clean false-positive rate, against a slow reference: the threshold that
flags at most that share of clean images, and the share of poisons above it."""

from __future__ import annotations

import numpy as np
import pytest

from pe_bench.store.detection import image_detection, recall_at_fpr


def _reference(scores: np.ndarray, positive: np.ndarray, fpr: float) -> float:
    """Try every candidate threshold (each score, and -inf) and keep the best recall whose clean
    FPR (share of negatives strictly above) stays within `fpr`."""
    best = 0.0
    for t in [-np.inf, *sorted(set(scores.tolist()))]:
        if np.mean(scores[~positive] > t) <= fpr + 1e-12:
            best = max(best, float(np.mean(scores[positive] > t)))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_recall_at_fpr_matches_the_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    positive = rng.random(n) < 0.1
    positive[:2] = [True, False]
    scores = np.round(rng.normal(positive * rng.uniform(0, 3), 1.0), int(rng.integers(0, 3)))  # ties
    for fpr in (0.0, 0.01, 0.05, 0.5):
        assert recall_at_fpr(scores, positive, fpr) == pytest.approx(_reference(scores, positive, fpr))


def test_a_perfect_ranker_recalls_everything_at_zero_fpr_and_a_filter_reports_both_rates() -> None:
    positive = np.r_[np.zeros(100, bool), np.ones(10, bool)]
    scores = np.r_[np.zeros(100), np.ones(10)]
    assert recall_at_fpr(scores, positive, 0.0) == 1.0
    assert recall_at_fpr(-scores, positive, 0.05) == 0.0
    assert recall_at_fpr(scores, np.zeros(110, bool), 0.05) is None
    out = image_detection(scores, np.arange(100, 110), 100, 110)
    assert out["poison_recall_fpr1"] == out["poison_recall_fpr5"] == 1.0
    assert image_detection(None, np.arange(100, 110), 100, 110)["poison_recall_fpr1"] is None
