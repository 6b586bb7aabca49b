"""`check_attack`: the contract every attack plugin meets, on a tiny synthetic task."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet, TargetPair, TriggeredTest
from pe_bench.plugins.types import ImageArray
from pe_bench.plugins.types import AttackMeta, PluginParams, Task
from pe_bench.testing.common import check_params, fail


def _split(rng: np.random.Generator, classes: int, per_class: int, size: int) -> ImageArray:
    """Class c is a flat grey level plus noise, so targets and references are well defined."""
    labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    noise = rng.integers(-20, 21, (len(labels), 3, size, size))
    images = np.clip(40 + 50 * labels[:, None, None, None] + noise, 0, 255).astype(np.uint8)
    return ImageArray(images, labels, tuple(f"class{c}" for c in range(classes)))


def tiny_context(seed: int = 0, n: int = 64, size: int = 8) -> AttackContext:
    """64 unlabeled pre-training images and one 4-class task (12 train, 6 test images per
    class) of 8x8 RGB pixels; every array read-only, as the engine hands them out."""
    rng = np.random.default_rng(1234)
    pretrain = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    task = Task("toy", _split(rng, 4, 12, size), _split(rng, 4, 6, size))
    for array in (pretrain, task.train.images, task.train.labels, task.test.images, task.test.labels):
        array.flags.writeable = False
    return AttackContext(pretrain, (task,), seed)


def _craft(cls: type[Attack]) -> PoisonSet:
    attack = cls.from_dict(cls.contract_params())
    try:
        poisons = attack.craft(tiny_context())
    except ValueError as exc:
        if "read-only" in str(exc):
            raise fail(cls, "craft must not modify the context's arrays (copy them first)") from exc
        raise
    if not isinstance(poisons, PoisonSet):
        raise fail(cls, f"craft must return a PoisonSet, not {type(poisons).__name__}")
    return poisons


def _check_groups(cls: type[Attack], poisons: PoisonSet, channels: int) -> None:
    for g in poisons.groups:
        if not (isinstance(g, np.ndarray) and g.dtype == np.uint8 and g.ndim == 4 and len(g)):
            raise fail(cls, "each poison group must be a non-empty uint8 (M, C, H, W) array")
        if g.shape[1] != channels:
            raise fail(cls, f"poisons must have the pre-training images' {channels} channels")


def _check_targets(cls: type[Attack], poisons: PoisonSet, ctx: AttackContext) -> None:
    tasks = {t.name: t for t in ctx.tasks}
    for pair in poisons.targets:
        task = tasks.get(pair.task) if isinstance(pair, TargetPair) else None
        if task is None or not 0 <= pair.index < len(task.test):
            raise fail(cls, f"target {pair} must be a TargetPair naming a task and one of its test inputs")
        classes = len(task.test.classes)
        if pair.true_class != task.test.labels[pair.index] or not 0 <= pair.target_class < classes:
            raise fail(cls, f"target {pair}: true_class must be the input's label, target_class a class")
        if pair.target_class == pair.true_class:
            raise fail(cls, f"target {pair}: the target class must differ from the true class")


def _check_budget(cls: type[Attack], params: PluginParams, poisons: PoisonSet, n_clean: int) -> None:
    rate = getattr(params, "poison_rate", None)
    if rate is not None and poisons.size > max(len(poisons.targets), math.ceil(rate * n_clean)):
        raise fail(cls, f"{poisons.size} poisons exceed the budget poison_rate x {n_clean} clean images "
                        "(at least one per target)")


def _check_declared(cls: type[Attack], meta: AttackMeta) -> None:
    """The params its rows are labelled and budgeted by are its own (a typo would leave every
    row's `targets` or `poison_rate` column empty)."""
    named = {*meta.label_params, *meta.label_marks, *([meta.budget_param] if meta.budget_param else [])}
    unknown = sorted(named - set(cls.Params.model_fields))
    if unknown:
        raise fail(cls, f"label_params, label_marks and budget_param name {unknown}: no params of "
                        f"{cls.Params.__name__}")


def _triggered(cls: type[Attack]) -> tuple[TriggeredTest, ...]:
    return tuple(cls.from_dict(cls.contract_params()).triggered_tests(tiny_context()))


def _check_triggered(cls: type[Attack], family: str, ctx: AttackContext) -> None:
    """A backdoor's triggered test inputs: one set per task, every test input of another class
    than the target, each changed by the trigger, deterministic; a targeted attack has none."""
    found = _triggered(cls)
    if family == "targeted":
        if found:
            raise fail(cls, "a targeted attack has no triggered test inputs (declare family='backdoor')")
        return
    tasks = {t.name: t for t in ctx.tasks}
    if sorted(t.task for t in found) != sorted(tasks):
        raise fail(cls, "a backdoor returns one TriggeredTest per task from triggered_tests")
    for trig in found:
        test = tasks[trig.task].test
        others = np.flatnonzero(test.labels != trig.target_class)
        if not np.array_equal(trig.index, others):
            raise fail(cls, f"task {trig.task}: triggered inputs must be every test input not of the "
                            "target class")
        if trig.images.dtype != np.uint8 or trig.images.shape != test.images[others].shape:
            raise fail(cls, "triggered images must be uint8, one per index, shaped like the test images")
        if (trig.images == test.images[others]).reshape(len(others), -1).all(1).any():
            raise fail(cls, f"task {trig.task}: the trigger leaves some test inputs unchanged")
    again = _triggered(cls)
    if any(not np.array_equal(a.images, b.images) for a, b in zip(found, again, strict=True)):
        raise fail(cls, "triggered_tests must be deterministic under a seed")


def _check_captions(cls: type[Attack], meta: AttackMeta, poisons: PoisonSet) -> None:
    """An attack injecting text gives every poison a caption (token ids, one int64 row per
    image, group by group); an image-only attack gives none."""
    if "text" not in meta.modalities:
        if poisons.captions:
            raise fail(cls, "poisons carry captions: declare modalities=('image', 'text')")
        return
    if len(poisons.captions) != len(poisons.groups):
        raise fail(cls, "an attack injecting text gives one caption array per poison group")
    for g, c in zip(poisons.groups, poisons.captions, strict=True):
        if not (isinstance(c, np.ndarray) and c.dtype == np.int64 and c.ndim == 2 and len(c) == len(g)):
            raise fail(cls, "each caption array must be int64 (M, tokens), one row per image of its group")


def _same(a: PoisonSet, b: PoisonSet) -> bool:
    return (a.targets == b.targets and len(a.groups) == len(b.groups)
            and len(a.captions) == len(b.captions)
            and all(np.array_equal(x, y) for x, y in zip(a.groups + a.captions, b.groups + b.captions,
                                                          strict=True)))


def _backdoored(cls: type[Attack]) -> dict[str, Any]:
    """The state dict of a tiny seeded SimCLR encoder after the attack's `backdoor_encoder`."""
    import torch

    from pe_bench.plugins.registry import ENCODERS

    encoder = ENCODERS.get("simclr")
    torch.manual_seed(0)
    model = encoder.from_dict(encoder.contract_params()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = cls.from_dict(cls.contract_params()).backdoor_encoder(model, tiny_context())
    after = out.state_dict() if hasattr(out, "state_dict") else {}
    return {"before": before, "after": {k: v.detach().clone() for k, v in after.items()}}


def _check_encoder_stage(cls: type[Attack], poisons: PoisonSet) -> None:
    """An encoder-stage attack injects nothing; `backdoor_encoder` returns a model of the same
    architecture (state-dict keys and shapes), changed, and deterministically."""
    import torch

    if poisons.size or poisons.targets:
        raise fail(cls, "an encoder-stage attack injects nothing: craft returns no poisons or targets")
    first, second = _backdoored(cls), _backdoored(cls)
    before, after = first["before"], first["after"]
    if {k: v.shape for k, v in after.items()} != {k: v.shape for k, v in before.items()}:
        raise fail(cls, "backdoor_encoder must return the encoder with its state-dict keys and shapes")
    if all(torch.equal(after[k], before[k]) for k in before):
        raise fail(cls, "backdoor_encoder left the encoder unchanged")
    if any(not torch.equal(after[k], second["after"][k]) for k in after):
        raise fail(cls, "backdoor_encoder must be deterministic under a seed")


def check_attack(cls: type[Attack]) -> dict[str, Any]:
    """Every contract an attack plugin must meet; returns what it crafted on the tiny task."""
    check_params(cls, Attack, PluginParams, {}, cls.contract_params())
    meta = AttackMeta.of(cls)
    _check_declared(cls, meta)
    ctx, poisons = tiny_context(), _craft(cls)
    if meta.stage == "encoder":
        _check_encoder_stage(cls, poisons)
    _check_groups(cls, poisons, ctx.pretrain.shape[1])
    _check_targets(cls, poisons, ctx)
    params = cls.from_dict(cls.contract_params()).params
    _check_budget(cls, params, poisons, len(ctx.pretrain))
    _check_captions(cls, meta, poisons)
    if bool(poisons.size) != bool(meta.modalities):
        raise fail(cls, "an attack that injects images declares modalities=('image', ...); one that "
                        "injects nothing declares modalities=()")
    if not _same(poisons, _craft(cls)):
        raise fail(cls, "craft must be deterministic under a seed")
    _check_triggered(cls, cls.family_of(params), ctx)
    return {"poisons": poisons.size, "targets": len(poisons.targets), "metadata": meta}
