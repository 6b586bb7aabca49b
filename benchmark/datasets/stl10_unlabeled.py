"""`stl10-unlabeled`: STL-10's 100,000-image unlabeled split, for pre-training only."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from pe_bench.datasets.loading import fit_images
from pe_bench.datasets.base import DatasetParams, ImageArray
from pe_bench.datasets.stl10 import Stl10, Stl10Params, stl10_images
from pe_bench.errors import DataError
from pe_bench.plugins.registry import register_dataset


class Stl10UnlabeledParams(Stl10Params):
    source: Literal["files"] = "files"  # Parquet exports label this split -1, which no task takes


@register_dataset("stl10-unlabeled")
class Stl10Unlabeled(Stl10):
    """STL-10's 100,000 unlabeled images (`unlabeled_X.bin`), for pre-training only (the split
    STL-10 provides for it): its train split is these images under one class, "unlabeled"."""

    Params: ClassVar[type[DatasetParams]] = Stl10UnlabeledParams
    name = "stl10-unlabeled"
    layout = "the STL-10 binary file stl10_binary/unlabeled_X.bin"

    def stem(self, split: str) -> str:
        return "unlabeled"

    def locate(self, split: str, data_dir: Path) -> str:
        if split != "train":
            raise DataError("dataset 'stl10-unlabeled' has no test split: use it for pre-training only")
        return super().locate(split, data_dir)

    def load(self, split: str, data_dir: Path) -> ImageArray:
        if split != "train":
            raise DataError("dataset 'stl10-unlabeled' has no test split: use it for pre-training only")
        return super().load(split, data_dir)

    def read_native(self, split: str, data_dir: Path) -> ImageArray:
        p = self.params
        images = stl10_images(self.native_files(split, data_dir)[0])
        fitted = np.ascontiguousarray(fit_images(images, p.resolution, p.channels))
        return ImageArray(fitted, np.zeros(len(fitted), np.int64), ("unlabeled",))
