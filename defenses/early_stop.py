"""`early-stop`: pre-train for fewer epochs, so the encoder sees the poisons fewer times.

Slot: the spec's in-processing "early stopping / fewer epochs" defense (../shared/PAPER.md,
defense 3; PoisonedEncoder, Liu, Jia, Gong, USENIX Security 2022, reports that fewer epochs
lower ASR at a cost in utility). Threat model: the defender controls the training length.
Assumptions [ours]: the learning-rate schedule is the suite's (cosine to zero over the
shortened run), not the full schedule cut off part way; the saved compute shows as a
negative extra wall time.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_defense
from pe_bench.config.spec import TrainSpec


@register_defense("early-stop")
class EarlyStop(Defense):
    """Train for `fraction` of the suite's epochs (at least one)."""

    families = ("targeted",)  # PoisonedEncoder's paper evaluates fewer epochs against its targeted poisons
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the learning-rate schedule is the suite's, cosine to zero over the shortened run, "
                  "not the full schedule cut off part way",
                  "ours: the defender controls the training length and plans the run for it"),
        Deviation("the saved compute shows as a negative extra cost",
                  "rows record each defense's cost beside its effect",
                  "defenses-matrix.md (revision 5, digits, 10 seeds; 50% of the epochs): 240 steps "
                  "saved; against `corrupt-encoder` at 10% ΔASR vs none −0.109 [−0.216, −0.002], not "
                  "supported, ΔPA vs none −0.010 [−0.014, −0.005], supported (docs/results/README.md)"),
    )

    class Params(PluginParams):
        fraction: float = Field(0.5, gt=0, le=1)

    params: Params

    def configure_training(self, train: TrainSpec) -> TrainSpec:
        return train.replace(epochs=max(1, round(train.epochs * self.params.fraction)))
