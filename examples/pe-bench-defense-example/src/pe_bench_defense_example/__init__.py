"""`random-drop`: remove a random fraction of the pre-training set.

A control for pre-processing filters: any filter worth its cost must catch more poisons than
this one, which removes poisons and clean images alike (its expected poison recall equals
`fraction`, its precision the poison rate). Registered with pe-bench through the
`pe_bench.defenses` entry point in this package's pyproject.toml; no pe-bench code changes.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams, PretrainData


class RandomDrop(Defense):
    """Drop `fraction` of all pre-training images, chosen uniformly at random (seeded)."""

    class Params(PluginParams):
        fraction: float = Field(0.1, ge=0, lt=1)

    def sanitize(self, data: PretrainData, seed: int) -> tuple[PretrainData, np.ndarray]:
        rng = np.random.default_rng(seed)
        removed = np.sort(rng.choice(data.size, round(self.params.fraction * data.size), replace=False))
        return data.without(removed), removed
