"""Apply a defense's stage hooks to one trial and measure what the defense cost and caught.

pre-processing (a filter: `sanitize`, or `score` + `flag`; or `score_trained` + `flag` after a
first training) -> in-processing (`configure_training`, `partition`) -> post-processing
(`repair`), and encoder-level detection (`score_encoder` of the attacked encoder and its clean
twin). A defense that changes nothing before training reuses the undefended poisoned encoder
(one per grid, shared with the `none` cell and every post-processing defense); anything it
trains is cached by the images it saw and its recipe. Costs are the defense's own work (CPU
seconds of its hooks, training steps and images against the undefended training), recorded when
an artefact is built and replayed from the cache, so they do not move with the machine's load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from pe_bench.attacks.base import TargetPair, TriggeredTest
from pe_bench.worker.cached_training import Trained, Trainer
from pe_bench.defenses.base import FILTERS, BugReport, Defense, Embed, PretrainData
from pe_bench.store.detection import image_detection
from pe_bench.errors import PluginError
from pe_bench.store.metrics import DefenseReport
from pe_bench.plugins.types import Task
from pe_bench.plugins.registry import plugin_versions
from pe_bench.config.spec import TrainSpec, canonical_hash
from pe_bench.worker.train import encode


@dataclass
class Defended:
    """The encoders behind the defended classifier (k > 1: their predictions vote) and the
    defense's costs and, for filters and detectors, how well it separated poisons from clean."""

    members: list[Trained]
    report: DefenseReport

    @property
    def cache_hits(self) -> int:
        return sum(m.hit for m in self.members)


@dataclass
class Work:
    """The defense's own work: CPU seconds of its hooks, CPU seconds of the pre-training it
    caused net of the undefended training it replaced, and optimiser steps / training images
    against the undefended training. A CPU total is None once any part of it is unknown (an
    artefact cached before CPU time was recorded)."""

    hook_cpu: float | None = 0.0
    train_cpu: float | None = 0.0
    steps: int = 0
    images: int = 0

    def hooks(self, cpu: Any) -> None:
        self.hook_cpu = None if cpu is None or self.hook_cpu is None else self.hook_cpu + float(cpu)

    def trained(self, info: dict[str, Any], sign: int = 1) -> None:
        cpu = info.get("cpu_s")
        self.train_cpu = None if cpu is None or self.train_cpu is None else self.train_cpu + sign * float(cpu)
        self.steps += sign * int(info["steps"])
        self.images += sign * int(info["images"])

    def report(self) -> dict[str, Any]:
        return {"defense_cpu_s": self.hook_cpu, "extra_train_cpu_s": self.train_cpu,
                "extra_steps": self.steps, "extra_images": self.images}


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


def embedder(trained: Trained, batch_size: int) -> Embed:
    """Features of uint8 images under a trained encoder (what `score_trained` receives)."""
    return lambda images: encode(trained.model, np.asarray(images), batch_size)


