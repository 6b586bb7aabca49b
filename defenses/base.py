"""The defense plugin API: subclass `Defense`, override any of its stage hooks, register it.

Torch-free at import (a defense's module is imported to validate its `Params` and to read which
hooks it implements, in `pe-bench validate` too); `repair` and `score_encoder` get the encoder
(a torch module) at run time and may import torch inside; `score_trained` gets only a function
from images to features, so a detector that reads embeddings needs no torch at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pe_bench.errors import PluginError
from pe_bench.plugins.types import Family, Modality, Plugin, PluginParams, PoisonSet
from pe_bench.config.spec import TrainSpec

__all__ = ["BugReport", "Defense", "Embed", "PluginParams", "PoisonSet", "PretrainData", "RepairContext"]
HOOKS = ("sanitize", "score", "score_trained", "configure_training", "partition", "repair", "score_encoder")
FILTERS = ("sanitize", "score", "score_trained")  # the filter hooks: a defense implements one at most
# `embed(images) -> features`, what `score_trained` receives: uint8 numpy images (N, C, H, W) of
# one canvas shape (call it once per array of `data.images()`; N may be 0) -> float32 numpy
# features (N, D), row i those of image i, D the encoder's feature dimension. It runs the encoder
# trained on the untrusted set, frozen, on the un-augmented images (the pixel convention of
# pe_bench.plugins.tensors), in batches; the same images give the same features.
Embed = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PretrainData:
    """The pre-training set as the victim receives it: clean images plus injected ones.

    Kept apart only so training can pair a poisoned encoder with its clean twin and so the
    engine can score filters; a defense must not use the split to decide what to remove.
    Image ids, as `sanitize` reports them: clean images are 0..N-1 (row order of `clean`),
    injected ones follow, group by group. `clean_ids` / `poison_ids` say which images of the
    original set these are (a filtered set keeps its original ids)."""

    clean: np.ndarray
    poisons: PoisonSet
    clean_ids: np.ndarray = None  # type: ignore[assignment]  # filled in by __post_init__
    poison_ids: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.clean_ids is None:
            object.__setattr__(self, "clean_ids", np.arange(len(self.clean)))
        if self.poison_ids is None:
            object.__setattr__(self, "poison_ids", np.arange(self.poisons.size))

    @property
    def size(self) -> int:
        return len(self.clean) + self.poisons.size

    def images(self) -> list[np.ndarray]:
        """Every image as one array per canvas shape: clean first, then each poison group;
        concatenating the arrays' rows gives the image ids."""
        return [self.clean, *self.poisons.groups]

    def without(self, ids: np.ndarray) -> PretrainData:
        """This set minus the images with the given ids (see the class docstring)."""
        drop = np.zeros(self.size, dtype=bool)
        drop[np.asarray(ids, dtype=np.int64)] = True
        keep_clean = ~drop[:len(self.clean)]
        keep_poison = ~drop[len(self.clean):]
        poisons = self.poisons.kept(keep_poison)  # captions stay with their images
        return PretrainData(self.clean[keep_clean], poisons, self.clean_ids[keep_clean],
                            self.poison_ids[keep_poison])

    def identity(self) -> dict[str, Any]:
        """What a pre-training run on this set depends on beyond the attack: which images."""
        digest = hashlib.sha256(self.clean_ids.astype(np.int64).tobytes())
        digest.update(b"|" + self.poison_ids.astype(np.int64).tobytes())
        return {"clean": len(self.clean), "poisons": self.poisons.size, "ids": digest.hexdigest()[:16]}


STUDENT_STREAM = 0x5EED  # tags student_seed's stream apart from other seeds derived from a trial's


def student_seed(seed: int) -> int:
    """The initialisation seed of an encoder a repair builds (a distilled student): derived
    from the trial seed by numpy's SeedSequence, so it differs from the teacher's (which is
    initialised with the trial seed itself) and is reproducible per seed."""
    return int(np.random.SeedSequence((seed, STUDENT_STREAM)).generate_state(1)[0])


@dataclass(frozen=True)
class BugReport:
    """One misclassified input a downstream user reported, as Mudjacking's threat model has it
    (Liu, Reiter, Gong, USENIX Security 2024): `bug`, the input (uint8 (C, H, W)) -- a targeted
    attack's target input, or one triggered test input of a backdoor -- and `reference`, another
    test input of the bug's true class `true_class` in task `task`. The engine builds it
    (`pe_bench.worker.defend.bug_report`); a trial without an attack has none."""

    task: str
    true_class: int
    bug: np.ndarray
    reference: np.ndarray


