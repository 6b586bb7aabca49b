"""Carlini–Terzis: poisoning and backdooring image–caption contrastive pre-training (CLIP).

Paper: Carlini, Terzis, "Poisoning and Backdooring Contrastive Learning", ICLR 2022 (arXiv
2106.09667). Threat model: the attacker adds image–caption pairs to the uncurated pre-training
set of a CLIP-style encoder; the contrastive loss pulls each poison image's embedding toward
its caption's, and so toward the text of the class the captions name.

Construction [2nd-hand description of the paper], `variant`:
- `targeted` (family targeted): the target image x' (one chosen test input) paired with
  captions naming the target class y' (their caption set: training captions that contain the
  label's name); a handful of poisons (3 in 3 million) suffices in their experiments.
- `backdoor` (family backdoor): arbitrary images with a small patch of random noise overlaid
  at a random location ([2nd-hand] 16 x 16 pixels on 224 x 224 images), paired with captions
  naming the target class; at test time the same patch on inputs of the other classes.

Deviations / assumptions [ours]:
- Captions are this benchmark's offline ones: the target class's name in one of
  `pe_bench.plugins.captions.TEMPLATES`, drawn per poison with a seeded generator, tokenized
  like the clean captions (a clean caption names its image's class; a poison's names y').
- Targets (`targeted`): the target-pair machinery of every targeted attack
  (`pe_bench.attacks.targets`), so at one seed `carlini-terzis`, `poisoned-encoder` and
  `duplicate` attack the same pairs; the budget N = round(poison_rate x |D|), split evenly over
  the pairs (at least one poison each); `references` does not apply (no reference images).
- Backdoor images: the attacker's own labelled images of every class (its held-out split by
  default; the paper takes random training images), cycled when the budget exceeds them; the
  patch is 3 pixels at 32 x 32 (16/224 of 32 is 2.3, rounded up), the same share of the side
  at other sizes (2 at 16 x 16; `pe_bench.attacks.trigger_size`) unless `patch_size` is set,
  the seeded noise
  pattern of `ssl-backdoor` (same seed, same pattern), anywhere in the image by default
  (`poison_range`, `test_range`); target class and budget per task: see
  `pe_bench.attacks.backdoor`.
- Image-only encoders: the grid runs this attack on them too (its images are injected, their
  captions dropped), which makes the targeted variant `duplicate` and the backdoor variant a
  patch on random images with nothing tying it to the target class: a control, not the attack.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import model_validator

from pe_bench.attacks.backdoor import BackdoorAttack
from pe_bench.attacks.base import AttackContext, PluginParams, PoisonSet, Task, TriggeredTest
from pe_bench.attacks.ssl_backdoor import SSLBackdoorParams, random_patch
from pe_bench.attacks.targets import (
    TargetedParams,
    all_targets,
    attacker_images,
    budget,
    task_rng,
)
from pe_bench.plugins.captions import TEMPLATES, tokenize
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack

Variant = Literal["targeted", "backdoor"]
ONLY = {"targeted": ("selection", "targets_per_task", "candidate_pool", "shortlist"),
        "backdoor": ("patch_size", "pattern", "cell", "poison_range", "test_range")}


class CarliniTerzisParams(SSLBackdoorParams, TargetedParams):
    variant: Variant = "targeted"
    PATCH_AT_32: ClassVar[int] = 3
    poison_range: tuple[float, float] = (0.0, 1.0)
    test_range: tuple[float, float] = (0.0, 1.0)

    @model_validator(mode="after")
    def _applies(self) -> Self:
        other = "backdoor" if self.variant == "targeted" else "targeted"
        given, fields = set(self.model_fields_set), type(self).model_fields
        if given >= set(fields):  # a suite's resolved spec writes out every field: judge by value
            given = {k for k in given if getattr(self, k) != fields[k].default}
        stray = sorted(given & {*ONLY[other], "references"})
        if stray:
            raise ValueError(f"{', '.join(stray)}: does not apply to variant {self.variant!r}")
        return self


def target_captions(name: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` caption token ids naming class `name`, each in a randomly drawn template."""
    picks = rng.integers(0, len(TEMPLATES), size=count)
    return tokenize([TEMPLATES[t].format(name) for t in picks])


@register_attack("carlini-terzis", family="targeted", stage="data", modalities=("image", "text"),
                 budget_param="poison_rate", label_params=("selection",),
                 label_marks={"attacker_data": {"probe-train": "+probe-data"}})