def _filtered(defense: Defense, data: PretrainData, trainer: Trainer, undefended: Trained
              ) -> tuple[PretrainData, dict[str, Any], float | None]:
    """Run the filter, or load what it removed and scored from the artefact cache (keyed by the
    pre-training set, the poisons, the seed, the defense, the versions of the plugins behind
    them and, for `score_trained`, the encoder it read): a filter runs once per grid. Returns
    the kept set, the filter's detection metrics and the CPU seconds the filter took."""
    hooks = [h for h in FILTERS if h in defense.implements()]
    if not hooks:  # not a filter: nothing to score
        return data, {"n_removed": 0}, 0.0
    spec, trained = trainer.spec, "score_trained" in hooks
    key = canonical_hash({"filter": spec.defense.model_dump(mode="json"), "seed": spec.seed,
                          "pretrain": spec.pretrain.model_dump(mode="json"),
                          "poisons": spec.poison_id(), "data": data.identity(),
                          "plugins": plugin_versions(spec.plugins_used(
                              ("defenses", "attacks", "datasets"), poisoned=spec.poison_id() is not None)),
                          **({"encoder": undefended.key} if trained else {})})

    def build() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        embed = embedder(undefended, spec.evaluation.batch_size) if trained else None
        start, cpu = time.perf_counter(), time.process_time()
        _, removed, scores = defense.filter(data, spec.seed, embed)
        state = {"removed": torch.from_numpy(removed)}
        if scores is not None:
            state["scores"] = torch.from_numpy(scores)
        return state, {"seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}

    scoring = hooks != ["sanitize"]
    state, info, _ = trainer.cache.get_or_create("filters", key, build,
                                                 usable=lambda st: _filter_state(st, scoring, data.size))
    removed = state["removed"].numpy()
    scores = state["scores"].numpy() if scoring else None
    metrics = {**filter_scores(data, removed), **image_detection(scores, removed, len(data.clean), data.size)}
    return data.without(removed), metrics, info.get("cpu_s")


def _filter_state(state: dict[str, torch.Tensor], scoring: bool, size: int) -> bool:
    """Whether a cached filter result is what `_filtered` stores (else it is recomputed)."""
    removed, scores = state.get("removed"), state.get("scores")
    if set(state) != ({"removed", "scores"} if scoring else {"removed"}) or removed is None:
        return False
    return removed.ndim == 1 and (scores is None or tuple(scores.shape) == (size,))


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


def _encoder_scores(defense: Defense, trainer: Trainer, pool: np.ndarray, twin: Trained | None,
                    undefended: Trained, work: Work) -> dict[str, Any]:
    """`score_encoder` of the attacked encoder and of its clean twin (with the verdicts at the
    defense's threshold); without an attack the undefended encoder is the twin, scored once as
    clean. Returns the report fields and the trusted images the detector used."""
    if "score_encoder" not in defense.implements():
        return {}
    out: dict[str, Any] = {"clean_used": 0}
    pairs = [("_clean", twin)] if twin is not None else []
    if twin is None or undefended.key != twin.key:
        pairs.append(("", undefended))
    for suffix, encoder in pairs:
        scored = trainer.encoder_score(encoder, defense, pool)
        work.hooks(scored.get("cpu_s"))
        verdict = defense.flag_encoder(scored["score"])
        out.update({f"encoder_score{suffix}": scored["score"],
                    f"encoder_flagged{suffix}": None if verdict is None else bool(verdict),
                    "clean_used": max(out["clean_used"], int(scored.get("clean_used", 0)))})
    return out


def _repair_steps(members: list[Trained]) -> int | None:
    """Optimiser steps the repair took per encoder (the most of any member); None where a
    repaired encoder came from a cache written before steps were counted."""
    steps = [m.info.get("repair_steps") for m in members]
    counted = [int(s) for s in steps if s is not None]
    return max(counted) if len(counted) == len(steps) else None


BUG_STREAM = 0xB06  # tags the bug report's draws apart from other seeded streams of a trial


def bug_report(tasks: tuple[Task, ...], targets: tuple[TargetPair, ...],
               triggered: tuple[TriggeredTest, ...], seed: int) -> BugReport | None:
    """The one misclassified input a user reports (Mudjacking's threat model): the first target
    pair's input for a targeted attack, else a seeded draw among the first task's triggered test
    inputs; the reference is a seeded draw among the other test inputs of its true class. Whether
    the input really was misclassified is not checked [ours]: the attack meant it to be."""
    rng = np.random.default_rng((seed, BUG_STREAM))
    by_name = {t.name: t for t in tasks}
    if targets:
        task, index, bug = by_name.get(targets[0].task), targets[0].index, None
    elif triggered:
        j = int(rng.integers(len(triggered[0].index)))
        task, index, bug = by_name.get(triggered[0].task), int(triggered[0].index[j]), triggered[0].images[j]
    else:
        return None
    if task is None:
        return None
    label = int(task.test.labels[index])
    same = np.flatnonzero(task.test.labels == label)
    others = same[same != index]
    reference = task.test.images[int(rng.choice(others))] if len(others) else task.test.images[index]
    return BugReport(task.name, label, task.test.images[index] if bug is None else bug, reference)


def _repair(defense: Defense, members: list[Trained], trainer: Trainer, pool: np.ndarray,
            work: Work, report: BugReport | None = None) -> tuple[list[Trained], dict[str, Any]]:
    """Post-process every member; counts its CPU, steps and images into `work`."""
    if "repair" not in defense.implements():
        return members, {}
    repaired = [trainer.repaired(m, defense, pool, report) for m in members]
    for m in repaired:
        work.hooks(m.info.get("cpu_s"))
        work.steps += int(m.info.get("repair_steps") or 0)
        work.images += int(m.info.get("repair_images") or 0)
    return repaired, {"clean_used": max(m.info.get("clean_used", 0) for m in repaired),
                      "repair_steps": _repair_steps(repaired)}


def apply_defense(defense: Defense, data: PretrainData, trainer: Trainer, undefended: Trained,
                  twin: Trained | None = None, bug: BugReport | None = None) -> Defended:
    """Run every hook of `defense` on the attacked pre-training set `data` (`twin`: the clean
    twin, which encoder-level detectors score as the negative; `bug`: the bug report a
    repair may read, see `bug_report`)."""
    work = Work()
    kept, scores, filter_cpu = _filtered(defense, data, trainer, undefended)
    work.hooks(filter_cpu)
    recipe = configured_recipe(defense, trainer.spec.train)
    members = _members(defense, data, kept, recipe, trainer, undefended)
    own = [m for m in members if m is not undefended]
    for m in own:
        work.trained(m.info)
    if own and "score_trained" not in defense.implements():  # it replaced the undefended training
        work.trained(undefended.info, sign=-1)
    members, repair = _repair(defense, members, trainer, data.clean, work, bug)
    detected = _encoder_scores(defense, trainer, data.clean, twin, undefended, work)
    clean_used = max(repair.get("clean_used", 0), detected.pop("clean_used", 0))
    report = DefenseReport(defense_hooks=",".join(defense.implements()), n_encoders=len(members),
                           clean_used=clean_used, repair_steps=repair.get("repair_steps"),
                           **scores, **detected, **work.report())
    return Defended(members, report)
