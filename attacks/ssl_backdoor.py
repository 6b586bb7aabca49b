"""SSL-Backdoor: a trigger patch pasted at a random location onto images of the target class.

Paper: Saha, Tejankar, Koohpayegani, Pirsiavash, "Backdoor Attacks on Self-Supervised
Learning", CVPR 2022 (arXiv 2105.10123). Threat model: the attacker adds patched images of one
target category to the unlabeled pre-training set; an encoder trained on them clusters any
patched input with that category, so downstream classifiers assign triggered inputs of other
categories to it.

Construction [paper, and its released poison generator's configs]: the trigger (one of their
"HTBA" random-pattern images) is pasted, fully opaque, at a random location of each poison;
on the 224 x 224 ImageNet-100 images the patch is 50 pixels wide and its position is drawn so
the patch lies within the central [0.25, 0.75] of each side for poisons, within [0.10, 0.90] for
triggered test images; poisons are 50% of the target category's images (0.5% of the set).

Deviations / assumptions [ours]:
- 32 x 32 scale: the patch is 8 pixels at 32 x 32 (50/224 of 32 is 7.1, rounded up to a
  whole number of 2-px checkerboard cells), the same share of the side at other sizes (4 at
  16 x 16; `pe_bench.attacks.trigger_size`), or `patch_size` pixels where a suite sets it; the
  location ranges are kept as fractions of the image side (`poison_range`, `test_range`),
  widened to the whole image where the patch would not fit.
- The trigger is a seeded pattern, the same for every poison and test input of a seed:
  `random` (uniform RGB noise, in the spirit of their random-pattern HTBA triggers, which
  are not available to us) or `checkerboard` (black and white squares of `cell` pixels).
- Poisons are triggered copies of the attacker's own target-class images (injected, not edited
  in place), budget = poison_rate of the clean pre-training set (default 1%), and the target
  class per task: see `pe_bench.attacks.backdoor`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from pe_bench.attacks.backdoor import BackdoorAttack, BackdoorParams
from pe_bench.attacks.targets import task_rng
from pe_bench.attacks.trigger_size import PatchSized
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack


class SSLBackdoorParams(BackdoorParams, PatchSized):
    PATCH_AT_32: ClassVar[int] = 8  # side of the square trigger at 32 x 32 (trigger_size)
    pattern: Literal["random", "checkerboard"] = "random"
    cell: int = Field(2, ge=1, le=512)  # checkerboard square side, in pixels
    # where the patch may lie, as fractions of the image side (poisons; triggered test inputs)
    poison_range: tuple[float, float] = (0.25, 0.75)
    test_range: tuple[float, float] = (0.10, 0.90)

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for name in ("poison_range", "test_range"):
            low, high = getattr(self, name)
            if not 0.0 <= low < high <= 1.0:
                raise ValueError(f"{name} must be (low, high) with 0 <= low < high <= 1, got {(low, high)}")
        return self


def trigger_pattern(params: SSLBackdoorParams, channels: int, seed: int, size: int) -> np.ndarray:
    """The seed's trigger: uint8 (C, size, size)."""
    if params.pattern == "checkerboard":
        yy, xx = np.mgrid[0:size, 0:size]
        board = (((yy // params.cell) + (xx // params.cell)) % 2 * 255).astype(np.uint8)
        return np.repeat(board[None], channels, axis=0)
    rng = task_rng(seed, "ssl-backdoor", "pattern")
    return rng.integers(0, 256, (channels, size, size), dtype=np.uint8)


def corners(rng: np.random.Generator, n: int, side: int, patch: int, span: tuple[float, float],
            clamp: bool = False) -> np.ndarray:
    """n top-left coordinates (one axis) that keep the patch within `span` of the side. Where
    it does not fit there: the whole side (`clamp` False, ours), or every corner at the span's
    start (`clamp`, as Noisy Alignment's release does: its range's end is raised to its start)."""
    low, high = int(side * span[0]), int(side * span[1]) - patch
    if high < low:
        low, high = (low, min(low, side - patch)) if clamp else (0, side - patch)
        low = min(low, high)
    return rng.integers(low, high + 1, n)


def paste(images: np.ndarray, pattern: np.ndarray, ys: np.ndarray, xs: np.ndarray,
          alpha: float = 0.0) -> np.ndarray:
    """A copy of `images` with `pattern` at each image's (y, x): opaque (`alpha` 0), else
    composited as alpha x image + (1 - alpha) x pattern inside the patch."""
    out = images.copy()
    size, mark = pattern.shape[-1], pattern.astype(np.float32)
    for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
        window = out[i, :, y:y + size, x:x + size]
        window[...] = pattern if alpha == 0 else np.rint(alpha * window.astype(np.float32)
                                                          + (1 - alpha) * mark).astype(np.uint8)
    return out


def random_patch(images: np.ndarray, p: SSLBackdoorParams, seed: int, rng: np.random.Generator,
                 test: bool, alpha: float = 0.0, clamp: bool = False) -> np.ndarray:
    """`images` with the seed's patch at a random place each, inside `p.test_range` at test
    time and `p.poison_range` on poisons (fractions of the side); `alpha`: see `paste`;
    `clamp`: see `corners`."""
    _, channels, height, width = images.shape
    size = p.patch(min(height, width))
    if size > min(height, width):
        raise ValueError(f"patch_size {size} exceeds the {height}x{width} images")
    span = p.test_range if test else p.poison_range
    ys = corners(rng, len(images), height, size, span, clamp)
    xs = corners(rng, len(images), width, size, span, clamp)
    return paste(images, trigger_pattern(p, channels, seed, size), ys, xs, alpha)


@register_attack("ssl-backdoor", family="backdoor", stage="data", modalities=("image",),
                 budget_param="poison_rate")
class SSLBackdoor(BackdoorAttack):
    Params = SSLBackdoorParams
    params: SSLBackdoorParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the patch is 8 px at 32 × 32 (50/224 of 32 is 7.1, rounded up to whole 2-px "
                  "checkerboard cells), the same share of the side at other sizes unless `patch_size` "
                  "is set; the location ranges stay fractions of the side, widened to the whole image "
                  "where the patch would not fit",
                  "the paper's 50-px patch on 224 × 224 ImageNet-100 images, scaled to the benchmark's "
                  "images (`pe_bench.attacks.trigger_size`)",
                  "not isolated; at 16 × 16 (4 px) the 5% cell lost most of its 32 × 32 effect, "
                  "the 10% cell (a null at 32 × 32) did not (3 calibration seeds: "
                  "docs/performance.md)"),
        Deviation("the trigger is a seeded pattern, the same for every poison and test input of a seed: "
                  "`random` (uniform RGB noise) or `checkerboard` (squares of `cell` px)",
                  "their random-pattern HTBA trigger images are not available to us"),
        Deviation("poisons are triggered copies of the attacker's own target-class images, injected "
                  "rather than edited in place; budget `poison_rate` of the clean pre-training set "
                  "(default 1%; the paper's 50% of the target category is 0.5% of the set); the "
                  "target class `target_class`, or one drawn per seed and task",
                  "the attacker only injects images, the threat model of every attack here; one budget "
                  "and one evaluation for every backdoor (`pe_bench.attacks.backdoor`)"),
    )

    def apply_trigger(self, images: np.ndarray, seed: int, rng: np.random.Generator,
                      test: bool = False) -> np.ndarray:
        return random_patch(images, self.params, seed, rng, test)

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"patch_size": 3}
