"""One trial, start to finish, without Ray: data -> attack -> pre-training (clean twin and
undefended poisoned encoder; for an encoder-stage attack, the clean twin after the attack's
`backdoor_encoder`, with nothing injected) -> defense (pre-, in-, post-processing) -> evaluate.

Returns the trial's metrics as a validated `TrialMetrics` (the worker wraps them in a row).
Every encoder goes through the artefact cache (pe_bench.worker.cached_training), so the clean twin of
a seed, and the undefended poisoned encoder every defense starts from, are trained once per
grid.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet, Task, TriggeredTest
from pe_bench.attacks.targets import task_rng
from pe_bench.worker.budget import distinct_images, target_class_share
from pe_bench.worker.cache import ArtifactCache
from pe_bench.worker.cached_training import Trained, Trainer
from pe_bench.datasets.loading import image_digests, load_dataset
from pe_bench.datasets.base import ImageArray
from pe_bench.worker.defend import apply_defense, bug_report
from pe_bench.defenses.base import PretrainData
from pe_bench.encoders.base import EncoderMethod
from pe_bench.errors import DataError
from pe_bench.worker.evaluate import Classify, evaluate, probe, vote, zero_shot
from pe_bench.store.metrics import EncoderInfo, Timings, TrialMetrics
from pe_bench.plugins.registry import ATTACKS, DEFENSES
from pe_bench.config.spec import EvalSpec, TrialSpec
from pe_bench.worker.probe_cache import cached, probe_identity
from pe_bench.worker.train import encode, pick_device

Log = Callable[[str], None]
Memo = Callable[[Classify], Classify]  # wraps a classifier (the probe cache)


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


def attacker_split(train: ImageArray, fraction: float, rng: np.random.Generator
                   ) -> tuple[ImageArray, ImageArray]:
    """(the probe's training images, the attacker's): a seeded `fraction` of every class of
    a task's train split is held out as the attacker's own labelled data, so the probe is never
    trained on an image the attacker ranked or pasted; both keep the split's order. A class
    with two images or more gives the attacker at least one and keeps at least one."""
    held = np.zeros(len(train), dtype=bool)
    for c in np.unique(train.labels):
        members = np.flatnonzero(train.labels == c)
        take = min(max(1, round(fraction * len(members))), len(members) - 1)
        held[rng.permutation(members)[:take]] = True
    return train.subset(np.flatnonzero(~held)), train.subset(np.flatnonzero(held))


def without(pre: ImageArray, tasks: tuple[Task, ...]) -> ImageArray:
    """The pre-training set less every image of an attacker split (by pixels) [ours]: the
    attacker's data is its own, neither trained on by the probe nor seen in clean pre-training."""
    held = [image_digests(t.attacker.images) for t in tasks if t.attacker is not None]
    if not held:
        return pre
    keep = ~np.isin(image_digests(pre.images), np.concatenate(held))
    return pre if keep.all() else pre.subset(np.flatnonzero(keep))


def load_inputs(spec: TrialSpec, data_dir: Path) -> tuple[ImageArray, tuple[Task, ...]]:
    """The unlabeled pre-training images and the labelled downstream tasks.

    Caps take a prefix of each split (the Parquet layouts interleave classes, so a prefix is
    class-balanced), then the seed holds out each task's attacker split; task images must share
    the pre-training resolution and channels, because poisons are built from them."""
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
        probe_train, attacker = attacker_split(
            train, t.attacker_split, task_rng(spec.seed, t.name, "attacker-split"))
        tasks.append(Task(t.name, probe_train, test, attacker))
    return without(pre, tuple(tasks)), tuple(tasks)


def classifier(models: list[EncoderMethod], spec: EvalSpec,
               memos: Sequence[Memo] = ()) -> Classify:
    """The suite's downstream classifier on top of frozen encoders; several encoders (a
    partition ensemble) each get their own classifier and vote. `memos`: per model, a wrapper
    of its classifier (the probe cache)."""

    def one(model: EncoderMethod) -> Classify:
        def features(images: np.ndarray) -> np.ndarray:
            return encode(model, images, spec.batch_size)

        if spec.probe == "zero-shot":
            return lambda task: zero_shot(features, model.zero_shot_proba, task)
        return lambda task: probe(features, task, spec)

    members = [one(m) if not memos else memos[i](one(m)) for i, m in enumerate(models)]
    return lambda task: vote([c(task) for c in members])