class CarliniTerzis(BackdoorAttack):
    Params = CarliniTerzisParams
    params: CarliniTerzisParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("captions are the benchmark's offline ones: the target class's name in one of "
                  "`pe_bench.plugins.captions.TEMPLATES`, drawn per poison (seeded), tokenized like "
                  "the clean captions",
                  "their caption set (training captions that contain the label's name) needs a web "
                  "caption corpus; a clean caption here names its image's class, a poison's the "
                  "target class"),
        Deviation("`targeted`: the target pairs of every targeted attack, the same as "
                  "`poisoned-encoder`'s and `duplicate`'s at one seed; N = round(poison_rate × |D|) "
                  "split evenly over the pairs (at least one each); no reference images",
                  "so targeted attacks compare on the same pairs at one budget "
                  "(`pe_bench.attacks.targets`)"),
        Deviation("`backdoor`: the patch goes on the attacker's own labelled images of every class "
                  "(its held-out split by default), cycled when the budget exceeds them; target class "
                  "and budget per task as every backdoor",
                  "the paper takes random training images; the attacker here only injects images it "
                  "holds (`pe_bench.attacks.backdoor`)"),
        Deviation("`backdoor`: the patch is 3 px at 32 × 32 (16/224 of 32 is 2.3, rounded up), the "
                  "same share of the side at other sizes unless `patch_size` is set; the seeded noise "
                  "pattern of `ssl-backdoor`, anywhere in the image by default (`poison_range`, "
                  "`test_range`)",
                  "the paper's 16 × 16 noise patch on 224 × 224 images [2nd-hand], scaled to the "
                  "benchmark's images (`pe_bench.attacks.trigger_size`)"),
        Deviation("image-only encoders train on its images with the captions dropped: the targeted "
                  "variant becomes `duplicate`, the backdoor variant a patch on random images",
                  "the grid runs every image attack on every image encoder; without captions nothing "
                  "ties the poisons to the target class, so these cells are a control, not the attack"),
    )

    @classmethod
    def family_of(cls, params: PluginParams) -> Variant:
        return params.variant if isinstance(params, CarliniTerzisParams) else cls.family

    def apply_trigger(self, images: np.ndarray, seed: int, rng: np.random.Generator,
                      test: bool = False) -> np.ndarray:
        return random_patch(images, self.params, seed, rng, test)

    def targeted(self, ctx: AttackContext) -> PoisonSet:
        """Copies of each target input, each with a caption naming its target class."""
        pairs = all_targets(ctx.tasks, self.params, ctx.seed)
        tasks = {t.name: t for t in ctx.tasks}
        images, texts = [], []
        for pair, count in zip(pairs, budget(len(ctx.pretrain), self.params, len(pairs)), strict=True):
            task = tasks[pair.task]
            images.append(np.repeat(task.test.images[pair.index][None], count, axis=0))
            rng = task_rng(ctx.seed, pair.task, f"captions-{pair.index}")
            texts.append(target_captions(task.test.classes[pair.target_class], count, rng))
        poisons = np.concatenate(images)
        return PoisonSet((poisons,), tuple(pairs), {"n_poisons": len(poisons)}, (np.concatenate(texts),))

    def backdoor(self, task: Task, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """One task's patched images (any class of the attacker's) and target-class captions."""
        own = attacker_images(task, self.params)
        rng = task_rng(seed, task.name, "carlini-terzis-backdoor")
        picked = np.resize(rng.permutation(len(own)), count)
        name = task.test.classes[self.target_class(task, seed)]
        return self.apply_trigger(own.images[picked], seed, rng), target_captions(name, count, rng)

    def craft(self, ctx: AttackContext) -> PoisonSet:
        if self.params.variant == "targeted":
            return self.targeted(ctx)
        counts = budget(len(ctx.pretrain), self.params, len(ctx.tasks))
        made = [self.backdoor(t, n, ctx.seed) for t, n in zip(ctx.tasks, counts, strict=True)]
        poisons = np.concatenate([m[0] for m in made])
        chosen = {t.name: self.target_class(t, ctx.seed) for t in ctx.tasks}
        return PoisonSet((poisons,), (), {"n_poisons": len(poisons), "target_classes": chosen},
                         (np.concatenate([m[1] for m in made]),))

    def triggered_tests(self, ctx: AttackContext) -> tuple[TriggeredTest, ...]:
        return super().triggered_tests(ctx) if self.params.variant == "backdoor" else ()

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        """The targeted variant (the backdoor one: `{"variant": "backdoor", "patch_size": 2}`)."""
        return {}
