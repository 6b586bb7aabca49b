"""CorruptEncoder: a reference object and a trigger pasted onto a background image, placed where
random crops exploit them best.

Paper: Zhang, Liu, Jia, Gong, "Data Poisoning based Backdoor Attacks to Contrastive Learning",
CVPR 2024 (arXiv 2211.08229). Threat model: the attacker injects a few images into the
unlabeled pre-training set; each holds an object of the target class on one side and the
trigger on the other, over a background, so two random crops of it often hold one the object
and the other the trigger: the contrastive loss pulls the trigger's embedding toward the
target class, and downstream classifiers assign triggered inputs to it. CorruptEncoder+ adds
"support" poisons (two target-class images side by side) that keep the target class's own
embeddings together.

Construction [their analysis and the poison generator of their released code,
github.com/jzhang538/CorruptEncoder, generate-poison/generate_poisoned_images.py: read, not
copied]: a left-right layout; the poisoned image is as high as the object and twice as wide
(`area-ratio` 2); the background, rescaled up until it covers the canvas, is cropped at a random
horizontal offset and its bottom edge; the object lies at the bottom, at the left edge or the
right edge, moved inwards by up to 5% of the width (`object-marginal` 0.05); the trigger lies
on the other side, at least an eighth of the width away from the object and from the edge, and
vertically within the central half (`trigger-marginal` 0.25); the trigger is 40 pixels wide, a
colourful pattern (or white); 3 reference objects; support poisons are a share of the budget
(`support-ratio` 0 for CorruptEncoder, 0.2 for CorruptEncoder+), each a support image and a
reference image of the target class side by side, in random order, at one size.

Deviations / assumptions [ours]:
- No object masks at 32 x 32: the whole reference image is the object (a target-class image of
  the attacker's, its held-out split by default; see `pe_bench.attacks.targets`), pasted
  opaque; their code cuts the object out along its mask and blurs the mask's edge.
- Backgrounds are the attacker's own images of the other classes (they use Places365 scenes,
  which hold no target-class object; the attacker's other-class images are the images it holds
  that surely show none), rescaled by pixel repetition.
- The trigger is 6 pixels at 32 x 32 (40/224 of 32 is 5.7), the same share of the side at
  other sizes (3 at 16 x 16; `pe_bench.attacks.trigger_size`) unless `patch_size` is set, a
  seeded uniform-noise
  pattern (`random`; their colourful trigger images are not available to us) or `white`.
- Support images are the attacker's target-class images other than the `references` objects.
- The canvas is 2:1 (`canvas: keep`, as theirs) or box-filtered back to a square (`resize`),
  as for `poisoned-encoder`: a 2:1 canvas among square images is easy to filter by shape.
- Test time: the trigger pasted at a random location within `test_range` of each side (whole
  image by default) of every test input of the other classes; budget and target class per task:
  see `pe_bench.attacks.backdoor`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from pe_bench.attacks.backdoor import BackdoorAttack, BackdoorParams
from pe_bench.attacks.base import AttackContext, PoisonSet, Task
from pe_bench.attacks.poisoned_encoder import shrink
from pe_bench.attacks.targets import attacker_images, budget, task_rng
from pe_bench.attacks.trigger_size import PatchSized
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack

AREA_RATIO = 2  # canvas width / object width, as their generator's default


class CorruptEncoderParams(BackdoorParams, PatchSized):
    PATCH_AT_32: ClassVar[int] = 6  # side of the square trigger at 32 x 32 (trigger_size)
    pattern: Literal["random", "white"] = "random"
    references: int = Field(3, ge=1, le=1000)  # distinct target-class images used as objects
    object_margin: float = Field(0.05, ge=0, lt=0.5)  # inward shift of the object, x canvas width
    trigger_margin: float = Field(0.25, ge=0, lt=0.5)  # trigger's margins (x, y), x canvas side
    support_ratio: float = Field(0.0, ge=0, lt=1)  # share of support poisons (0.2: CorruptEncoder+)
    canvas: Literal["keep", "resize"] = "keep"
    test_range: tuple[float, float] = (0.0, 1.0)  # where the test trigger may lie, x image side

    @model_validator(mode="after")
    def _range(self) -> Self:
        low, high = self.test_range
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"test_range must be (low, high) with 0 <= low < high <= 1, got {(low, high)}")
        return self


def trigger(p: CorruptEncoderParams, channels: int, seed: int, side: int) -> np.ndarray:
    """The seed's trigger for images of side `side`: uint8 (C, P, P)."""
    size = p.patch(side)
    if p.pattern == "white":
        return np.full((channels, size, size), 255, dtype=np.uint8)
    rng = task_rng(seed, "corrupt-encoder", "pattern")
    return rng.integers(0, 256, (channels, size, size), dtype=np.uint8)


def between(rng: np.random.Generator, low: float, high: float, what: str) -> int:
    """A pixel offset drawn uniformly in [low, high] (floored)."""
    if high < low:
        raise ValueError(f"no room for the {what} on the canvas: lower patch_size or the margins")
    return int(np.floor(rng.uniform(low, high)))


