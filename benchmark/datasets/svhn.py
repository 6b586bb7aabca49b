"""`svhn`: SVHN cropped digits, offline.

Netzer, Wang, Coates, Bissacco, Wu, Ng, "Reading Digits in Natural Images with Unsupervised
Feature Learning", NIPS Deep Learning Workshop 2011. MATLAB files; label 10 is the digit 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from pe_bench.datasets.loading import first_line, fit_images
from pe_bench.datasets._local_files import LocalDataset, LocalParams
from pe_bench.datasets.base import DatasetParams, ImageArray
from pe_bench.errors import DataError
from pe_bench.plugins.registry import register_dataset

SVHN_CLASSES = tuple(str(d) for d in range(10))


class SvhnParams(LocalParams):
    extra: bool = False  # add extra_32x32.mat (531,131 easier digits) to the train split


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and digits 0..9 of one .mat file (X: 32x32x3xN, y: 1..10)."""
    from scipy.io import loadmat  # lazy: scipy takes a second to import

    try:
        mat = loadmat(path, variable_names=("X", "y"))
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"cannot read SVHN file {path}: {first_line(exc)}") from exc
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected variables X and y")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(f"{path}: X is {x.shape}, expected (32, 32, 3, {len(y)}) for {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: labels {y.min()}..{y.max()}, expected 1..10 (10 is the digit 0)")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8), y % 10


@register_dataset("svhn")
class Svhn(LocalDataset):
    """SVHN cropped digits, 32x32 (73,257 train, 26,032 test; Netzer et al. 2011)."""

    Params: ClassVar[type[DatasetParams]] = SvhnParams
    params: SvhnParams
    name = folder = "svhn"
    layout = "the SVHN file {split}_32x32.mat (and extra_32x32.mat with extra: true)"
    obtain = ("put the cropped-digits .mat files from the SVHN site (Netzer et al. 2011) there, or run "
              "torchvision.datasets.SVHN(root='<data dir>/svhn', split=..., download=True) "
              "on a networked machine")

    def native_files(self, split: str, data_dir: Path) -> list[Path]:
        extra = self.params.extra and split == "train"
        names = [f"{split}_32x32.mat"] + (["extra_32x32.mat"] if extra else [])
        files = [self.base(data_dir) / n for n in names]
        return files if all(f.is_file() for f in files) else []

    def read_native(self, split: str, data_dir: Path) -> ImageArray:
        parts = [_read_svhn(f) for f in self.native_files(split, data_dir)]
        images = np.concatenate([x for x, _ in parts])
        labels = np.concatenate([y for _, y in parts])
        p = self.params
        return ImageArray(fit_images(images, p.resolution, p.channels), labels, SVHN_CLASSES)
