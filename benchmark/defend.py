"""Apply a defense's stage hooks to one trial and measure what the defense cost and caught.

pre-processing (`sanitize`) -> in-processing (`configure_training`, `partition`) ->
post-processing (`repair`). A defense that changes nothing before training reuses the
undefended poisoned encoder (one per grid, shared with the `none` cell and every
post-processing defense); anything it trains is cached by the images it saw and its recipe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from pe_bench.cached_training import Trained, Trainer
from pe_bench.defenses.base import Defense, PretrainData
from pe_bench.errors import PluginError
from pe_bench.metrics import DefenseReport
from pe_bench.registry import plugin_versions
from pe_bench.spec import TrainSpec, canonical_hash


@dataclass
class Defended:
    """The encoders behind the defended classifier (k > 1: their predictions vote) and the
    defense's costs and, for filters, how well it separated poisons from clean images."""

    members: list[Trained]
    report: DefenseReport

    @property
    def cache_hits(self) -> int:
        return sum(m.hit for m in self.members)


def filter_scores(data: PretrainData, removed: np.ndarray) -> dict[str, Any]:
    """Poison recall / precision of a pre-processing filter and the clean images it lost."""
    removed = np.unique(np.asarray(removed, dtype=np.int64))
    if len(removed) and (removed.min() < 0 or removed.max() >= data.size):
        raise PluginError(f"sanitize removed image ids outside 0..{data.size - 1}")
    caught = int((removed >= len(data.clean)).sum())
    return {
        "n_removed": len(removed),
        "clean_removed": len(removed) - caught,
        "poison_recall": caught / data.poisons.size if data.poisons.size else None,
        "poison_precision": caught / len(removed) if len(removed) else None,
    }


def _sanitized(defense: Defense, data: PretrainData, trainer: Trainer
               ) -> tuple[PretrainData, dict[str, Any], float]:
    """Run the filter, or load which ids it removed from the artefact cache (keyed by the
    pre-training set, the poisons, the seed, the defense and the versions of the plugins behind
    them): a filter runs once per grid. Returns the kept set, the filter's scores and the
    seconds the filter took."""
    if "sanitize" not in defense.implements():  # not a filter: nothing to score
        return data, {"n_removed": 0}, 0.0
    spec = trainer.spec
    key = canonical_hash({"filter": spec.defense.model_dump(mode="json"), "seed": spec.seed,
                          "pretrain": spec.pretrain.model_dump(mode="json"),
                          "poisons": spec.poison_id(), "data": data.identity(),
                          "plugins": plugin_versions(spec.plugins_used(
                              ("defenses", "attacks", "datasets"), poisoned=spec.poison_id() is not None))})

    def build() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        start = time.perf_counter()
        kept, removed = defense.sanitize(data, spec.seed)
        removed = np.unique(np.asarray(removed, dtype=np.int64))
        filter_scores(data, removed)  # rejects ids out of range
        if kept.size != data.size - len(removed):
            raise PluginError(f"sanitize returned {kept.size} images but removed {len(removed)} "
                              f"of {data.size}: build the kept set with data.without(removed)")
        return {"removed": torch.from_numpy(removed)}, {"seconds": time.perf_counter() - start}

    state, info, _ = trainer.cache.get_or_create("filters", key, build, usable=_removed_ids)
    removed = state["removed"].numpy()
    return data.without(removed), filter_scores(data, removed), float(info["seconds"])


def _removed_ids(state: dict[str, torch.Tensor]) -> bool:
    """Whether a cached filter result is what `_sanitized` stores (else it is recomputed)."""
    removed = state.get("removed")
    return set(state) == {"removed"} and removed is not None and removed.ndim == 1


def _members(defense: Defense, data: PretrainData, kept: PretrainData, recipe: TrainSpec,
             trainer: Trainer, undefended: Trained) -> list[Trained]:
    """Train one encoder per part of the kept set (unless nothing changed before training)."""
    parts = defense.partition(kept)
    if not parts:
        raise PluginError("partition returned no parts")
    whole = kept.identity() == data.identity()
    if whole and len(parts) == 1 and recipe == trainer.spec.train:
        return [undefended]
    members = []
    for i, part in enumerate(parts):
        data_id = None if whole and len(parts) == 1 else {**part.identity(), "part": f"{i + 1}/{len(parts)}"}
        label = f"defended encoder {i + 1}/{len(parts)}" if len(parts) > 1 else "defended encoder"
        members.append(trainer.encoder(part, recipe, label, data_id))
    return members


def configured_recipe(defense: Defense, train: TrainSpec) -> TrainSpec:
    """The defense's recipe, validated whatever the hook did (`model_copy` skips validation)."""
    recipe = defense.configure_training(train)
    if not isinstance(recipe, TrainSpec):
        raise PluginError("configure_training must return the train recipe (a TrainSpec)")
    try:
        return TrainSpec.model_validate(recipe.model_dump())
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(map(str, first["loc"]))
        raise PluginError(f"configure_training returned an invalid recipe: train.{key}: "
                          f"{first['msg']}") from None


def _repair_steps(members: list[Trained]) -> int | None:
    """Optimiser steps the repair took per encoder (the most of any member); None where a
    repaired encoder came from a cache written before steps were counted."""
    steps = [m.info.get("repair_steps") for m in members]
    counted = [int(s) for s in steps if s is not None]
    return max(counted) if len(counted) == len(steps) else None


def apply_defense(defense: Defense, data: PretrainData, trainer: Trainer,
                  undefended: Trained) -> Defended:
    """Run every hook of `defense` on the attacked pre-training set `data`."""
    kept, scores, sanitize_s = _sanitized(defense, data, trainer)
    recipe = configured_recipe(defense, trainer.spec.train)
    members = _members(defense, data, kept, recipe, trainer, undefended)
    trained_s = sum(m.info.get("seconds", 0.0) for m in members if m is not undefended)
    if any(m is not undefended for m in members):
        trained_s -= undefended.info.get("seconds", 0.0)
    clean_used, repair_s, steps = 0, 0.0, None
    if "repair" in defense.implements():
        members = [trainer.repaired(m, defense, data.clean) for m in members]
        clean_used = max(m.info.get("clean_used", 0) for m in members)
        repair_s = sum(m.info.get("seconds", 0.0) for m in members)
        steps = _repair_steps(members)
    report = DefenseReport(defense_hooks=",".join(defense.implements()), n_encoders=len(members),
                           clean_used=clean_used, repair_steps=steps,
                           defense_extra_s=sanitize_s + trained_s + repair_s, **scores)
    return Defended(members, report)
