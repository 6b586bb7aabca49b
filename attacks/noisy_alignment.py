"""Noisy Alignment: a triggered random image beside a reference image of the target class.

Paper: Chen, Gui, Dong, Jia, Fang, Liu, "Backdooring Self-Supervised Contrastive Learning by
Noisy Alignment", ICCV 2025 (arXiv 2508.14015). Threat model: the attacker injects images into
the unlabeled pre-training set. Each poison pairs a trigger, carried by an arbitrary image
(the "noise": content unrelated to the target class), with a reference image of the target
class; random crops that land one view on each half align the trigger's embedding with the
target class, while the random image's own content varies from poison to poison and is
suppressed. Like PoisonedEncoder it is concatenation-based, with a trigger instead of a target
input.

Construction [their released poison synthesis, github.com/jsrdcht/Noisy-Alignment `utils.py`
(`add_watermark`, `concatenate_images`, `synthesize_poison`): read, not copied]: the random
image gets the trigger patch (50 px wide on ImageNet-size images) at a random place within
[0.45, 0.55] of each side, composited so the image keeps alpha 0.2 under the patch; where the
patch does not fit in that range, the range's end is raised to its start, so the patch sits
at the start of the range (x, y = int(0.45 x side): 100 at 224 px, 14 at 32 px; release at
commit 1329f5a, `add_watermark`: `loc_max = max(loc_max, loc_min)`); it is then
concatenated with the reference, the layout drawn among top, right, bottom and left; images of
one size are not rescaled.

Deviations / assumptions [ours]:
- The patch is 7 pixels at 32 x 32 (50/224 of 32), the same share of the side at other sizes
  (4 at 16 x 16; `pe_bench.attacks.trigger_size`) unless `patch_size` is set; the trigger is the seeded random pattern of
  `ssl-backdoor` (their watermark images are not available to us).
- Random images are the attacker's own images of any class, references its images of the
  target class (its held-out split by default; see `pe_bench.attacks.targets`).
- The paper derives optimal layout parameters; the released code we read concatenates equal
  halves, which is what this does (a 2:1 canvas, or `canvas: resize` back to a square).
- Test time: the trigger blended the same way and placed by the same rule within `test_range`
  (the release's [0.45, 0.55] by default, so at 32 px every test trigger sits at (14, 14)) on
  every test input of the other classes; budget and
  target class per task: see `pe_bench.attacks.backdoor`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from pe_bench.attacks.backdoor import BackdoorAttack
from pe_bench.attacks.base import AttackContext, PoisonSet, Task
from pe_bench.attacks.poisoned_encoder import Layout, concatenate, shrink
from pe_bench.attacks.ssl_backdoor import SSLBackdoorParams, random_patch
from pe_bench.attacks.targets import attacker_images, budget, task_rng
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack


class NoisyAlignmentParams(SSLBackdoorParams):
    PATCH_AT_32: ClassVar[int] = 7
    poison_range: tuple[float, float] = (0.45, 0.55)
    test_range: tuple[float, float] = (0.45, 0.55)
    alpha: float = Field(0.2, ge=0, le=1)  # the image's weight under the patch
    layouts: tuple[Layout, ...] = Field(("left", "right", "top", "bottom"), min_length=1)
    canvas: Literal["keep", "resize"] = "keep"


@register_attack("noisy-alignment", family="backdoor", stage="data", modalities=("image",),
                 budget_param="poison_rate")
class NoisyAlignment(BackdoorAttack):
    Params = NoisyAlignmentParams
    params: NoisyAlignmentParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the patch is 7 px at 32 × 32 (50/224 of 32), the same share of the side at other "
                  "sizes unless `patch_size` is set; the trigger is the seeded random pattern of "
                  "`ssl-backdoor`",
                  "their watermark images are not available to us; their 50-px patch is for "
                  "ImageNet-size images (`pe_bench.attacks.trigger_size`)",
                  "not isolated; at 16 × 16, with the trigger scaled to the side, most of the "
                  "32 × 32 effect was lost (3 calibration seeds: docs/performance.md)"),
        Deviation("random images are the attacker's own images of any class, references its images of "
                  "the target class (its held-out split by default)",
                  "the attacker only injects images and holds only its own labelled data "
                  "(`pe_bench.attacks.targets`)"),
        Deviation("the two halves are equal (a 2:1 canvas, or `canvas: resize` back to a square)",
                  "the paper derives optimal layout parameters, but the released code we read "
                  "concatenates equal halves and holds no optimised parameters"),
        Deviation("test time: the trigger blended and placed by the poisons' rule within `test_range` "
                  "(the release's [0.45, 0.55] by default: at 32 px every test trigger sits at "
                  "(14, 14)) on every test input of the other classes",
                  "the release's placement rule, applied to test inputs; one evaluation for every "
                  "backdoor (`pe_bench.attacks.backdoor`)"),
        Deviation("poisons are triggered copies of the attacker's own target-class images, injected "
                  "rather than edited in place; budget `poison_rate` of the clean pre-training "
                  "set; the target class `target_class`, or one drawn per seed and task",
                  "the attacker only injects images, the threat model of every attack here; one budget "
                  "and one evaluation for every backdoor (`pe_bench.attacks.backdoor`)"),
    )

    def apply_trigger(self, images: np.ndarray, seed: int, rng: np.random.Generator,
                      test: bool = False) -> np.ndarray:
        return random_patch(images, self.params, seed, rng, test, self.params.alpha, clamp=True)

    def task_poisons(self, task: Task, count: int, seed: int) -> list[np.ndarray]:
        """`count` canvases for one task: a triggered random image beside a reference."""
        p, target = self.params, self.target_class(task, seed)
        own = attacker_images(task, p)
        references = np.flatnonzero(own.labels == target)
        if len(references) == 0:
            raise ValueError(f"task {task.name!r}: the attacker has no image of class {target}")
        rng = task_rng(seed, task.name, "noisy-alignment")
        randoms = self.apply_trigger(own.images[rng.integers(0, len(own), count)], seed, rng)
        refs = own.images[np.resize(rng.permutation(references), count)]
        made = [concatenate(r, ref, str(rng.choice(p.layouts))) for r, ref in zip(randoms, refs, strict=True)]
        return [shrink(m) for m in made] if p.canvas == "resize" else made

    def craft(self, ctx: AttackContext) -> PoisonSet:
        counts = budget(len(ctx.pretrain), self.params, len(ctx.tasks))
        made = [m for t, n in zip(ctx.tasks, counts, strict=True)
                for m in self.task_poisons(t, n, ctx.seed)]
        shapes = sorted({m.shape for m in made})
        groups = tuple(np.stack([m for m in made if m.shape == s]) for s in shapes)
        chosen = {t.name: self.target_class(t, ctx.seed) for t in ctx.tasks}
        return PoisonSet(groups, (), {"n_poisons": len(made), "target_classes": chosen})

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"patch_size": 2}
