"""`check_defense`: the contract every defense plugin meets. It runs the defense's hooks on a
tiny synthetic pre-training set (a few seconds on a CPU)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pe_bench.attacks.base import PoisonSet
from pe_bench.worker.cache import ArtifactCache
from pe_bench.worker.cached_training import Trainer
from pe_bench.plugins.types import ImageArray
from pe_bench.defenses.base import BugReport, Defense, PluginParams, PretrainData
from pe_bench.errors import PluginError
from pe_bench.config.spec import EvalSpec, PluginRef, PretrainSpec, TrainSpec, TrialSpec
from pe_bench.testing.common import check_params, fail


def tiny_data(seed: int = 0, n: int = 48, size: int = 16) -> PretrainData:
    """Random clean images plus two poison groups (side-by-side canvases and copies)."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    target = clean[0]
    pairs = np.stack([np.concatenate([target, clean[i]], axis=2) for i in range(1, 7)])
    copies = np.repeat(target[None], 4, axis=0)
    return PretrainData(clean, PoisonSet((pairs, copies)))


def tiny_spec(defense: PluginRef, seed: int = 0) -> TrialSpec:
    train = TrainSpec(epochs=1, batch_size=16, optimizer="adam", lr=1e-3, weight_decay=0.0)
    return TrialSpec(suite="contract", dataset="tiny", seed=seed,
                     pretrain=PretrainSpec(dataset=PluginRef(name="digits")), tasks=(),
                     encoder=PluginRef(name="simclr", params={"width": 4, "proj_hidden_dim": 16,
                                                              "proj_dim": 8}),
                     attack=PluginRef(name="none"), defense=defense, train=train,
                     evaluation=EvalSpec(probe="linear"))


def _small(cls: type[Defense]) -> Defense:
    return cls.from_dict(cls.contract_params())


