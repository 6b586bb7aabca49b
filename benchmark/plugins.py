"""Base classes and data types shared by attack and defense plugins (torch-free).

An attack declares its stage (`data`: it injects images into the pre-training set) and the
modalities it needs; a defense implements any of the stage hooks. Both receive validated,
frozen `Params` and plain numpy data, so they run the same in the driver and in Ray workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pe_bench.data import ImageArray


class PluginParams(BaseModel):
    """Parameters of a plugin: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin:
    """A configurable plugin; `Params` is validated from the suite before any trial runs."""

    Params: ClassVar[type[PluginParams]] = PluginParams

    def __init__(self, params: PluginParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> Plugin:
        return cls(cls.Params.model_validate(params or {}))


@dataclass(frozen=True)
class Task:
    """A downstream task: labelled train/test splits with their own classes."""

    name: str
    train: ImageArray
    test: ImageArray


@dataclass(frozen=True)
class TargetPair:
    """An attacker-chosen clean test input (by index in its task's test split) and class."""

    task: str
    index: int
    true_class: int
    target_class: int


@dataclass(frozen=True)
class PoisonSet:
    """What a data-poisoning attack adds to the pre-training set.

    `groups` holds uint8 (M, C, H, W) arrays; canvases of different shapes (side-by-side vs
    stacked) live in different groups so augmentation stays batched.
    """

    groups: tuple[np.ndarray, ...] = ()
    targets: tuple[TargetPair, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(sum(len(g) for g in self.groups))


@dataclass(frozen=True)
class AttackContext:
    """What the attacker sees: the clean pre-training images (never their labels) and the
    downstream tasks' data, from which it draws target inputs and reference inputs."""

    pretrain: np.ndarray
    tasks: tuple[Task, ...]
    seed: int


class Attack(Plugin):
    """A poisoning attack. `craft` returns poisons plus the target pairs it attacks."""

    stage: ClassVar[Literal["data", "encoder"]] = "data"
    # modalities of the data the attack injects: an encoder training on a modality the
    # attack cannot supply (e.g. captions for CLIP) makes the cell incompatible
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    def craft(self, ctx: AttackContext) -> PoisonSet:
        raise NotImplementedError


@dataclass(frozen=True)
class PretrainData:
    """The pre-training set as the victim receives it: clean images plus injected ones.
    Kept apart only so training can pair a poisoned encoder with its clean twin."""

    clean: np.ndarray
    poisons: PoisonSet


class Defense(Plugin):
    """A defense implements any of three hooks; the defaults change nothing.

    - pre-processing: `sanitize(data) -> (data, removed)`
    - in-processing:  `configure_training(train_config) -> train_config`
    - post-processing: `repair(encoder, clean_unlabeled) -> encoder`
    """

    def sanitize(self, data: PretrainData) -> tuple[PretrainData, np.ndarray]:
        return data, np.zeros(0, dtype=np.int64)

    def configure_training(self, train: BaseModel) -> BaseModel:
        return train

    def repair(self, encoder: Any, clean_unlabeled: np.ndarray | None) -> Any:
        return encoder
