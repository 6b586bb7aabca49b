"""`cifar10-coarse`: CIFAR-10 relabelled vehicle vs animal (a 2-class task on the same images)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from pe_bench.datasets.base import Dataset, DatasetParams, ImageArray, ImageDatasetParams
from pe_bench.errors import DataError
from pe_bench.plugins.registry import DATASETS, register_dataset


@register_dataset("cifar10-coarse")
class Cifar10Coarse(Dataset):
    """CIFAR-10 relabelled as a 2-class task: vehicle (airplane, automobile, ship, truck) vs
    animal (the other six). The same images as `cifar10`, read through its cache."""

    Params: ClassVar[type[DatasetParams]] = ImageDatasetParams
    VEHICLES: ClassVar[frozenset[str]] = frozenset({"airplane", "automobile", "ship", "truck"})

    def locate(self, split: str, data_dir: Path) -> str | None:
        fine: Dataset = DATASETS.get("cifar10").from_dict(self.params.model_dump())
        try:
            return fine.locate(split, data_dir)
        except DataError as exc:
            raise DataError(f"dataset 'cifar10-coarse' reads cifar10's files: {exc}") from exc

    def load(self, split: str, data_dir: Path) -> ImageArray:
        from pe_bench.datasets.loading import load_dataset

        fine = load_dataset("cifar10", split, self.params.model_dump(), data_dir)
        coarse = np.array([0 if c in self.VEHICLES else 1 for c in fine.classes], dtype=np.int64)
        return ImageArray(fine.images, coarse[fine.labels], ("vehicle", "animal"))
