"""Frozen, JSON-serialisable trial specifications: the only objects that cross into Ray.

A `TrialSpec` fixes everything a trial's numbers depend on; its `trial_key` is the hash of its
canonical JSON, so the same cell always gets the same key, across runs and restores. The
training recipe of a cell is resolved once, by `resolve_recipe`; whatever changes a recipe
afterwards (a defense, fine-tuning) goes through `TrainSpec.replace`, which validates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from pe_bench.plugins.registry import plugin_versions

# Part of every cached encoder's key: bump it whenever a change to worker/train.py, worker/augment.py or an
# encoder alters the weights a recipe produces, so an artefact cache never serves stale ones.
TRAINING_REVISION = 5


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def canonical_hash(obj: Any, n: int = 16) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace), first `n` hex digits."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# what two trials may differ in and still be paired as defense settings of one cell
DEFENSE_SIDE = ("suite", "seed", "defense", "plugins")


def defense_free_key(spec: Mapping[str, Any]) -> str:
    """Identity of a trial's cell without its defense and seed, from the spec as JSON: what
    `leaderboard --defense-pairs` pairs two defense settings within (data, encoder, attack with
    its params and target selection, training, evaluation; not the suite's name)."""
    return canonical_hash({k: v for k, v in spec.items() if k not in DEFENSE_SIDE})


class PluginRef(Frozen):
    """A plugin by name with its validated parameters (defaults filled in)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`attacks: [none]` means `attacks: [{name: none}]`."""
        return {"name": value} if isinstance(value, str) else value


class CaptionMatching(Frozen):
    """RoCLIP's caption matching (pe_bench.defenses.roclip), consulted by image–text encoders:
    a pool of the most recent captions' embeddings (a first-in first-out queue over the seeded
    batch order; `pool_size` of them, or unset `pool_fraction` of the clean pre-training set's
    size, at least 1), and in every `every`-th epoch (1-based) each image is paired with its
    nearest pool caption instead of its own."""

    pool_size: int | None = Field(None, ge=1)
    pool_fraction: float = Field(0.022, gt=0, le=1)
    every: int = Field(2, ge=1)

    def pool(self, n_images: int) -> int:
        """The pool's size for a pre-training set of `n_images` clean images."""
        return self.pool_size or max(1, round(self.pool_fraction * n_images))


class TrainSpec(Frozen):
    """The contrastive pre-training recipe shared by every encoder method."""

    epochs: int = Field(100, ge=1, le=10_000)
    batch_size: int = Field(256, ge=2, le=65_536)
    # None = the encoder method's own default (EncoderMethod.optimizer_defaults); resolved
    # when the grid is expanded, so every trial spec names concrete values
    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    lr: float | None = Field(None, gt=0, le=10)
    weight_decay: float | None = Field(None, ge=0, le=1)
    warmup_epochs: int = Field(0, ge=0)
    crop_min_scale: float = Field(0.08, gt=0, le=1)
    # `localized`: the second view's crop is drawn inside the first view's box grown by
    # `crop_margin` (a fraction of the box) on each side (a conservative-crop defense; 0.2 is
    # CorruptEncoder's default, see pe_bench.worker.augment.localized_boxes)
    crop_mode: Literal["independent", "localized"] = "independent"
    crop_margin: float = Field(0.2, ge=0, le=1)
    # SimCLR's colour-distortion strength s: ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) w.p. 0.8
    # (Chen et al., ICML 2020, appendix A). s = 0.5 gives (0.4, 0.4, 0.4, 0.1), the CIFAR recipes
    # of SimCLR and MoCo v2; until TRAINING_REVISION 4 the default was 0.4 = (0.32, ..., 0.08)
    color_jitter: float = Field(0.5, ge=0, le=1)
    color_jitter_prob: float = Field(0.8, ge=0, le=1)
    grayscale_prob: float = Field(0.2, ge=0, le=1)
    flip_prob: float = Field(0.5, ge=0, le=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # bfloat16 autocast of the training step (losses in float32) where the device runs bf16
    # natively: CUDA, or a CPU with AVX512-BF16 / AMX (pe_bench.worker.train.training_precision);
    # fp32 elsewhere, and everywhere with `amp: false`. The precision used is in the encoder's key
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    # in-processing defenses that change how an image–text encoder pairs images with captions
    # (None: its own captions); image-only encoders ignore it. Left out of the dump when None,
    # so every recipe (and key) without it is what it was before the field existed
    caption_matching: CaptionMatching | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("caption_matching", 0) is None:
            del data["caption_matching"]
        return data

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes`, validated like a suite's `train` (`model_copy(update=...)`
        would accept any value); raises pydantic's ValidationError."""
        return self.model_validate({**self.model_dump(), **changes})


def resolve_recipe(train: TrainSpec, overrides: Mapping[str, Any],
                   optimizer_defaults: Mapping[str, Any]) -> TrainSpec:
    """The recipe one cell trains with: the suite's `train`, then its dataset setting's
    `train` overrides, then the encoder method's optimiser defaults for whatever optimiser
    field is still unset; validated. Pure, and the defaults come as a plain mapping, so the
    grid resolves recipes without importing an encoder (or torch)."""
    merged = {**train.model_dump(), **overrides}
    unset = {k: v for k, v in optimizer_defaults.items() if merged.get(k) is None}
    return TrainSpec.model_validate({**merged, **unset})


class EvalSpec(Frozen):
    """Downstream evaluation: a classifier trained on clean labelled data over frozen features
    (`linear`: logistic regression; `mlp`: 512-256-C with dropout), or `zero-shot` from
    class-name prompts (image–text encoders only)."""

    probe: Literal["linear", "mlp", "zero-shot"] = "linear"
    C: float = Field(1.0, gt=0)  # linear: inverse L2 strength
    max_iter: int = Field(1000, ge=10)  # linear: solver iterations
    mlp_epochs: int = Field(100, ge=1)
    mlp_lr: float = Field(1e-3, gt=0)
    mlp_batch_size: int = Field(256, ge=1)
    batch_size: int = Field(512, ge=1)  # feature extraction


class TaskSpec(Frozen):
    """A downstream task: a labelled dataset, optionally capped in size. At each seed a
    stratified `attacker_split` of its (capped) train split is held out as the attacker's own
    labelled data: the probe of every cell trains on the rest, and those images leave the
    clean pre-training set too."""

    name: str
    dataset: PluginRef
    train_size: int | None = Field(None, ge=10)
    test_size: int | None = Field(None, ge=10)
    attacker_split: float = Field(0.2, gt=0, le=0.5)


class PretrainSpec(Frozen):
    """The unlabeled pre-training set: a dataset's train split (optionally its first N rows),
    plus the train splits of any datasets in `also` (the union, e.g. CIFAR-10 ∪ digits)."""

    dataset: PluginRef
    also: tuple[PluginRef, ...] = ()
    max_images: int | None = Field(None, ge=10)  # per dataset

    def refs(self) -> tuple[PluginRef, ...]:
        return (self.dataset, *self.also)


class Resources(Frozen):
    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0)


class TrialSpec(Frozen):
    """One grid cell at one seed."""

    suite: str
    dataset: str  # the name of the dataset setting (grid axis)
    seed: int
    pretrain: PretrainSpec
    tasks: tuple[TaskSpec, ...]
    encoder: PluginRef
    attack: PluginRef
    defense: PluginRef
    train: TrainSpec
    evaluation: EvalSpec
    plugins: tuple[str, ...] = ()

    def _payload(self, *, seed: bool = True) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"suite"})
        if not seed:
            data.pop("seed")
        return data

    @property
    def trial_key(self) -> str:
        """Identity of this cell at this seed (suite name excluded: same work, same key)."""
        return canonical_hash(self._payload())

    @property
    def cell_key(self) -> str:
        """Identity of the cell across seeds: rows with one cell_key are aggregated."""
        return canonical_hash(self._payload(seed=False))

    @property
    def defense_free_key(self) -> str:
        """The cell's identity without its defense (`defense_free_key`)."""
        return defense_free_key(self.model_dump(mode="json"))

    def plugins_used(self, kinds: tuple[str, ...] = ("attacks", "datasets", "defenses", "encoders"),
                     *, poisoned: bool = True) -> dict[str, tuple[str, ...]]:
        """Registry names, by kind, of the plugins this trial uses (of `kinds`); without
        `poisoned`, not the attack (a clean encoder does not depend on it). The task datasets
        always count: poisons are built from task images, and the attacker's held-out split of
        each task is removed from the clean pre-training set too."""
        datasets = {r.name for r in self.pretrain.refs()} | {t.dataset.name for t in self.tasks}
        names = {"encoders": (self.encoder.name,), "attacks": (self.attack.name,) if poisoned else (),
                 "defenses": (self.defense.name,), "datasets": tuple(sorted(datasets))}
        return {k: names[k] for k in kinds if names[k]}

    def pretrain_key(self, poisons: dict[str, Any] | None, train: TrainSpec | None = None,
                     data: dict[str, Any] | None = None, precision: str = "fp32") -> str:
        """Identity of a pre-training run: everything the encoder's weights depend on,
        including the distribution and version of each plugin behind them (so a changed
        plugin never receives encoders its old code trained). `train` overrides the recipe
        (in-processing defenses); `data` names a subset of the pre-training set
        (pre-processing and partitioning defenses); `precision` is the one the training step
        runs in on the worker (`amp` is a request, met where the hardware allows)."""
        payload = {
            "revision": TRAINING_REVISION,
            "pretrain": self.pretrain.model_dump(mode="json"),
            "encoder": self.encoder.model_dump(mode="json"),
            "train": (train or self.train).model_dump(mode="json"),
            "seed": self.seed,
            "precision": precision,
            "poisons": poisons,
            # the tasks' attacker splits, which leave the pre-training set (pipeline.without)
            "held_out": [{"dataset": t.dataset.model_dump(mode="json"), "train_size": t.train_size,
                          "attacker_split": t.attacker_split, "task": t.name} for t in self.tasks],
            "plugins": plugin_versions(self.plugins_used(("encoders", "attacks", "datasets"),
                                                         poisoned=poisons is not None)),
        }
        if data is not None:
            payload["data"] = data
        return canonical_hash(payload)

    def poison_id(self) -> dict[str, Any] | None:
        """What the injected images depend on (None without an attack). The defense is not
        part of it: every defense of a cell starts from the same poisoned set."""
        if self.attack.name == "none":
            return None
        return {"attack": self.attack.model_dump(mode="json"),
                "tasks": [t.model_dump(mode="json") for t in self.tasks]}
