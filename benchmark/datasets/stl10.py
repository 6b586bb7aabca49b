"""`stl10`: STL-10's labelled splits, offline.

Coates, Ng, Lee, "An Analysis of Single-Layer Networks in Unsupervised Feature Learning",
AISTATS 2011. Binary files, 96x96 RGB, labels 1..10 (or a Parquet export).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from pe_bench.datasets.loading import first_line, fit_images
from pe_bench.datasets._local_files import LocalDataset, LocalParams
from pe_bench.datasets.base import DatasetParams, ImageArray
from pe_bench.errors import DataError
from pe_bench.plugins.registry import register_dataset

STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")


class Stl10Params(LocalParams):
    resolution: int = Field(96, ge=8, le=512)  # native 96x96; 32 joins CIFAR-sized grids


def stl10_images(path: Path) -> np.ndarray:
    """(N, 3, 96, 96) view of an X file: each image is 3 channels, each stored column-major."""
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r")  # the unlabeled file is 2.8 GB
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read STL-10 file {path}: {first_line(exc)}") from exc
    if raw.size % (3 * 96 * 96):
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of 3x96x96 images")
    return raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)  # (C, W, H) on disk -> (C, H, W)


def _stl10_names(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return STL10_CLASSES
    names = tuple(n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip())
    if len(names) != 10:
        raise DataError(f"{path}: expected 10 class names, one a line, found {len(names)}")
    return names


@register_dataset("stl10")
class Stl10(LocalDataset):
    """STL-10's labelled splits (5,000 train, 8,000 test, 10 classes; Coates et al. 2011)."""

    Params: ClassVar[type[DatasetParams]] = Stl10Params
    name = folder = "stl10"
    layout = "STL-10 binary files stl10_binary/{split}_X.bin and {split}_y.bin"
    obtain = ("unpack stl10_binary.tar.gz from the STL-10 site (Coates et al. 2011) there, or run "
              "torchvision.datasets.STL10(root='<data dir>/stl10', download=True) on a networked machine")

    def stem(self, split: str) -> str:
        return split

    def native_files(self, split: str, data_dir: Path) -> list[Path]:
        folder = self.base(data_dir) / "stl10_binary"
        names = [f"{self.stem(split)}_X.bin"] + ([f"{split}_y.bin"] if self.stem(split) == split else [])
        files = [folder / n for n in names]
        if not all(f.is_file() for f in files):
            return []
        return files + [f for f in [folder / "class_names.txt"] if f.is_file()]

    def read_native(self, split: str, data_dir: Path) -> ImageArray:
        x_file, y_file, *names_file = self.native_files(split, data_dir)
        images = stl10_images(x_file)
        labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1
        if len(labels) != len(images) or (len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
            raise DataError(f"{y_file}: expected {len(images)} labels in 1..10 (one byte each)")
        p = self.params
        fitted = np.ascontiguousarray(fit_images(images, p.resolution, p.channels))
        return ImageArray(fitted, labels, _stl10_names(names_file[0] if names_file else None))
