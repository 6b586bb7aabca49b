"""PoisonedEncoder: targeted poisoning of contrastive pre-training by image concatenation.

Paper: Liu, Jia, Gong, "PoisonedEncoder: Poisoning the Unlabeled Pre-training Data in
Contrastive Learning", USENIX Security 2022 (arXiv 2205.06401). Threat model: the attacker only
injects images into the unlabeled pre-training set; for each target pair (x_i, y_i) every
downstream classifier built on the encoder should predict y_i for the clean input x_i.

Construction [2nd-hand description of the paper]: each poison places x_i and a reference input
x_r of class y_i side by side; two random crops of it often land one on each half, so the
contrastive loss pulls f(x_i) toward f(x_r).

Deviations / assumptions [ours]: the budget N = round(poison_rate * |D|) is split evenly over
all targets of all tasks; references are drawn (seeded) from the attacker's own labelled data
(`attacker_data`, read by `pe_bench.attacks.targets.attacker_images`): by default (`held-out`)
the task's attacker split, a stratified share (`attacker_split`, 0.2) of its train split that
no downstream probe trains on and that is kept out of the clean pre-training set; with
`attacker_data: probe-train` (rows marked `+probe-data`), or for a task without an attacker
split, the probe's training split; each poison's layout is drawn uniformly from `layouts`
(`left`: x_i left of x_r, `right`: x_i right, `top`/`bottom`: x_i above/below); both halves
keep the dataset resolution and the 2:1 canvas is left to the victim's crop augmentation
(`canvas: resize` box-filters it back to H x W).

The canvas is a giveaway: with `canvas: keep` the poisons are the only non-square images of a
pre-training set of square images, so a one-line aspect-ratio filter removes every one of them
(docs/plugins.md builds that filter as its defense example). `canvas: resize` keeps the poisons
square at the price of half the resolution for each half; suites/paper.yaml runs both, so the
leaderboard shows what an inconspicuous canvas costs the attack.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet
from pe_bench.attacks.targets import TargetedParams, craft_with_references
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack

Layout = Literal["left", "right", "top", "bottom"]


class PoisonedEncoderParams(TargetedParams):
    layouts: tuple[Layout, ...] = Field(("left", "right", "top", "bottom"), min_length=1)
    canvas: Literal["keep", "resize"] = "keep"


def concatenate(target: np.ndarray, reference: np.ndarray, layout: str) -> np.ndarray:
    """One (C, H, 2W) or (C, 2H, W) canvas holding the target and the reference."""
    first, second = (target, reference) if layout in ("left", "top") else (reference, target)
    axis = 2 if layout in ("left", "right") else 1
    return np.concatenate([first, second], axis=axis)


def shrink(canvas: np.ndarray) -> np.ndarray:
    """Box-filter a 2:1 canvas back to a square (mean of adjacent pixel pairs on the long side)."""
    c, h, w = canvas.shape
    x = canvas.astype(np.float32)
    x = x.reshape(c, h, w // 2, 2).mean(3) if w > h else x.reshape(c, h // 2, 2, w).mean(2)
    return np.rint(x).astype(np.uint8)


@register_attack("poisoned-encoder", family="targeted", stage="data", modalities=("image",),
                 budget_param="poison_rate", label_params=("selection",),
                 label_marks={"attacker_data": {"probe-train": "+probe-data"}})
class PoisonedEncoder(Attack):
    Params = PoisonedEncoderParams
    params: PoisonedEncoderParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the budget N = round(poison_rate × |D|) is split evenly over all targets of all tasks",
                  "one budget rule for every attack (`pe_bench.attacks.targets.budget`), so attacks "
                  "compare at one cost"),
        Deviation("references are drawn (seeded) from the attacker's own labelled data "
                  "(`attacker_data`): by default its held-out split of the task's train split, which "
                  "no probe trains on and the clean pre-training set excludes; `probe-train` uses the "
                  "probe's training split (rows marked `+probe-data`)",
                  "the threat model: the attacker holds labelled data of its own "
                  "(`pe_bench.attacks.targets`)"),
        Deviation("each poison's layout is drawn uniformly from `layouts` (x_i left, right, above or "
                  "below x_r)",
                  "we know the construction second-hand only: the two images side by side"),
        Deviation("both halves keep the dataset resolution and the 2:1 canvas is left to the victim's "
                  "crop augmentation (`canvas: keep`); `canvas: resize` box-filters it back to H × W",
                  "with `keep` the poisons are the only non-square images, which a one-line "
                  "aspect-ratio filter removes (docs/plugins.md); `resize` keeps them square at half "
                  "the resolution per half",
                  "paper.md (revision 5, digits, 6 seeds): no PoisonedEncoder cell shows an effect with "
                  "either canvas (SimCLR main cell 6/30 target pairs with `keep`, 4/30 with `resize`, "
                  "twins 5/30), so what the square canvas costs is not measured (docs/results/README.md)"),
        Deviation("`selection: outlier` and `ambiguous` rank candidates and draw easier targets per "
                  "seed among the best `shortlist` × `targets_per_task`; `random` is the paper's "
                  "arbitrary targets",
                  "attacker-side rules of ours for an easier setting (`pe_bench.attacks.targets`)"),
    )

    def craft(self, ctx: AttackContext) -> PoisonSet:
        p = self.params

        def make(target: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            canvas = concatenate(target, reference, str(rng.choice(p.layouts)))
            return shrink(canvas) if p.canvas == "resize" else canvas

        return craft_with_references(ctx, p, make)
