"""`knn-density`: label-free poison detection by the local density of embeddings, then retraining.

Source: Huang, Erfani, Li, Ma, Bailey, "Detecting Backdoor Samples in Contrastive Language Image
Pretraining", ICLR 2025 (arXiv 2502.01385). Their finding: in the representation space of a CLIP
model trained on the poisoned data, backdoor samples have far *sparser* local neighbourhoods
than clean ones, so classical local-outlier scores separate them: the distance to the k-th
nearest neighbour (k-dist, k = 16 in their analysis) and density-ratio detectors such as the
simplified LOF (SLOF: an item's k-dist over the mean k-dist of its k neighbours). The defender
then removes a fixed share of the data by score (the paper purifies CC3M by removing 10% by
score; 1% sufficed against patch triggers) and trains again.

Threat model: the defender holds the untrusted pre-training set and the encoder trained on it
(here: the undefended poisoned encoder of the trial, through the `score_trained` hook), never
which images were injected; no labels, no trusted data, no knowledge of the trigger.

Deviations and assumptions [ours]:
- Designed for CLIP; applied unchanged to image-only encoders (SimCLR, MoCo) through their
  backbone features, and to trigger-free targeted poisoning, which it was not designed for.
- Embeddings are L2-normalised and neighbours found exactly (Euclidean distance between unit
  vectors, i.e. cosine), chunked on the CPU; the paper batches the same on GPUs.
- `direction: dense` flips the score (densest first) for attacks whose poisons repeat one
  content many times (PoisonedEncoder, `duplicate`): their copies sit in a tight cluster whose
  k-dist is small once they outnumber k, the case the paper's reviewers raised. Default: the
  paper's `sparse`.
- Ties in the removal ranking go to the lower image id (stable sort), so the rule is deterministic.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import Defense, Embed, PluginParams, PretrainData
from pe_bench.plugins.registry import register_defense

CHUNK = 1024  # query rows per distance block (bounds the working set at CHUNK x N floats)


class KnnDensityParams(PluginParams):
    k: int = Field(16, ge=1)  # neighbours (the paper's analysis uses 16)
    detector: Literal["k-dist", "slof"] = "k-dist"  # k-NN distance, or simplified LOF
    direction: Literal["sparse", "dense"] = "sparse"  # which end is suspicious (paper: sparse)
    remove_fraction: float = Field(0.1, ge=0, lt=1)  # share of the set removed by score


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def nearest(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (N, k): every row's k nearest other rows, nearest first
    (ties to the lower index)."""
    x = np.asarray(features, dtype=np.float64)
    sq = (x * x).sum(1)
    dist, idx = np.zeros((len(x), k)), np.zeros((len(x), k), dtype=np.int64)
    for start in range(0, len(x), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(x)))
        d2 = np.maximum(sq[rows, None] + sq[None, :] - 2.0 * x[rows] @ x.T, 0.0)
        d2[np.arange(len(rows)), rows] = np.inf  # not its own neighbour
        order = np.argsort(d2, axis=1, kind="stable")[:, :k]
        idx[rows] = order
        dist[rows] = np.sqrt(np.take_along_axis(d2, order, axis=1))
    return dist, idx


def density_scores(features: np.ndarray, k: int, detector: str) -> np.ndarray:
    """Sparsity per row (higher = sparser neighbourhood): k-dist, or SLOF = k-dist over the
    mean k-dist of the row's k neighbours. k is capped at N - 1."""
    if len(features) < 2:
        return np.zeros(len(features))
    dist, idx = nearest(unit_rows(features), min(k, len(features) - 1))
    kdist = dist[:, -1]
    if detector == "k-dist":
        return kdist
    return kdist / np.maximum(kdist[idx].mean(1), 1e-12)


@register_defense("knn-density")
class KnnDensity(Defense):
    """Scores every pre-training image by the local density of its embedding under the encoder
    trained on the untrusted set, removes the most suspicious `remove_fraction`, retrains."""

    families = ("backdoor",)  # Huang et al. detect backdoor samples (triggered pairs) in CLIP data

    Params = KnnDensityParams
    params: KnnDensityParams

    def score_trained(self, data: PretrainData, embed: Embed, seed: int) -> np.ndarray:
        """Deterministic: `seed` is unused (exact neighbours, no sampling)."""
        features = np.concatenate([embed(group) for group in data.images()])
        sparsity = density_scores(features, self.params.k, self.params.detector)
        return sparsity if self.params.direction == "sparse" else -sparsity

    def flag(self, scores: np.ndarray) -> np.ndarray:
        n = round(self.params.remove_fraction * len(scores))
        return np.sort(np.argsort(-scores, kind="stable")[:n]).astype(np.int64)
