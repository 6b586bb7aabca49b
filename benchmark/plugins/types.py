"""Plain types every plugin kind shares (torch-free): the image array, parameters, the plugin
base, a task, and the metadata the control plane reads without importing a plugin.

A kind's metadata model lists what the grid needs to know about a plugin before any trial runs
(an attack's modalities, an encoder's optimiser defaults, ...). Built-in plugins declare it as
literal keyword arguments of their register decorator, which the registry reads from source;
the decorator also sets it on the class, where a plugin loaded through an entry point declares
it as class attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from collections.abc import Iterator
from types import UnionType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import torch

@dataclass(frozen=True)
class ImageArray:
    """One decoded split: uint8 images (N, C, H, W), int64 labels (N,) and the class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        """Reject malformed arrays here, so a faulty plugin fails at load, not mid-training."""
        im, lb = self.images, self.labels
        if im.dtype != np.uint8 or im.ndim != 4 or im.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 (N, C, H, W), C 1 or 3: {im.dtype} {im.shape}")
        if lb.dtype != np.int64 or lb.shape != im.shape[:1]:
            raise ValueError(f"labels must be int64 ({im.shape[0]},): {lb.dtype} {lb.shape}")
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if len(lb) and (lb.min() < 0 or lb.max() >= len(self.classes)):
            raise ValueError(f"labels {lb.min()}..{lb.max()} but {len(self.classes)} classes")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray | slice) -> ImageArray:
        """The rows selected by `index` (a slice gives views, an index array gives copies)."""
        return ImageArray(self.images[index], self.labels[index], self.classes)


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
    stacked) live in different groups so augmentation stays batched. `captions`, for attacks
    that inject image–caption pairs (modalities image+text): one int64 (M, T) array of caption
    token ids per group (`pe_bench.plugins.captions.tokenize`), row i the caption of image i;
    empty when the images carry none. Image-only encoders train on the images alone.
    """

    groups: tuple[np.ndarray, ...] = ()
    targets: tuple[TargetPair, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    captions: tuple[np.ndarray, ...] = ()

    @property
    def size(self) -> int:
        return int(sum(len(g) for g in self.groups))

    def kept(self, keep: np.ndarray) -> PoisonSet:
        """The poisons where the boolean `keep` (one entry per poison, group after group) is
        True, captions alongside their images; groups left empty are dropped."""
        groups, texts, start = [], [], 0
        for i, g in enumerate(self.groups):
            mine = keep[start:start + len(g)]
            start += len(g)
            if mine.any():
                groups.append(g[mine])
                texts += [self.captions[i][mine]] if self.captions else []
        return PoisonSet(tuple(groups), self.targets, self.info, tuple(texts))


class PluginParams(BaseModel):
    """Parameters of a plugin: unknown keys are errors, values are immutable, and types are
    strict (`false` or `"0.1"` is no number, `1` no bool), except that an int is a float and a
    list (YAML's, JSON's) is a tuple where the field is a tuple."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _lists_as_tuples(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: _as_tuples(v) if k in cls.model_fields and _holds_tuple(cls.model_fields[k].annotation)
                else v for k, v in data.items()}


def _holds_tuple(annotation: Any) -> bool:
    """Whether a field's type is, or (in a union) may be, a tuple."""
    origin = get_origin(annotation)
    if annotation is tuple or origin is tuple:
        return True
    return origin in (Union, UnionType) and any(map(_holds_tuple, get_args(annotation)))


def _as_tuples(value: Any) -> Any:
    return tuple(map(_as_tuples, value)) if isinstance(value, list) else value