def pretrained(trainer: Trainer, data: PretrainData, attack: Attack, ctx: AttackContext,
               watch: Stopwatch) -> tuple[Trained, Trained]:
    """(the clean twin, the undefended poisoned encoder). A data-stage attack's poisoned encoder
    does not need the twin: while another trial trains the twin, train the poisoned encoder
    first instead of waiting (the same encoders either way, each seeded by the trial alone)."""
    spec, clean = trainer.spec, PretrainData(data.clean, PoisonSet())
    twin_label = "clean twin"
    if spec.poison_id() is None:
        twin = watch.run("pretrain_clean", lambda: trainer.encoder(clean, spec.train, twin_label))
        return twin, twin
    if attack.stage == "encoder":
        twin = watch.run("pretrain_clean", lambda: trainer.encoder(clean, spec.train, twin_label))
        return twin, watch.run("pretrain_poisoned", lambda: trainer.backdoored(twin, attack, ctx))
    early = watch.run("pretrain_clean", lambda: trainer.encoder_if_free(clean, spec.train, twin_label))
    if early is None:
        trainer.log("the clean twin is being trained by another trial: training the poisoned encoder first")
    poisoned = watch.run("pretrain_poisoned", lambda: trainer.encoder(data, spec.train, "poisoned encoder"))
    twin = early or watch.run("pretrain_clean", lambda: trainer.encoder(clean, spec.train, twin_label))
    return twin, poisoned


def probe_memos(trainer: Trainer, tally: Counter[str]) -> Callable[[list[Trained]], list[Memo]]:
    """Per encoder, a wrapper that caches its classifier's outputs by (encoder key, task)."""
    evaluation, device = trainer.spec.evaluation, pick_device(trainer.spec.train.device).type

    def memos(encoders: list[Trained]) -> list[Memo]:
        return [partial(cached, cache=trainer.cache, identity=probe_identity(e.key, evaluation, device),
                        tally=tally) for e in encoders]

    return memos


def crafted(attack: Attack, ctx: AttackContext, watch: Stopwatch, log: Log
            ) -> tuple[PoisonSet, tuple[TriggeredTest, ...], int]:
    """The attack's poisons, its triggered test inputs and how many distinct images the poisons
    are (said in the log where the attacker's data made it repeat some)."""
    poisons: PoisonSet = watch.run("attack", lambda: attack.craft(ctx))
    triggered = watch.run("attack", lambda: attack.triggered_tests(ctx))
    if (distinct := distinct_images(poisons)) < poisons.size:
        log(f"the attack's {poisons.size} poisons are {distinct} distinct images "
            "(the attacker's data cannot supply the budget without repeats)")
    return poisons, triggered, distinct


def run_trial(spec: TrialSpec, data_dir: Path, cache_root: str | Path, log: Log = lambda _: None
              ) -> TrialMetrics:
    """Run one trial; its metrics are validated here, so garbage from a plugin (a NaN, a
    probability above 1) raises a ValidationError naming the field."""
    watch = Stopwatch()
    pre, tasks = watch.run("data", lambda: load_inputs(spec, data_dir))
    trainer = Trainer(spec, pre, ArtifactCache(cache_root), log)
    attack = ATTACKS.get(spec.attack.name).from_dict(spec.attack.params)
    defense = DEFENSES.get(spec.defense.name).from_dict(spec.defense.params)
    ctx = AttackContext(pre.images, tasks, spec.seed)
    poisons, triggered, distinct = crafted(attack, ctx, watch, log)
    data = PretrainData(pre.images, poisons)
    twin, undefended = pretrained(trainer, data, attack, ctx, watch)
    report = bug_report(tasks, poisons.targets, triggered, spec.seed)
    defended = watch.run("defense", lambda: apply_defense(defense, data, trainer, undefended, twin, report))
    log("evaluating")
    tally: Counter[str] = Counter()
    memos = probe_memos(trainer, tally)
    members = [m.model for m in defended.members]
    same = len(members) == 1 and members[0] is undefended.model
    ev = spec.evaluation
    summary, per_task = watch.run("evaluate", lambda: evaluate(
        tasks, classifier([twin.model], ev, memos([twin])),
        None if same and undefended is twin else classifier(members, ev, memos(defended.members)),
        poisons.targets, None if same else classifier([undefended.model], ev, memos([undefended])),
        triggered))
    log(f"classifier outputs: {tally['hit']} from the cache, {tally['computed']} computed")
    hits = {m.key: m.hit for m in (twin, undefended, *defended.members)}
    info = defended.members[0].info
    fitted = json.dumps(info["fitted"], sort_keys=True) if info.get("fitted") else None
    return TrialMetrics(
        **summary.model_dump(), n_pretrain=len(pre.images), n_poisons=poisons.size,
        n_distinct_poisons=distinct,
        poison_class_share=target_class_share(poisons, pre, tasks, triggered), tasks=tuple(per_task),
        defense=defended.report, cache_hits=sum(hits.values()), timings=Timings(**watch.seconds),
        encoder=EncoderInfo(device=info.get("device"), train_images_per_s=info.get("images_per_second"),
                            fitted=fitted, train_precision=info.get("precision")),
    )
