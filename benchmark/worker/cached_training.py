"""Encoders of one trial, each trained once per grid through the artefact cache.

Every encoder a trial needs (the clean twin, the undefended poisoned encoder, the encoders a
defense trains, a repaired encoder) is keyed by everything its weights depend on, so cells that
need the same encoder share it, whichever worker gets there first. A model handed out is always
a fresh one loaded from the stored weights: a trial that trained it and one that found it
cached compute bit-identical features.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from pe_bench.attacks.base import Attack, AttackContext
from pe_bench.worker.cache import ArtifactCache
from pe_bench.worker.checkpoint import Checkpoint
from pe_bench.datasets.base import ImageArray
from pe_bench.defenses.base import BugReport, Defense, PretrainData, RepairContext
from pe_bench.encoders.base import EncoderMethod
from pe_bench.plugins.captions import captions, tokenize
from pe_bench.errors import PluginError
from pe_bench.plugins.registry import ENCODERS, plugin_versions
from pe_bench.plugins.tensors import cuda_channels_last
from pe_bench.config.spec import TrainSpec, TrialSpec, canonical_hash
from pe_bench.worker.train import (TrainResult, distill, pick_device, pretrain, steps_per_epoch,
                                    training_precision)

Log = Callable[[str], None]
State = dict[str, torch.Tensor]


@dataclass
class Trained:
    """An encoder ready for evaluation, with its cache key and how it was made."""

    model: EncoderMethod
    key: str
    info: dict[str, Any]
    hit: bool


def build_encoder(spec: TrialSpec, in_channels: int, seed: int | None = None) -> EncoderMethod:
    """The encoder at its seeded initialisation: identical for a poisoned run and its twin
    (the trial seed); `seed` initialises another one (a distilled student)."""
    torch.manual_seed(spec.seed if seed is None else seed)
    cls: type[EncoderMethod] = ENCODERS.get(spec.encoder.name)
    return cls.from_dict(spec.encoder.params, in_channels=in_channels)


def caption_tokens(model: EncoderMethod, pre: ImageArray, seed: int) -> np.ndarray | None:
    """Templated captions of the pre-training images, for image–text encoders only: the one
    place where pre-training labels are read (to name the class in the caption)."""
    if "text" not in model.modalities:
        return None
    return tokenize(captions(pre.labels, pre.classes, seed))


def _state(model: torch.nn.Module) -> State:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def training_work(data: PretrainData, recipe: TrainSpec) -> tuple[int, int]:
    """(optimiser steps, images seen) of pre-training on `data` with `recipe`: a function of the
    set's size and the recipe alone (the loop's arithmetic), so it holds on any hardware and
    for encoders cached before work was recorded."""
    if len(data.clean) == 0:
        return 0, 0
    return recipe.epochs * steps_per_epoch(len(data.clean), recipe.batch_size), recipe.epochs * data.size


class Trainer:
    """Trains, caches and loads the encoders of one trial."""

    def __init__(self, spec: TrialSpec, pre: ImageArray, cache: ArtifactCache, log: Log) -> None:
        self.spec, self.pre, self.cache, self.log = spec, pre, cache, log
        self.channels = pre.images.shape[1]
        self._shapes: dict[str, tuple[int, ...]] | None = None

    def fresh_encoder(self, seed: int | None = None) -> EncoderMethod:
        """The trial's encoder at its initialisation (the trial seed's, unless `seed`)."""
        return build_encoder(self.spec, self.channels, seed)

    def fits(self, state: State) -> bool:
        """Whether cached weights load into this trial's architecture (same keys and shapes).
        They may not when an encoder's code changed without a new version: such an artefact
        is retrained, never an error."""
        if self._shapes is None:
            self._shapes = {k: tuple(v.shape) for k, v in self.fresh_encoder().state_dict().items()}
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != self._shapes:
            self.log("cached encoder does not fit this architecture (state-dict keys or shapes "
                     "differ): retraining it")
            return False
        return True

    def _load(self, state: State) -> EncoderMethod:
        model = self.fresh_encoder()
        model.load_state_dict(state)
        model.to(pick_device(self.spec.train.device))
        return cuda_channels_last(model).eval()  # NHWC on CUDA only: CPU numbers must not move

    def encoder(self, data: PretrainData, recipe: TrainSpec, label: str,
                data_id: dict[str, Any] | None = None) -> Trained:
        """Pre-train (or load) an encoder on `data` with `recipe`. `data_id` names a subset
        of the pre-training set; None means all of it (with the attack's poisons, if any).
        While another trial trains the same key, wait for it (polling the cache)."""
        trained = self._encoder(data, recipe, label, data_id, wait=True)
        if trained is None:  # unreachable: a waiting call always ends with the encoder
            raise RuntimeError(f"the {label} was neither loaded nor trained")
        return trained

    def encoder_if_free(self, data: PretrainData, recipe: TrainSpec, label: str) -> Trained | None:
        """`encoder`, or None at once while another trial is training it (do other work first)."""
        return self._encoder(data, recipe, label, None, wait=False)

    def _encoder(self, data: PretrainData, recipe: TrainSpec, label: str,
                 data_id: dict[str, Any] | None, wait: bool) -> Trained | None:
        key = self.spec.pretrain_key(self.spec.poison_id() if data.poisons.size else None,
                                     recipe, data_id, training_precision(recipe))
        checkpoint = Checkpoint.for_build(self.cache, "encoders", key, recipe)

        def build() -> tuple[State, dict[str, Any]]:
            self.log(f"training {label} ({len(data.clean)} clean + {data.poisons.size} injected images)")
            trainee = self.fresh_encoder()
            texts = caption_tokens(trainee, self.pre, self.spec.seed)
            cpu = time.process_time()
            result = pretrain(trainee, data.clean, data.poisons.groups, recipe, self.spec.seed,
                              texts=None if texts is None else texts[data.clean_ids],
                              poison_texts=data.poisons.captions, checkpoint=checkpoint)
            return _state(trainee), {"seconds": result.seconds, "final_loss": result.final_loss,
                                     "images_per_second": result.images_per_second,
                                     "device": result.device, "fitted": result.fitted,
                                     "precision": result.precision,
                                     "cpu_s": time.process_time() - cpu}

        made = self.cache.get_or_create("encoders", key, build, usable=self.fits, wait=wait)
        if made is None:
            return None
        state, info, hit = made
        if not hit:
            checkpoint.clear()
        steps, images = training_work(data, recipe)
        return Trained(self._load(state), key, {**info, "key": key, "steps": steps, "images": images}, hit)

    def repaired(self, base: Trained, defense: Defense, pool: np.ndarray,
                 bug_report: BugReport | None = None) -> Trained:
        """`base` after the defense's post-processing (cached like any encoder). The bug report
        is not in the key: it follows from the attack, tasks and seed, which `base.key` holds."""
        key = canonical_hash({"base": base.key, "repair": self.spec.defense.model_dump(mode="json"),
                              "precision": training_precision(self.spec.train),
                              "plugins": plugin_versions(self.spec.plugins_used(("defenses",)))})

        def build() -> tuple[State, dict[str, Any]]:
            self.log(f"post-processing with {self.spec.defense.name}")
            ctx = RepairContext(self.spec.seed, pool, self, bug_report)
            start, cpu = time.perf_counter(), time.process_time()
            # a copy: the trial still evaluates `base` (the undefended encoder) after this
            out = defense.repair(copy.deepcopy(base.model), ctx)
            return _state(cast(torch.nn.Module, out)), {"seconds": time.perf_counter() - start, "clean_used": ctx.clean_used,
                                 "repair_steps": ctx.steps, "repair_images": ctx.images,
                                 "cpu_s": time.process_time() - cpu}

        state, info, hit = self.cache.get_or_create("encoders", key, build, usable=self.fits)
        return Trained(self._load(state), key, {**info, "key": key}, hit)

    def backdoored(self, twin: Trained, attack: Attack, ctx: AttackContext) -> Trained:
        """The clean `twin` after an encoder-stage attack's `backdoor_encoder` (cached by the
        twin, the attack's spec and its plugin's version): the undefended encoder of a
        supply-chain attack, trained on no poisons."""
        key = canonical_hash({"base": twin.key, "backdoor": self.spec.poison_id(),
                              "plugins": plugin_versions(self.spec.plugins_used(("attacks",)))})

        def build() -> tuple[State, dict[str, Any]]:
            self.log(f"backdooring the clean twin with {self.spec.attack.name}")
            start, cpu = time.perf_counter(), time.process_time()
            # a copy: the trial still evaluates the clean twin after this
            out = attack.backdoor_encoder(copy.deepcopy(twin.model), ctx)
            return _state(cast(torch.nn.Module, out)), {"seconds": time.perf_counter() - start, "device": str(
                pick_device(self.spec.train.device)), "cpu_s": time.process_time() - cpu}

        state, info, hit = self.cache.get_or_create("encoders", key, build, usable=self.fits)
        return Trained(self._load(state), key, {**info, "key": key}, hit)

    def encoder_score(self, trained: Trained, defense: Defense, pool: np.ndarray) -> dict[str, Any]:
        """The defense's `score_encoder` of `trained` (cached by the encoder and the defense):
        {"score", "cpu_s", "clean_used"}; the encoder itself is not changed (a copy is scored)."""
        key = canonical_hash({"scored": trained.key, "detector": self.spec.defense.model_dump(mode="json"),
                              "plugins": plugin_versions(self.spec.plugins_used(("defenses",)))})

        def build() -> tuple[State, dict[str, Any]]:
            self.log(f"scoring an encoder with {self.spec.defense.name}")
            ctx = RepairContext(self.spec.seed, pool, self)
            cpu = time.process_time()
            score = float(defense.score_encoder(copy.deepcopy(trained.model).eval(), ctx))
            if not np.isfinite(score):
                raise PluginError(f"score_encoder returned {score}; it must be a finite number")
            return {"score": torch.tensor([score], dtype=torch.float64)}, {
                "cpu_s": time.process_time() - cpu, "clean_used": ctx.clean_used}

        state, info, _ = self.cache.get_or_create("encoder-scores", key, build, usable=_one_score)
        return {**info, "score": float(state["score"][0])}

    def _repair_recipe(self, epochs: int, batch_size: int | None) -> TrainSpec:
        """The trial's recipe with a repair's epochs and batch size (None: the suite's)."""
        return self.spec.train.replace(epochs=epochs, batch_size=batch_size or self.spec.train.batch_size)

    def finetune(self, model: EncoderMethod, images: np.ndarray, epochs: int,
                 batch_size: int | None = None) -> TrainResult:
        """Continue `model`'s own contrastive training on `images` (in place; the trial's recipe)."""
        if "text" in model.modalities:
            raise PluginError("contrastive fine-tuning needs captions; image–text encoders are not "
                              "supported: use distillation")
        return pretrain(model, images, (), self._repair_recipe(epochs, batch_size), self.spec.seed + 1)

    def distill(self, student: EncoderMethod, teacher: EncoderMethod, images: np.ndarray,
                epochs: int, batch_size: int | None = None) -> TrainResult:
        """Train `student` (in place) to match `teacher`'s features on `images`."""
        return distill(student, teacher, images, self._repair_recipe(epochs, batch_size),
                       self.spec.seed + 1)


def _one_score(state: State) -> bool:
    """Whether a cached encoder score is what `Trainer.encoder_score` stores."""
    score = state.get("score")
    return set(state) == {"score"} and score is not None and score.shape == (1,)
