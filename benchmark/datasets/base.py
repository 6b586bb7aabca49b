"""The dataset plugin API: subclass `Dataset`, implement `load`, register it.

A dataset returns one split as an `ImageArray` (uint8 images, int64 labels, class names) at the
resolution and channels its `Params` ask for. Torch-free: datasets are listed and validated by
the control plane. The loading machinery (decode cache, Parquet reader, data-dir resolution)
is in `pe_bench.data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from pe_bench.plugin_types import PluginParams

__all__ = ["Dataset", "DatasetParams", "ImageArray", "ImageDatasetParams"]


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


class DatasetParams(PluginParams):
    """Options every dataset takes; unknown keys are errors so typos in suites surface."""

    resolution: int = Field(32, ge=8, le=512)  # output height = width
    channels: Literal[1, 3] = 3


class ImageDatasetParams(DatasetParams):
    """Options of datasets that come either as Parquet files or in torchvision's layout."""

    source: Literal["auto", "parquet", "torchvision"] = "auto"
    download: bool = False  # torchvision's opt-in download, for machines with a network


class Dataset:
    """Base of dataset plugins: `load` returns one split; `cache_token` enables the disk cache.

    `load` must be deterministic (the same files give the same arrays) and return exactly
    `params.resolution` x `params.resolution` images with `params.channels` channels."""

    Params: ClassVar[type[DatasetParams]] = DatasetParams

    def __init__(self, params: DatasetParams) -> None:
        self.params = params

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> Dataset:
        return cls(cls.Params.model_validate(params or {}))

    def load(self, split: str, data_dir: Path) -> ImageArray:
        """Decode `split` ("train" or "test") from the files under `data_dir`."""
        raise NotImplementedError

    def cache_token(self, split: str, data_dir: Path) -> str | None:
        """Identity of the source files (see `pe_bench.data.files_token`); None means: do not
        cache the decoded split on disk."""
        return None
