"""Parameters of the built-in encoder methods, kept torch-free so that `pe-bench validate`
checks a suite's encoder params without importing an encoder (or torch). Each method's
decorator names its model here (`params=`)."""

from __future__ import annotations

from pydantic import Field, field_validator

from pe_bench.plugins.types import PluginParams
from pe_bench.plugins.registry import BACKBONES


class EncoderParams(PluginParams):
    """What every encoder method takes: its backbone (a name registered in
    pe_bench.encoders.backbones) and the projection sizes."""

    backbone: str = "small-cnn"
    width: int | None = Field(None, ge=4, le=1024)  # backbone width; None = its default
    proj_hidden_dim: int = Field(512, ge=8)
    proj_dim: int = Field(128, ge=8)

    @field_validator("backbone")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in BACKBONES:
            raise ValueError(BACKBONES.unknown_message(name))
        return name


class SimCLRParams(EncoderParams):
    temperature: float = Field(0.5, gt=0, le=10)


class MoCoParams(EncoderParams):
    temperature: float = Field(0.2, gt=0, le=10)
    momentum: float = Field(0.99, ge=0, le=1)  # [ours] default; 0.999 in the paper (ImageNet)
    queue_size: int = Field(4096, ge=1, le=1_048_576)


class CLIPParams(EncoderParams):
    text_dim: int = Field(128, ge=16)
    text_depth: int = Field(2, ge=1, le=12)
    init_temperature: float = Field(0.07, gt=0, le=1)
