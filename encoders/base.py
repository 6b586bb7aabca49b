"""The encoder-method interface: a backbone whose features feed downstream probes, and a
training loss over two augmented views. The one training loop (pe_bench.train) drives it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from pe_bench.encoders.backbones import build_backbone
from pe_bench.plugins import PluginParams
from pe_bench.spec import TrainSpec, resolve_recipe


class EncoderParams(PluginParams):
    backbone: Literal["small-cnn", "resnet18", "vit-tiny"] = "small-cnn"
    width: int | None = Field(None, ge=4, le=1024)  # backbone width; None = its default
    proj_hidden_dim: int = Field(512, ge=8)
    proj_dim: int = Field(128, ge=8)


class EncoderMethod(nn.Module):
    """Base class of encoder plugins. Subclasses define `training_loss(view1, view2)`."""

    Params: ClassVar[type[EncoderParams]] = EncoderParams
    modalities: ClassVar[tuple[str, ...]] = ("image",)
    # the method's own optimiser, used for whatever a suite's `train` leaves unset
    optimizer_defaults: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6}

    def __init__(self, params: EncoderParams, in_channels: int = 3) -> None:
        super().__init__()
        self.params = params
        self.backbone = build_backbone(params.backbone, in_channels, params.width)
        self.feature_dim: int = self.backbone.feature_dim  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, params: dict | None, in_channels: int = 3) -> EncoderMethod:
        return cls(cls.Params.model_validate(params or {}), in_channels=in_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Representation used downstream (before any projection head)."""
        return self.backbone(x)

    def training_loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """Hook after each optimiser step (momentum encoders update here)."""


def with_optimizer_defaults(recipe: TrainSpec, method: type[EncoderMethod]) -> TrainSpec:
    """`recipe` with its unset optimiser fields taken from the method's defaults."""
    return resolve_recipe(recipe, {}, method.optimizer_defaults)
