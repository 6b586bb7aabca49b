"""Plain types every plugin kind shares (torch-free): parameters, the plugin base, a task, and
the metadata the control plane reads without importing a plugin.

A kind's metadata model lists what the grid needs to know about a plugin before any trial runs
(an attack's modalities, an encoder's optimiser defaults, ...). Built-in plugins declare it as
literal keyword arguments of their register decorator, which the registry reads from source;
the decorator also sets it on the class, where a plugin loaded through an entry point declares
it as class attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pe_bench.datasets.base import ImageArray


class PluginParams(BaseModel):
    """Parameters of a plugin: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    it injects (an encoder training on a modality the attack cannot supply is excluded)."""

    family: Family = "targeted"
    stage: Literal["data", "encoder"] = "data"
    modalities: tuple[Modality, ...] = ("image",)


class EncoderMeta(PluginMeta):
    """`modalities` it trains on; `optimizer_defaults`: its own optimiser (optimizer, lr,
    weight_decay), used for whatever a suite's `train` leaves unset."""

    modalities: tuple[Modality, ...] = ("image",)
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
