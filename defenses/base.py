"""The defense plugin API: subclass `Defense`, override any of its four stage hooks, register it.

Torch-free at import (a defense's module is imported to validate its `Params` and to read which
hooks it implements, in `pe-bench validate` too); a `repair` hook gets the encoder (a torch
module) at run time and may import torch inside.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from pe_bench.attacks.base import PoisonSet
from pe_bench.errors import PluginError
from pe_bench.plugin_types import Plugin, PluginParams
from pe_bench.spec import TrainSpec

__all__ = ["Defense", "PluginParams", "PoisonSet", "PretrainData", "RepairContext"]
HOOKS = ("sanitize", "configure_training", "partition", "repair")


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


class RepairContext:
    """What a post-processing defense may use besides the encoder.

    `clean_images(n)`: n unlabeled images the defender trusts (drawn, seeded, from the clean
    part of the pre-training distribution; the engine records how many were used).
    `finetune(model, images, epochs, batch_size=None)`: continue the encoder's own contrastive
    training (None: the suite's batch size).
    `distill(student, teacher, images, epochs, batch_size=None)`: train `student` to match
    `teacher`'s features.
    `fresh_encoder()`: a newly initialised encoder of the trial's architecture, initialised
    from `student_seed(seed)`, independently of the trained encoder's initialisation.
    The optimiser steps of every `finetune` / `distill` call are counted in `steps` (reported
    as `repair_steps`)."""

    def __init__(self, seed: int, pool: np.ndarray, trainer: Any) -> None:
        self.seed, self.pool, self.trainer = seed, pool, trainer
        self.clean_used = 0
        self.steps = 0

    def clean_images(self, n: int) -> np.ndarray:
        if n > len(self.pool):
            raise PluginError(f"defense asked for {n} trusted clean images; only {len(self.pool)} exist")
        rng = np.random.default_rng(self.seed + 104_729)
        self.clean_used = max(self.clean_used, n)
        return self.pool[np.sort(rng.choice(len(self.pool), n, replace=False))]

    def finetune(self, model: Any, images: np.ndarray, epochs: int, batch_size: int | None = None) -> Any:
        self.steps += self.trainer.finetune(model, images, epochs, batch_size).steps
        return model

    def distill(self, student: Any, teacher: Any, images: np.ndarray, epochs: int,
                batch_size: int | None = None) -> Any:
        self.steps += self.trainer.distill(student, teacher, images, epochs, batch_size).steps
        return student

    def fresh_encoder(self) -> Any:
        return self.trainer.fresh_encoder(student_seed(self.seed))


class Defense(Plugin):
    """A defense implements any of the stage hooks; the defaults change nothing.

    - pre-processing: `sanitize(data, seed) -> (kept, removed_ids)`; `data.without(ids)`
      builds the kept set
    - in-processing: `configure_training(train) -> train` (augmentation, epochs, ...) and/or
      `partition(data) -> parts`: one encoder is trained per part and their downstream
      classifiers vote (majority, ties to the higher mean probability)
    - post-processing: `repair(encoder, ctx) -> encoder`
    The engine caches every encoder a defense trains, keyed by the images it saw and its
    recipe, so defenses that change nothing before training share the undefended encoder.
    """

    def sanitize(self, data: PretrainData, seed: int) -> tuple[PretrainData, np.ndarray]:
        return data, np.zeros(0, dtype=np.int64)

    def configure_training(self, train: TrainSpec) -> TrainSpec:
        return train

    def partition(self, data: PretrainData) -> tuple[PretrainData, ...]:
        return (data,)

    def repair(self, encoder: Any, ctx: RepairContext) -> Any:
        return encoder

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        """Params for pe_bench.testing's contract run on a tiny set (48 images, 1 epoch);
        override when the defaults need more data than that (e.g. a clean-set size)."""
        return {}

    @classmethod
    def implements(cls) -> tuple[str, ...]:
        """The hooks this defense overrides (reported in rows, read by the grid)."""
        return tuple(h for h in HOOKS if getattr(cls, h) is not getattr(Defense, h))
