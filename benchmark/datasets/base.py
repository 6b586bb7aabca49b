"""The dataset plugin API: subclass `Dataset`, implement `load` (and `locate`), register it.

A dataset returns one split as an `ImageArray` (uint8 images, int64 labels, class names) at the
resolution and channels its `Params` ask for. Torch-free: datasets are listed and validated by
the control plane. The loading machinery (decode cache, Parquet reader, data-dir resolution)
is in `pe_bench.datasets.loading`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from pe_bench.plugins.types import ImageArray, PluginParams

__all__ = ["Dataset", "DatasetParams", "ImageArray", "ImageDatasetParams"]


class DatasetParams(PluginParams):
    """Options every dataset takes; unknown keys are errors so typos in suites surface."""

    resolution: int = Field(32, ge=8, le=512)  # output height = width
    channels: Literal[1, 3] = 3


class ImageDatasetParams(DatasetParams):
    """Options of datasets that come either as Parquet files or in torchvision's layout."""

    source: Literal["auto", "parquet", "torchvision"] = "auto"
    download: bool = False  # torchvision's opt-in download, for machines with a network


class Dataset:
    """Base of dataset plugins: `load` returns one split; `cache_token` enables the disk cache;
    `locate` lets a missing split fail before the run.

    `load` must be deterministic (the same files give the same arrays) and return exactly
    `params.resolution` x `params.resolution` images with `params.channels` channels."""

    Params: ClassVar[type[DatasetParams]] = DatasetParams

    def __init__(self, params: DatasetParams) -> None:
        self.params = params

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> Dataset:
        return cls(cls.Params.model_validate(params or {}))

    def load(self, split: str, data_dir: Path) -> ImageArray:
        """Decode `split` ("train" or "test") from the files under `data_dir` (a `Path`): uint8
        images (N, C, H, W) with C = `params.channels`, H = W = `params.resolution`, int64
        labels (N,) indexing the class names."""
        raise NotImplementedError

    def cache_token(self, split: str, data_dir: Path) -> str | None:
        """Identity of the source files (see `pe_bench.datasets.loading.files_token`); None means: do not
        cache the decoded split on disk."""
        return None

    def locate(self, split: str, data_dir: Path) -> str | None:
        """Where `split`'s files are, found without reading them: a folder, or a phrase such as
        "built in", which `pe-bench validate` prints. Raises DataError, one line naming the
        folders looked in and how to point at them (`--data-dir`, `PE_BENCH_DATA`), when they
        are missing: `run` and `validate` call it for every split a suite reads, before any
        trial starts. Cheap and torch-free. None (the default): this dataset cannot tell, and
        its data is not checked before the run."""
        return None
