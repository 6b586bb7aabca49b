"""One trial, start to finish, without Ray:
data -> attack -> pre-defense -> pre-training (clean twin + poisoned) -> post-defense -> evaluate.

Returns the trial's metrics as a plain dict (the driver adds provenance and writes the row).
Both encoders go through the artefact cache, so the clean twin of a seed is trained once and
shared by every cell of the grid that needs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pe_bench.cache import ArtifactCache
from pe_bench.captions import captions, tokenize
from pe_bench.data import ImageArray, load_dataset
from pe_bench.encoders.base import EncoderMethod
from pe_bench.errors import DataError
from pe_bench.evaluate import Classify, evaluate, probe, zero_shot
from pe_bench.plugins import AttackContext, PoisonSet, PretrainData, Task
from pe_bench.registry import ATTACKS, DEFENSES, ENCODERS
from pe_bench.spec import EvalSpec, TrainSpec, TrialSpec
from pe_bench.train import encode, pick_device, pretrain

Log = Callable[[str], None]


@dataclass
class Stopwatch:
    """Wall seconds per named stage."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, stage: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


def _cap(data: ImageArray, n: int | None) -> ImageArray:
    return data if n is None or n >= len(data) else data.subset(slice(0, n))


def union(parts: list[ImageArray], names: list[str]) -> ImageArray:
    """Several datasets as one pre-training set; their classes are kept apart (for captions)."""
    if len(parts) == 1:
        return parts[0]
    shapes = {p.images.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise DataError(f"pre-training datasets {', '.join(names)} differ in image shape "
                        f"{sorted(shapes)}: give them the same resolution and channels")
    offsets = np.cumsum([0] + [len(p.classes) for p in parts[:-1]])
    return ImageArray(np.concatenate([p.images for p in parts]),
                      np.concatenate([p.labels + o for p, o in zip(parts, offsets, strict=True)]),
                      tuple(c for p in parts for c in p.classes))


def load_inputs(spec: TrialSpec, data_dir: Path) -> tuple[ImageArray, tuple[Task, ...]]:
    """The unlabeled pre-training images and the labelled downstream tasks.

    Caps take a prefix of each split (the Parquet layouts interleave classes, so a prefix is
    class-balanced); task images must share the pre-training resolution and channels, because
    poisons are built from them."""
    pre = union([_cap(load_dataset(r.name, "train", r.params, data_dir), spec.pretrain.max_images)
                 for r in spec.pretrain.refs()], [r.name for r in spec.pretrain.refs()])
    tasks = []
    for t in spec.tasks:
        train = _cap(load_dataset(t.dataset.name, "train", t.dataset.params, data_dir), t.train_size)
        test = _cap(load_dataset(t.dataset.name, "test", t.dataset.params, data_dir), t.test_size)
        if train.images.shape[1:] != pre.images.shape[1:]:
            raise DataError(
                f"task {t.name!r} images are {train.images.shape[1:]} but pre-training images are "
                f"{pre.images.shape[1:]}: set the same resolution and channels on both datasets"
            )
        tasks.append(Task(t.name, train, test))
    return pre, tuple(tasks)


def build_encoder(spec: TrialSpec, in_channels: int) -> EncoderMethod:
    """The encoder at its seeded initialisation: identical for a poisoned run and its twin."""
    torch.manual_seed(spec.seed)
    cls = ENCODERS.get(spec.encoder.name)
    return cls.from_dict(spec.encoder.params, in_channels=in_channels)


def caption_tokens(model: EncoderMethod, pre: ImageArray, seed: int) -> np.ndarray | None:
    """Templated captions of the pre-training images, for image–text encoders only: the one
    place where pre-training labels are read (to name the class in the caption)."""
    if "text" not in model.modalities:
        return None
    return tokenize(captions(pre.labels, pre.classes, seed))


def trained_encoder(spec: TrialSpec, recipe: TrainSpec, pre: ImageArray, clean: np.ndarray,
                    poisons: PoisonSet, cache: ArtifactCache, poison_id: dict[str, Any] | None,
                    log: Log) -> tuple[EncoderMethod, dict[str, Any], bool]:
    """Train (or load from the cache) one encoder; `poison_id=None` is the clean twin.

    Either way the returned model is a fresh one loaded from the stored weights, so a trial
    that trained the encoder and one that found it cached compute bit-identical features."""
    key = spec.pretrain_key(poison_id)
    label = "clean twin" if poison_id is None else "poisoned encoder"

    def build() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        log(f"training {label} ({len(clean)} clean + {poisons.size} injected images)")
        trainee = build_encoder(spec, clean.shape[1])
        result = pretrain(trainee, clean, poisons.groups, recipe, spec.seed,
                          texts=caption_tokens(trainee, pre, spec.seed))
        info = {"seconds": result.seconds, "images_per_second": result.images_per_second,
                "final_loss": result.final_loss, "device": result.device}
        return {k: v.detach().cpu() for k, v in trainee.state_dict().items()}, info

    state, info, hit = cache.get_or_create("encoders", key, build)
    model = build_encoder(spec, clean.shape[1])
    model.load_state_dict(state)
    model.to(pick_device(recipe.device))
    return model.eval(), {**info, "key": key}, hit


def classifier(model: EncoderMethod, spec: EvalSpec) -> Classify:
    """The downstream classifier the suite asks for, on top of the frozen `model`."""

    def features(images: np.ndarray) -> np.ndarray:
        return encode(model, images, spec.batch_size)

    if spec.probe == "zero-shot":
        return lambda task: zero_shot(features, model.zero_shot_proba, task)
    return lambda task: probe(features, task, spec)


def run_trial(spec: TrialSpec, data_dir: Path, cache_root: Path, log: Log = lambda _: None
              ) -> dict[str, Any]:
    watch = Stopwatch()
    cache = ArtifactCache(cache_root)
    pre, tasks = watch.run("data", lambda: load_inputs(spec, data_dir))
    clean = pre.images
    attack = ATTACKS.get(spec.attack.name).from_dict(spec.attack.params)
    defense = DEFENSES.get(spec.defense.name).from_dict(spec.defense.params)
    poisons: PoisonSet = watch.run("attack", lambda: attack.craft(AttackContext(clean, tasks, spec.seed)))
    data, removed = watch.run("defense", lambda: defense.sanitize(PretrainData(clean, poisons)))
    recipe = defense.configure_training(spec.train)
    twin, twin_info, twin_hit = watch.run("pretrain_clean", lambda: trained_encoder(
        spec, spec.train, pre, clean, PoisonSet(), cache, None, log))
    model, info, hit = twin, twin_info, twin_hit
    if data.poisons.size or recipe != spec.train:
        poison_id = {"attack": spec.attack.model_dump(mode="json"),
                     "tasks": [t.model_dump(mode="json") for t in spec.tasks],
                     "defense": spec.defense.model_dump(mode="json")}
        model, info, hit = watch.run("pretrain_poisoned", lambda: trained_encoder(
            spec, recipe, pre, data.clean, data.poisons, cache, poison_id, log))
    model = watch.run("defense", lambda: defense.repair(model, None))
    log("evaluating")
    summary, per_task = watch.run("evaluate", lambda: evaluate(
        tasks, classifier(twin, spec.evaluation),
        None if model is twin else classifier(model, spec.evaluation), poisons.targets))
    return {
        **summary,
        "n_pretrain": len(clean),
        "n_poisons": poisons.size,
        "n_removed": len(removed),
        "tasks": per_task,
        "timings": watch.seconds,
        "cache_hits": int(twin_hit) + int(hit and model is not twin),
        "clean_encoder": twin_info,
        "encoder_info": info,
    }
