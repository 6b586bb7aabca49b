"""`check_defense`: the contract every defense plugin meets. It runs the defense's hooks on a
tiny synthetic pre-training set (a few seconds on a CPU)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pe_bench.attacks.base import PoisonSet
from pe_bench.cache import ArtifactCache
from pe_bench.cached_training import Trainer
from pe_bench.datasets.base import ImageArray
from pe_bench.defenses.base import Defense, PluginParams, PretrainData
from pe_bench.spec import EvalSpec, PluginRef, PretrainSpec, TrainSpec, TrialSpec
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
    out = trainer.repaired(base, _small(cls), data.clean)
    again = trainer.repaired(base, _small(cls), data.clean)
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


def check_defense(cls: type[Defense]) -> dict[str, Any]:
    """Every contract a defense plugin must meet; returns what was checked."""
    check_params(cls, Defense, PluginParams, {}, cls.contract_params())
    defense = _small(cls)
    hooks = defense.implements()
    check_sanitize(cls, defense)
    check_configure(cls, defense)
    check_partition(cls, defense)
    if "repair" in hooks:
        check_repair(cls)
    return {"hooks": hooks}
