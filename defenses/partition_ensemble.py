"""`partition-ensemble`: k encoders on disjoint hash partitions, downstream majority vote.

Slot: the spec's in-processing partition defense (../shared/PAPER.md, defense 4), after Deep
Partition Aggregation (Levine & Feizi, ICLR 2021): each training image goes to the partition
given by a hash of its pixels, so one poison reaches one encoder only; every encoder gets its
own downstream classifier (trained on the same clean labelled data) and their predictions
vote. Threat model: the defender trains k times on 1/k of the data each. Assumptions [ours]:
the hash is SHA-256 of the image bytes (the defender cannot tell poisons apart, so poisons
spread over all partitions in proportion); ties in the vote go to the class with the higher
mean probability; each encoder keeps the suite's epochs, so total compute matches one encoder.
Note that DPA's certificate bounds the number of poisons, not their rate: at a fixed poison
rate each partition still holds about the same fraction of poisons.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams, PretrainData
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_defense


def partition_of(image: np.ndarray, k: int) -> int:
    """Deterministic partition of one image: its pixel hash modulo k."""
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") % k


@register_defense("partition-ensemble")
class PartitionEnsemble(Defense):
    """Train `k` encoders on the hash partitions of the pre-training set; vote downstream."""

    # PoisonedEncoder's paper evaluates the ensemble against it (DPA: poisons of chosen test inputs)
    families = ("targeted",)
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the partition hash is SHA-256 of the image bytes",
                  "the defender cannot tell poisons apart, so poisons spread over all partitions in "
                  "proportion"),
        Deviation("ties in the vote go to the class with the higher mean probability",
                  "ours: a deterministic rule"),
        Deviation("each encoder keeps the suite's epochs on 1/k of the data",
                  "so the total compute matches one encoder"),
        Deviation("applied at a fixed poison rate, where each partition still holds about the same "
                  "fraction of poisons",
                  "DPA's certificate bounds the number of poisons, not their rate"),
    )

    class Params(PluginParams):
        k: int = Field(3, ge=2, le=1000)

    params: Params

    def partition(self, data: PretrainData) -> tuple[PretrainData, ...]:
        k = self.params.k
        labels = np.array([partition_of(img, k) for arr in data.images() for img in arr], dtype=np.int64)
        ids = np.arange(data.size)
        return tuple(data.without(ids[labels != i]) for i in range(k))