def tiny_embed(images: np.ndarray) -> np.ndarray:
    """A fixed, torch-free stand-in for an encoder's features: per-channel means and stds of
    each image, what `score_trained` receives in the contract run."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), images.shape[1], -1)
    return np.concatenate([x.mean(2), x.std(2)], axis=1) / 255.0


def check_filter(cls: type[Defense], defense: Defense) -> None:
    """Whichever filter hook it has: ids in range, kept = data.without(removed), scores one
    finite number per image, the same under a seed."""
    data = tiny_data()
    try:
        kept, removed, scores = defense.filter(data, 0, tiny_embed)
    except PluginError as exc:
        raise fail(cls, str(exc)) from None
    again = _small(cls).filter(tiny_data(), 0, tiny_embed)
    if not np.array_equal(removed, again[1]):
        raise fail(cls, "the filter must be deterministic under a seed")
    if scores is not None and (again[2] is None or not np.array_equal(scores, again[2])):
        raise fail(cls, "scores must be deterministic under a seed")
    if "sanitize" in defense.implements():
        check_sanitize(cls, defense)


def check_sanitize(cls: type[Defense], defense: Defense) -> None:
    data = tiny_data()
    kept, removed = defense.sanitize(data, 0)
    removed = np.asarray(removed)
    if removed.ndim != 1 or (len(removed) and (removed.min() < 0 or removed.max() >= data.size)):
        raise fail(cls, "sanitize must return a 1-d array of image ids in range")
    if kept.size != data.size - len(np.unique(removed)):
        raise fail(cls, "sanitize's kept set must be data.without(removed)")
    again_kept, again = _small(cls).sanitize(tiny_data(), 0)
    if not np.array_equal(np.sort(removed), np.sort(np.asarray(again))):
        raise fail(cls, "sanitize must be deterministic under a seed")


def check_configure(cls: type[Defense], defense: Defense) -> None:
    base = tiny_spec(PluginRef(name="none")).train
    recipe = defense.configure_training(base)
    if not isinstance(recipe, TrainSpec):
        raise fail(cls, "configure_training must return a TrainSpec")
    TrainSpec.model_validate(recipe.model_dump())  # still a valid recipe
    if recipe != _small(cls).configure_training(base):
        raise fail(cls, "configure_training must be deterministic")


def check_partition(cls: type[Defense], defense: Defense) -> None:
    data = tiny_data()
    parts = defense.partition(data)
    if not parts or not all(isinstance(p, PretrainData) for p in parts):
        raise fail(cls, "partition must return one or more PretrainData")
    ids = [np.concatenate([p.clean_ids, len(data.clean) + p.poison_ids]) for p in parts]
    joined = np.concatenate(ids)
    if len(parts) > 1 and len(joined) != len(np.unique(joined)):
        raise fail(cls, "partitions must be disjoint")
    again = _small(cls).partition(tiny_data())
    if [len(p.clean_ids) for p in again] != [len(p.clean_ids) for p in parts]:
        raise fail(cls, "partition must be deterministic")


def _repair_once(cls: type[Defense], cache_dir: Path) -> tuple[dict[str, torch.Tensor], set[str], bool]:
    data = tiny_data()
    spec = tiny_spec(PluginRef(name="none"))  # a registered name: cache keys carry its version
    pre = ImageArray(data.clean, np.zeros(len(data.clean), np.int64), ("x",))
    trainer = Trainer(spec, pre, ArtifactCache(cache_dir), lambda _: None)
    base = trainer.encoder(PretrainData(data.clean, PoisonSet()), spec.train, "contract")
    arch = set(base.model.state_dict())
    report = BugReport("contract", 0, data.clean[0], data.clean[1])  # for repairs that read one
    out = trainer.repaired(base, _small(cls), data.clean, report)
    again = trainer.repaired(base, _small(cls), data.clean, report)
    return out.model.state_dict(), arch, again.hit


def check_repair(cls: type[Defense]) -> None:
    """Repair a tiny encoder in two fresh caches: same weights, same architecture, cached."""
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        first, arch, hit = _repair_once(cls, Path(one))
        second, _, _ = _repair_once(cls, Path(two))
    if not hit:
        raise fail(cls, "a repaired encoder must be cached under its key")
    if set(first) != arch:
        raise fail(cls, "repair must return an encoder of the trial's architecture")
    if any(not torch.equal(first[k], second[k]) for k in first):
        raise fail(cls, "repair must be deterministic under a seed")


def _score_once(cls: type[Defense], cache_dir: Path) -> tuple[float, float, bool, bool]:
    data = tiny_data()
    spec = tiny_spec(PluginRef(name="none"))
    pre = ImageArray(data.clean, np.zeros(len(data.clean), np.int64), ("x",))
    trainer = Trainer(spec, pre, ArtifactCache(cache_dir), lambda _: None)
    base = trainer.encoder(PretrainData(data.clean, PoisonSet()), spec.train, "contract")
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    score = trainer.encoder_score(base, _small(cls), data.clean)["score"]
    untouched = all(torch.equal(before[k], v) for k, v in base.model.state_dict().items())
    verdict = _small(cls).flag_encoder(score)
    return score, trainer.encoder_score(base, _small(cls), data.clean)["score"], untouched, verdict in (
        None, True, False)


def check_score_encoder(cls: type[Defense]) -> None:
    """Score a tiny encoder in two fresh caches: finite, deterministic, cached, encoder untouched."""
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        try:
            first, cached, untouched, verdict_ok = _score_once(cls, Path(one))
            second = _score_once(cls, Path(two))[0]
        except PluginError as exc:
            raise fail(cls, str(exc)) from None
    if first != second or first != cached:
        raise fail(cls, "score_encoder must be deterministic under a seed")
    if not untouched:
        raise fail(cls, "score_encoder must not change the encoder it scores")
    if not verdict_ok:
        raise fail(cls, "flag_encoder must return True, False or None")


def check_defense(cls: type[Defense]) -> dict[str, Any]:
    """Every contract a defense plugin must meet; returns what was checked."""
    check_params(cls, Defense, PluginParams, {}, cls.contract_params())
    defense = _small(cls)
    hooks = defense.implements()
    check_filter(cls, defense)
    check_configure(cls, defense)
    check_partition(cls, defense)
    if "repair" in hooks:
        check_repair(cls)
    if "score_encoder" in hooks:
        check_score_encoder(cls)
    return {"hooks": hooks}