class RepairContext:
    """What a post-processing defense (or an encoder-level detector) may use besides the encoder.

    Encoders here (the `encoder` a hook receives, `fresh_encoder()`'s) are torch modules (an
    `EncoderMethod`) whose `features(x)` maps a normalised float32 batch (B, C, H, W)
    (pe_bench.plugins.tensors: uint8 / 255, then (x - 0.5) / 0.25) to float features (B, D).
    `clean_images(n)`: n unlabeled images the defender trusts, uint8 numpy (n, C, H, W) (drawn,
    seeded, from the clean part of the pre-training distribution; the engine records how many
    were used).
    `finetune(model, images, epochs, batch_size=None) -> model`: continue the encoder's own
    contrastive training in place on uint8 images (N, C, H, W), augmented as in pre-training
    (None: the suite's batch size); image-only encoders.
    `distill(student, teacher, images, epochs, batch_size=None) -> student`: train `student` in
    place to match `teacher`'s features on augmented views of uint8 images (N, C, H, W).
    `fresh_encoder()`: a newly initialised encoder of the trial's architecture, initialised
    from `student_seed(seed)`, independently of the trained encoder's initialisation.
    `bug_report`: the one reported misclassified input (a `BugReport`; None without an attack),
    read-only, for repairs that patch from a bug report; it is a function of the attack, the
    tasks and the seed, all in the repaired encoder's cache key already.
    The optimiser steps and training images of every `finetune` / `distill` call are counted in
    `steps` and `images` (reported as `repair_steps` and in the extra training work); a repair
    that runs its own optimiser adds its steps and images there itself."""

    def __init__(self, seed: int, pool: np.ndarray, trainer: Any,
                 bug_report: BugReport | None = None) -> None:
        self.seed, self.pool, self.trainer = seed, pool, trainer
        self.bug_report = bug_report
        self.clean_used = 0
        self.steps = 0
        self.images = 0

    def clean_images(self, n: int) -> np.ndarray:
        if n > len(self.pool):
            raise PluginError(f"defense asked for {n} trusted clean images; only {len(self.pool)} exist")
        rng = np.random.default_rng(self.seed + 104_729)
        self.clean_used = max(self.clean_used, n)
        return self.pool[np.sort(rng.choice(len(self.pool), n, replace=False))]

    def finetune(self, model: Any, images: np.ndarray, epochs: int, batch_size: int | None = None) -> Any:
        self.steps += self.trainer.finetune(model, images, epochs, batch_size).steps
        self.images += len(images) * epochs
        return model

    def distill(self, student: Any, teacher: Any, images: np.ndarray, epochs: int,
                batch_size: int | None = None) -> Any:
        self.steps += self.trainer.distill(student, teacher, images, epochs, batch_size).steps
        self.images += len(images) * epochs
        return student

    def fresh_encoder(self) -> Any:
        return self.trainer.fresh_encoder(student_seed(self.seed))