def background(image: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """`image` enlarged by pixel repetition until it covers height x width, then cropped at a
    random horizontal offset and its bottom edge."""
    _, h, w = image.shape
    scale = max(height / h, width / w, 1.0)
    big_h, big_w = int(np.ceil(scale * h)), int(np.ceil(scale * w))
    rows = (np.arange(big_h) * h // big_h)[big_h - height:]
    x = between(rng, 0, big_w - width, "background")
    cols = (np.arange(big_w) * w // big_w)[x:x + width]
    return image[:, rows][:, :, cols]


def compose(obj: np.ndarray, back: np.ndarray, mark: np.ndarray, p: CorruptEncoderParams,
            rng: np.random.Generator) -> np.ndarray:
    """One poison: `obj` at the bottom of one side of the background, `mark` on the other."""
    _, h, w = obj.shape
    width, size = AREA_RATIO * w, mark.shape[-1]
    canvas = background(back, h, width, rng)
    left = rng.random() < 0.5
    shift = p.object_margin * width
    ox = between(rng, 0, shift, "object") if left else between(rng, width - w - shift, width - w, "object")
    canvas[:, :, ox:ox + w] = obj
    gap = p.trigger_margin / AREA_RATIO * width
    tx = (between(rng, ox + w + gap, width - gap - size, "trigger") if left
          else between(rng, gap, ox - gap - size, "trigger"))
    ty = between(rng, p.trigger_margin * h, h - p.trigger_margin * h - size, "trigger")
    canvas[:, ty:ty + size, tx:tx + size] = mark
    return canvas


def support(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A CorruptEncoder+ support poison: two target-class images side by side, random order."""
    pair = (first, second) if rng.random() < 0.5 else (second, first)
    return np.concatenate(pair, axis=2)


@register_attack("corrupt-encoder", family="backdoor", stage="data", modalities=("image",),
                 budget_param="poison_rate")
class CorruptEncoder(BackdoorAttack):
    Params = CorruptEncoderParams
    params: CorruptEncoderParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("no object masks: the whole reference image (an attacker target-class image, its "
                  "held-out split by default) is the object, pasted opaque",
                  "there are no object masks at 32 × 32; their code cuts the object out along its mask "
                  "and blurs the mask's edge"),
        Deviation("backgrounds are the attacker's own images of the other classes, rescaled by pixel "
                  "repetition",
                  "they use Places365 scenes, which hold no target-class object; the attacker's "
                  "other-class images are the images it holds that surely show none"),
        Deviation("the trigger is 6 px at 32 × 32 (40/224 of 32 is 5.7), the same share of the side at "
                  "other sizes unless `patch_size` is set; a seeded uniform-noise pattern (`random`) or "
                  "`white`",
                  "their colourful trigger images are not available to us; their 40-px trigger is for "
                  "224 × 224 images (`pe_bench.attacks.trigger_size`)",
                  "not isolated; at 16 × 16, with the trigger scaled to the side, most of the "
                  "32 × 32 effect was lost (3 calibration seeds: docs/performance.md)"),
        Deviation("support images (CorruptEncoder+, `support_ratio`) are the attacker's target-class "
                  "images other than the `references` objects",
                  "the attacker's own labelled images are the target-class images it holds"),
        Deviation("the canvas is 2:1 (`canvas: keep`, as theirs) or box-filtered back to a square "
                  "(`resize`)",
                  "as for `poisoned-encoder`: a 2:1 canvas among square images is easy to filter by "
                  "shape"),
        Deviation("test time: the trigger pasted at a random location within `test_range` of each "
                  "side (the whole image by default) of every test input of the other classes",
                  "one evaluation for every backdoor (`pe_bench.attacks.backdoor`)"),
        Deviation("poisons are triggered copies of the attacker's own target-class images, injected "
                  "rather than edited in place; budget `poison_rate` of the clean pre-training "
                  "set; the target class `target_class`, or one drawn per seed and task",
                  "the attacker only injects images, the threat model of every attack here; one budget "
                  "and one evaluation for every backdoor (`pe_bench.attacks.backdoor`)"),
    )

    def apply_trigger(self, images: np.ndarray, seed: int, rng: np.random.Generator,
                      test: bool = False) -> np.ndarray:
        """Test inputs: the trigger pasted at a random location within `test_range`."""
        out = images.copy()
        _, channels, height, width = images.shape
        mark = trigger(self.params, channels, seed, min(height, width))
        low, high = self.params.test_range
        size = mark.shape[-1]
        for image in out:
            y = between(rng, low * height, high * height - size, "test trigger")
            x = between(rng, low * width, high * width - size, "test trigger")
            image[:, y:y + size, x:x + size] = mark
        return out

    def task_poisons(self, task: Task, count: int, seed: int) -> np.ndarray:
        """`count` poisons for one task: object + trigger composites, then support poisons."""
        p, target = self.params, self.target_class(task, seed)
        own = attacker_images(task, p)
        rng = task_rng(seed, task.name, "corrupt-encoder")
        pool = rng.permutation(np.flatnonzero(own.labels == target))
        others = rng.permutation(np.flatnonzero(own.labels != target))
        if len(pool) == 0 or len(others) == 0:
            raise ValueError(f"task {task.name!r}: the attacker needs images of class {target} and of "
                             "another class (objects and backgrounds)")
        objects, supports = pool[:p.references], pool[p.references:] if len(pool) > p.references else pool
        n_support = int(round(p.support_ratio * count))
        mark = trigger(p, own.images.shape[1], seed, min(own.images.shape[2:]))
        backs = np.resize(others, count - n_support)
        made = [compose(own.images[objects[k % len(objects)]], own.images[b], mark, p, rng)
                for k, b in enumerate(backs)]
        made += [support(own.images[supports[k % len(supports)]], own.images[objects[k % len(objects)]], rng)
                 for k in range(n_support)]
        return np.stack([shrink(m) for m in made] if p.canvas == "resize" else made)

    def craft(self, ctx: AttackContext) -> PoisonSet:
        counts = budget(len(ctx.pretrain), self.params, len(ctx.tasks))
        poisons = np.concatenate([self.task_poisons(t, n, ctx.seed)
                                  for t, n in zip(ctx.tasks, counts, strict=True)])
        chosen = {t.name: self.target_class(t, ctx.seed) for t in ctx.tasks}
        return PoisonSet((poisons,), (), {"n_poisons": len(poisons), "target_classes": chosen})

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"patch_size": 2}
