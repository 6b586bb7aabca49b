"""`conservative-crop`: augmentations that rarely split a poison's two halves across views.

Slot: the spec's in-processing "conservative cropping" defense (../shared/PAPER.md, defense 2).
PoisonedEncoder (Liu, Jia, Gong, USENIX Security 2022) works because a random crop of a
target+reference canvas often lands one view on the target half and the other on the
reference, so the contrastive loss pulls the two together. Two remedies, either or both:
- a larger minimum crop scale: each view covers more of the canvas, so views rarely land on
  different halves (SimCLR's default is 0.08);
- localized cropping (Zhang et al., CorruptEncoder, CVPR 2024): the second view is drawn
  inside the first view's box grown by a margin, so both views see the same region.
Threat model: the defender controls only the training recipe. Assumptions [ours]: the rest
of the recipe is unchanged; the cost is measured as utility (PA vs CA), since stronger crops
are weaker augmentation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams
from pe_bench.registry import register_defense
from pe_bench.spec import TrainSpec


@register_defense("conservative-crop")
class ConservativeCrop(Defense):
    """Raise the minimum crop scale and/or localize the second view's crop."""

    class Params(PluginParams):
        min_scale: float = Field(0.5, gt=0, le=1)
        mode: Literal["independent", "localized"] = "independent"
        margin: float = Field(0.1, ge=0, le=1)  # localized: grow the first box by this fraction

    params: Params

    def configure_training(self, train: TrainSpec) -> TrainSpec:
        p = self.params
        return train.replace(
            crop_min_scale=max(p.min_scale, train.crop_min_scale),  # never weaker than the suite's
            crop_mode=p.mode, crop_margin=p.margin,
        )