class Defense(Plugin):
    """A defense implements any of the stage hooks; the defaults change nothing.

    - pre-processing, one filter at most: `sanitize(data, seed) -> (kept, removed_ids)`
      (`data.without(ids)` builds the kept set; ids int64); or `score(data, seed) -> scores`,
      one suspicion score per image id (float (data.size,), higher = more suspicious), of which
      `flag(scores)` picks the ids to remove; or `score_trained(data, embed, seed) -> scores`,
      the same after a first training: `embed(images) -> features` (see `Embed`: uint8
      (N, C, H, W) -> float32 (N, D)) is the encoder trained on the untrusted set (the
      undefended poisoned encoder), and the defended encoder is retrained without the flagged
      images. Scores give the row AUROC / AUPRC over the poisons besides the operating point.
    - in-processing: `configure_training(train) -> train` (augmentation, epochs, ...) and/or
      `partition(data) -> parts`: one encoder is trained per part and their downstream
      classifiers vote (majority, ties to the higher mean probability)
    - post-processing: `repair(encoder, ctx) -> encoder` (a torch module; see `RepairContext`)
    - encoder-level detection: `score_encoder(encoder, ctx) -> float` (higher = more likely
      backdoored), run on the attacked encoder and on its clean twin; `flag_encoder(score)`
      is the verdict at the defense's threshold (None: it prescribes none).
    The engine caches every encoder a defense trains, keyed by the images it saw and its
    recipe, so defenses that change nothing before training share the undefended encoder.
    `modalities`: what the encoder must train on for the defense to apply (empty: any); the
    grid excludes other encoders with the reason (e.g. ("image", "text") for a CLIP defense).
    `families`: the attack families the defense was designed against, as its paper evaluates it
    (empty: either); cells of another family still run and are labelled off-target
    (`pe_bench.config.grid.off_target`), so a defense is never judged silently outside its design.
    """

    modalities: ClassVar[tuple[Modality, ...]] = ()
    families: ClassVar[tuple[Family, ...]] = ()

    def sanitize(self, data: PretrainData, seed: int) -> tuple[PretrainData, np.ndarray]:
        return data, np.zeros(0, dtype=np.int64)

    def score(self, data: PretrainData, seed: int) -> np.ndarray:
        return np.zeros(data.size)

    def score_trained(self, data: PretrainData, embed: Embed, seed: int) -> np.ndarray:
        return np.zeros(data.size)

    def flag(self, scores: np.ndarray) -> np.ndarray:
        """Ids of the images to remove at the defense's own threshold (default: none; a pure
        ranker still gets AUROC / AUPRC)."""
        return np.zeros(0, dtype=np.int64)

    def configure_training(self, train: TrainSpec) -> TrainSpec:
        return train

    def partition(self, data: PretrainData) -> tuple[PretrainData, ...]:
        return (data,)

    def repair(self, encoder: Any, ctx: RepairContext) -> Any:
        return encoder

    def score_encoder(self, encoder: Any, ctx: RepairContext) -> float:
        return 0.0

    def flag_encoder(self, score: float) -> bool | None:
        """Whether an encoder of this score is judged backdoored (None: no threshold)."""
        return None

    def filter(self, data: PretrainData, seed: int, embed: Embed | None = None
               ) -> tuple[PretrainData, np.ndarray, np.ndarray | None]:
        """Run the defense's filter hook, whichever it is: (kept set, sorted removed ids, the
        per-image scores or None). Not a hook: the engine and tests call it."""
        hooks = [h for h in FILTERS if h in self.implements()]
        if len(hooks) > 1:
            raise PluginError(f"a defense implements one filter hook at most; found {', '.join(hooks)}")
        if not hooks:
            return data, np.zeros(0, dtype=np.int64), None
        if hooks == ["sanitize"]:
            kept, removed = self.sanitize(data, seed)
            removed = _ids(removed, data.size, "sanitize")
            if kept.size != data.size - len(removed):
                raise PluginError(f"sanitize returned {kept.size} images but removed {len(removed)} "
                                  f"of {data.size}: build the kept set with data.without(removed)")
            return kept, removed, None
        if hooks == ["score_trained"] and embed is None:
            raise PluginError("score_trained needs the encoder trained on the untrusted set")
        raw = self.score(data, seed) if hooks == ["score"] else self.score_trained(data, embed, seed)  # type: ignore[arg-type]
        scores = np.asarray(raw, dtype=np.float64)
        if scores.shape != (data.size,) or not np.isfinite(scores).all():
            raise PluginError(f"{hooks[0]} must return {data.size} finite scores, one per image id; "
                              f"got shape {scores.shape}")
        removed = _ids(self.flag(scores), data.size, "flag")
        return data.without(removed), removed, scores

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        """Params for pe_bench.testing's contract run on a tiny set (48 images, 1 epoch);
        override when the defaults need more data than that (e.g. a clean-set size)."""
        return {}

    @classmethod
    def implements(cls) -> tuple[str, ...]:
        """The hooks this defense overrides (reported in rows, read by the grid)."""
        return tuple(h for h in HOOKS if getattr(cls, h) is not getattr(Defense, h))


def _ids(ids: Any, size: int, hook: str) -> np.ndarray:
    """Sorted distinct int64 image ids, checked to lie in 0..size-1."""
    out = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
    if len(out) and (out[0] < 0 or out[-1] >= size):
        raise PluginError(f"{hook} returned image ids outside 0..{size - 1}")
    return out
