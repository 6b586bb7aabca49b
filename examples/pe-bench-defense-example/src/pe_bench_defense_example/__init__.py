"""`random-drop`: remove a random fraction of the pre-training set.

A control for pre-processing filters: any filter worth its cost must catch more poisons than
this one, which removes poisons and clean images alike (its expected poison recall equals
`fraction`, its precision the poison rate). It reports a suspicion score per image (a seeded
uniform draw) and removes the top `fraction` by score, so pe-bench gives it the same detection
metrics as any scoring filter: AUROC and AUPRC near chance (0.5 and the poison rate), which is
what a detector has to beat. Registered with pe-bench through the `pe_bench.defenses` entry
point in this package's pyproject.toml; no pe-bench code changes.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams, PretrainData


class RandomDrop(Defense):
    """Score every pre-training image at random (seeded); drop the top `fraction`."""

    class Params(PluginParams):
        fraction: float = Field(0.1, ge=0, lt=1)

    def score(self, data: PretrainData, seed: int) -> np.ndarray:
        """One score per image id (clean images first, then each poison group), higher = more
        suspicious; pe-bench computes AUROC / AUPRC from these and the planted poisons."""
        return np.random.default_rng(seed).random(data.size)

    def flag(self, scores: np.ndarray) -> np.ndarray:
        """The ids removed at this defense's threshold: the operating point (TPR, FPR, ...)."""
        return np.argsort(-scores, kind="stable")[:round(self.params.fraction * len(scores))]