class Plugin:
    """A configurable plugin; `Params` is validated from the suite before any trial runs."""

    Params: ClassVar[type[PluginParams]] = PluginParams

    def __init__(self, params: PluginParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> Self:
        return cls(cls.Params.model_validate(dict(params or {})))


@dataclass(frozen=True)
class Task:
    """A downstream task: labelled train/test splits with their own classes. `train` is what
    the downstream probe trains on; `attacker` is the attacker's own labelled data, held out
    from `train` (None: nothing was held out, e.g. a task built by hand in a test)."""

    name: str
    train: ImageArray
    test: ImageArray
    attacker: ImageArray | None = None


class PluginMeta(BaseModel):
    """What the grid knows about a plugin without importing it. `literal`: the fields can be
    declared in the register decorator (False: they are derived from the class's code)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    literal: ClassVar[bool] = True

    @classmethod
    def of(cls, plugin: Any) -> Self:
        """The metadata a loaded plugin class declares as class attributes."""
        defaults = cls()
        return cls.model_validate({f: getattr(plugin, f, getattr(defaults, f)) for f in cls.model_fields})

    def apply(self, plugin: Any, declared: Mapping[str, Any]) -> None:
        """Set the decorator's declared fields on the class (the one place they are written)."""
        for name in declared:
            setattr(plugin, name, getattr(self, name))

    def contradiction(self, plugin: Any, base: type) -> str | None:
        """Why this metadata contradicts what the class `plugin` inherits (one line), or None.
        `base` is the kind's base class: what it sets are defaults, not constraints."""
        return None

    def summary(self) -> str:
        """One short line for `pe-bench list`."""
        return ", ".join(f"{k}: {_shown(v)}" for k, v in self.model_dump().items())


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return " ".join(f"{k}={v:g}" if isinstance(v, float) else str(v) for k, v in value.items())
    return str(value)


Modality = Literal["image", "text"]
Family = Literal["targeted", "backdoor"]  # an attack's family, and what a defense is designed against


class AttackMeta(PluginMeta):
    """`family`: a targeted attack (chosen inputs -> chosen classes) or a backdoor (a trigger);
    `stage`: it injects data (`data`) or hands over an encoder (`encoder`); `modalities`: what
    it injects (an encoder training on a modality the attack cannot supply is excluded).
    What its rows say about it (pe_bench.store.results.attack_columns), so the store and the
    boards name none of its params: `label_params`, the params whose values label a line's
    target selection (the `targets` column; the attack's name on the board leaves them out);
    `label_marks`, {param: {value: mark}} appended to that label; `budget_param`, the param
    holding its poison budget (the store's `poison_rate` column)."""

    family: Family = "targeted"
    stage: Literal["data", "encoder"] = "data"
    modalities: tuple[Modality, ...] = ("image",)
    label_params: tuple[str, ...] = ()
    label_marks: Mapping[str, Mapping[str, str]] = Field(default_factory=dict)
    budget_param: str | None = None

    def summary(self) -> str:
        """One short line for `pe-bench list`: what labels and budgets its rows, where declared."""
        shown = self.model_dump(exclude={"label_params", "label_marks", "budget_param"})
        parts = [f"{k}: {_shown(v)}" for k, v in shown.items()]
        if self.label_params:
            parts.append(f"labelled by: {'+'.join([*self.label_params, *self.label_marks])}")
        return ", ".join(parts + ([f"budget: {self.budget_param}"] if self.budget_param else []))

    def contradiction(self, plugin: Any, base: type) -> str | None:
        """A subclass of a class that fixes the family (`BackdoorAttack`: backdoor, whose rows
        are evaluated on triggered inputs) declares that family, or its rows would name the
        other one. A class whose params pick its family (`family_of` overridden) declares the
        family of its default params instead."""
        own, default = (getattr(getattr(c, "family_of", None), "__func__", None) for c in (plugin, base))
        if own is not default:
            return self._family_of_defaults(plugin)
        fixer = next((c for c in plugin.__mro__[1:] if "family" in vars(c)), base)
        fixed = vars(fixer).get("family")
        if fixer is base or fixed == self.family:
            return None
        said = (f"family {self.family!r}" if "family" in self.model_fields_set
                else f"no family (so {self.family!r})")
        return (f"declares {said} but subclasses {fixer.__module__}.{fixer.__qualname__}, whose family "
                f"is {fixed!r}: declare family={fixed!r} (a class whose params pick its family "
                "overrides family_of)")

    def _family_of_defaults(self, plugin: Any) -> str | None:
        try:
            defaults = plugin.Params()
        except ValueError:  # params without defaults: nothing to compare
            return None
        picked = plugin.family_of(defaults)
        if picked == self.family:
            return None
        return f"declares family {self.family!r} but family_of(its default params) is {picked!r}"


class EncoderMeta(PluginMeta):
    """`modalities` it trains on; `optimizer_defaults`: its own optimiser (optimizer, lr,
    weight_decay), used for whatever a suite's `train` leaves unset; `label_params`: the params
    whose values the board appends to its name (`simclr/resnet18`)."""

    modalities: tuple[Modality, ...] = ("image",)
    label_params: tuple[str, ...] = ()
    optimizer_defaults: Mapping[str, Any] = Field(
        default_factory=lambda: {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6})


class DefenseMeta(PluginMeta):
    """The stage hooks a defense overrides, derived from its code (see `Defense.implements`);
    `modalities`: what an encoder must train on for the defense to apply (its class attribute;
    empty: any encoder); `families`: the attack families it was designed against (its class
    attribute; empty: either). Cells of another family still run, labelled off-target."""

    literal: ClassVar[bool] = False
    hooks: tuple[str, ...] = ()
    modalities: tuple[Modality, ...] = ()
    families: tuple[Family, ...] = ()

    @classmethod
    def of(cls, plugin: Any) -> Self:
        return cls(hooks=tuple(plugin.implements()), modalities=tuple(getattr(plugin, "modalities", ())),
                   families=tuple(getattr(plugin, "families", ())))


class DatasetMeta(PluginMeta):
    """Datasets declare nothing the grid needs."""


class TrainableEncoder(Protocol):
    """What an encoder-stage attack (`Attack.backdoor_encoder`) receives and returns: a trained
    encoder (a `torch.nn.Module`; every built-in is a `pe_bench.encoders.base.EncoderMethod`)
    whose `features` maps a normalised float batch (B, C, H, W) to float32 features (B, D) and
    whose image backbone is `backbone`. Typed here so the attack kind never imports the encoder
    kind."""

    backbone: torch.nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def eval(self) -> Self: ...

    def requires_grad_(self, requires_grad: bool = True) -> Self: ...
