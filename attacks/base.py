"""The attack plugin API: subclass `Attack`, implement `craft`, register it.

An attack sees what a real attacker sees (`AttackContext`: the clean pre-training images, never
their labels, and the downstream tasks' data) and returns a `PoisonSet`: the images it injects
and the target pairs it attacks. Torch-free: attacks run on plain numpy arrays, the same in the
driver and in Ray workers. Metadata the grid and the store read (family, stage, modalities,
the params that label its rows; see `pe_bench.plugins.types.AttackMeta`) is declared in
`@register_attack(...)` or, for a plugin loaded through an entry point, as class attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from pe_bench.plugins.types import (AttackMeta, Modality, Plugin, PluginParams, PoisonSet, TargetPair, Task,
                                    TrainableEncoder)

__all__ = ["Attack", "AttackContext", "PluginParams", "PoisonSet", "TargetPair", "Task", "TriggeredTest"]
_DEFAULTS = AttackMeta()


@dataclass(frozen=True)
class TriggeredTest:
    """A backdoor's test-time inputs for one task: the test inputs whose true class is not the
    target class (`index`, positions in the task's test split) with the trigger applied
    (`images`, uint8 (M, C, H, W), row i from test input index[i]). ASR is the share of them a
    downstream classifier assigns to `target_class`."""

    task: str
    target_class: int
    index: np.ndarray
    images: np.ndarray


@dataclass(frozen=True)
class AttackContext:
    """What the attacker sees: the clean pre-training images (never their labels; uint8
    (N, C, H, W), read-only) and the downstream tasks' data (`Task`: `ImageArray` splits of
    uint8 images and int64 labels), from which it draws target inputs and reference inputs;
    `seed`, the trial seed its randomness derives from."""

    pretrain: np.ndarray
    tasks: tuple[Task, ...]
    seed: int


class Attack(Plugin):
    """A poisoning attack. `craft` returns poisons plus the target pairs it attacks; it must be
    deterministic given `ctx.seed` (draw randomness from generators seeded by it)."""

    family: ClassVar[Literal["targeted", "backdoor"]] = _DEFAULTS.family
    stage: ClassVar[Literal["data", "encoder"]] = _DEFAULTS.stage
    modalities: ClassVar[tuple[Modality, ...]] = _DEFAULTS.modalities
    label_params: ClassVar[tuple[str, ...]] = _DEFAULTS.label_params
    label_marks: ClassVar[Mapping[str, Mapping[str, str]]] = _DEFAULTS.label_marks
    budget_param: ClassVar[str | None] = _DEFAULTS.budget_param

    def craft(self, ctx: AttackContext) -> PoisonSet:
        raise NotImplementedError

    @classmethod
    def family_of(cls, params: PluginParams) -> Literal["targeted", "backdoor"]:
        """The family of the rows this attack makes with `params`: the declared one, unless a
        param picks between variants of different families (carlini-terzis's `variant`)."""
        return cls.family

    def triggered_tests(self, ctx: AttackContext) -> tuple[TriggeredTest, ...]:
        """The test-time inputs a backdoor is evaluated on (see `pe_bench.attacks.backdoor`);
        a targeted attack has none: its target pairs are clean test inputs."""
        return ()

    def backdoor_encoder(self, model: TrainableEncoder, ctx: AttackContext) -> TrainableEncoder:
        """Stage `encoder` only (the supply-chain threat model): the attacker's modified copy of
        the clean pre-trained `model` (which it may change in place and return). The engine
        calls it once per clean twin and caches the result; it must be deterministic given
        `ctx.seed` and keep the model's architecture (state-dict keys and shapes)."""
        raise NotImplementedError

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        """Params for pe_bench.testing's contract run on a tiny task (64 pre-training images,
        8x8 pixels, 4 classes); override when the defaults need more data than that."""
        return {}
