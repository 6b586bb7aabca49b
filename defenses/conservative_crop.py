"""`conservative-crop`: augmentations that rarely split a poison's two halves across views.

Slot: the spec's in-processing "conservative cropping" defense (../shared/PAPER.md, defense 2).
PoisonedEncoder (Liu, Jia, Gong, USENIX Security 2022) works because a random crop of a
target+reference canvas often lands one view on the target half and the other on the
reference, so the contrastive loss pulls the two together. Two remedies, chosen by `mode`:
- `independent`: a larger minimum crop scale (`min_scale`, default 0.5; SimCLR's is 0.08):
  each view covers more of the canvas, so views rarely land on different halves;
- `localized`: localized cropping (Zhang et al., CorruptEncoder, CVPR 2024): the second view
  is drawn inside the first view's box grown by `margin` (0.2, the authors' default) on each
  side, so both views see the same region (pe_bench.worker.augment.localized_boxes). It keeps the
  suite's crop scale unless `min_scale` is set, so the two remedies can be measured apart.
Threat model: the defender controls only the training recipe. Assumptions [ours]: the rest
of the recipe is unchanged; a `min_scale` below the suite's is raised to it (never a weaker
crop); the cost is measured as utility (PA vs CA), since stronger crops are weaker
augmentation.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_defense
from pe_bench.config.spec import TrainSpec

INDEPENDENT_MIN_SCALE = 0.5  # `independent` mode's remedy when `min_scale` is unset


@register_defense("conservative-crop")
class ConservativeCrop(Defense):
    """Raise the minimum crop scale and/or localize the second view's crop."""

    # PoisonedEncoder's paper evaluates larger crops; CorruptEncoder's localized crop is a backdoor defense
    families = ("targeted", "backdoor")
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("`independent`: minimum crop scale `min_scale` 0.5 (SimCLR's is 0.08); a "
                  "`min_scale` below the suite's is raised to it; the rest of the recipe is unchanged",
                  "never a weaker crop than the suite's: the defender controls only the recipe"),
        Deviation("`localized` (CorruptEncoder's localized crop, margin 0.2) keeps the suite's crop "
                  "scale unless `min_scale` is set",
                  "so the two remedies can be measured apart",
                  "defenses-matrix.md (revision 5, digits, SimCLR, 10 seeds), against `corrupt-encoder` "
                  "at 10%: localized ΔASR vs none −0.191 [−0.303, −0.079], supported; min_scale 0.5 "
                  "−0.192 [−0.386, +0.002], not supported (docs/results/README.md)"),
        Deviation("its cost is measured as utility (PA vs CA)",
                  "stronger crops are weaker augmentation",
                  "defenses-matrix.md (revision 5): ΔPA vs none localized −0.006 [−0.013, +0.002], "
                  "min_scale 0.5 +0.002 [−0.005, +0.009], neither supported"),
    )

    class Params(PluginParams):
        # None: 0.5 in `independent` mode, the suite's scale in `localized` mode
        min_scale: float | None = Field(None, gt=0, le=1)
        mode: Literal["independent", "localized"] = "independent"
        margin: float = Field(0.2, ge=0, le=1)  # localized: grow the first box by this fraction

    params: Params

    def configure_training(self, train: TrainSpec) -> TrainSpec:
        p = self.params
        scale = p.min_scale
        if scale is None:
            scale = INDEPENDENT_MIN_SCALE if p.mode == "independent" else train.crop_min_scale
        return train.replace(
            crop_min_scale=max(scale, train.crop_min_scale),  # never weaker than the suite's
            crop_mode=p.mode, crop_margin=p.margin,
        )
