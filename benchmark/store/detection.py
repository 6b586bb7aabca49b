"""Detection metrics: how well a defense's suspicion scores separate poisons (or backdoored
encoders) from clean ones, threshold-free and at the threshold the defense itself applies.

Threshold-free: AUROC (the probability that a random positive outscores a random negative, ties
counting one half: the Mann-Whitney statistic) and AUPRC as average precision (precision at each
distinct score, weighted by the recall it adds: scikit-learn's `average_precision_score`, so tied
scores form one step); and recall at a fixed clean false-positive rate (1% and 5%: the share of
poisons scoring above the highest threshold that flags at most that share of clean images), so
detectors compare at one cost whatever the poison rate. At the operating point (what the defense
flagged): TPR (poison recall), FPR, precision and F1. A detector that ranks well but flags nothing at its threshold protects
nobody, so both are reported. Torch-free and numpy-only: the leaderboard reads these too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pe_bench.store.metrics import DefenseReport

RANKED_FIELDS = ("poison_auroc", "poison_auprc", "poison_recall_fpr1", "poison_recall_fpr5")


def _checked(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Float scores and a boolean mask of one length; None without positives or negatives."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(positive, dtype=bool).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores for {len(y)} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return None if y.all() or not y.any() else (s, y)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count one half); None without positives or negatives."""
    checked = _checked(scores, positive)
    if checked is None:
        return None
    s, y = checked
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    midranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # 1-based, ties averaged
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((midranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auprc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Average precision: sum over distinct scores (descending) of precision there times the
    recall gained there; None without positives or negatives."""
    checked = _checked(scores, positive)
    if checked is None:
        return None
    s, y = checked
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # last index of each tie group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    gained = np.diff(np.r_[0, tp]) / y.sum()
    return float(np.sum(precision * gained))


def recall_at_fpr(scores: np.ndarray, positive: np.ndarray, fpr: float) -> float | None:
    """Share of positives scoring strictly above the lowest threshold at which at most `fpr` of
    the negatives do (ties at the threshold are not flagged, so the clean FPR never exceeds
    `fpr`); None without positives or negatives."""
    checked = _checked(scores, positive)
    if checked is None:
        return None
    s, y = checked
    negatives = np.sort(s[~y])[::-1]
    allowed = int(np.floor(fpr * len(negatives) + 1e-9))  # negatives that may lie above
    threshold = negatives[allowed] if allowed < len(negatives) else -np.inf
    return float(np.mean(s[y] > threshold))


def operating_point(flagged: np.ndarray, positive: np.ndarray) -> dict[str, float | None]:
    """TPR, FPR, precision and F1 of a boolean flag per item (None where undefined: no
    positives, no negatives, nothing flagged)."""
    f = np.asarray(flagged, dtype=bool).reshape(-1)
    y = np.asarray(positive, dtype=bool).reshape(-1)
    if len(f) != len(y):
        raise ValueError(f"{len(f)} flags for {len(y)} labels")
    tp, fp = int((f & y).sum()), int((f & ~y).sum())
    tpr = tp / int(y.sum()) if y.any() else None
    fpr = fp / int((~y).sum()) if (~y).any() else None
    precision = tp / (tp + fp) if tp + fp else None
    f1 = None
    if tpr is not None and precision is not None:
        f1 = 0.0 if tpr + precision == 0 else 2 * tpr * precision / (tpr + precision)
    return {"tpr": tpr, "fpr": fpr, "precision": precision, "f1": f1}


def image_detection(scores: np.ndarray | None, removed: np.ndarray, n_clean: int, n_total: int
                    ) -> dict[str, float | None]:
    """A filter's detection metrics over image ids 0..n_total-1 (ids >= n_clean are poisons):
    AUROC / AUPRC of its scores (None without scores) and FPR / F1 at what it removed."""
    poison = np.arange(n_total) >= n_clean
    flagged = np.zeros(n_total, dtype=bool)
    flagged[np.asarray(removed, dtype=np.int64)] = True
    point = operating_point(flagged, poison)
    ranked: dict[str, float | None] = dict.fromkeys(RANKED_FIELDS)
    if scores is not None:
        ranked = {"poison_auroc": auroc(scores, poison), "poison_auprc": auprc(scores, poison),
                  "poison_recall_fpr1": recall_at_fpr(scores, poison, 0.01),
                  "poison_recall_fpr5": recall_at_fpr(scores, poison, 0.05)}
    return {**ranked, "poison_fpr": point["fpr"], "poison_f1": point["f1"]}


def encoder_auroc(reports: Sequence[DefenseReport]) -> float | None:
    """AUROC of encoder scores over a line's trials: each trial's attacked encoder a positive,
    its clean twin a negative (None unless both kinds were scored)."""
    pos = [r.encoder_score for r in reports if r.encoder_score is not None]
    neg = [r.encoder_score_clean for r in reports if r.encoder_score_clean is not None]
    labels = np.r_[np.ones(len(pos), dtype=bool), np.zeros(len(neg), dtype=bool)]
    return auroc(np.array(pos + neg, dtype=np.float64), labels)


def encoder_flags(reports: Sequence[DefenseReport]) -> tuple[int, int, int, int]:
    """(attacked flagged, attacked judged, clean flagged, clean judged) over a line's trials, at
    the threshold the defense prescribes (trials without a verdict are not counted)."""
    att = [r.encoder_flagged for r in reports if r.encoder_flagged is not None]
    cln = [r.encoder_flagged_clean for r in reports if r.encoder_flagged_clean is not None]
    return sum(att), len(att), sum(cln), len(cln)
