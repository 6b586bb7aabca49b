"""Offline loaders for STL-10 and SVHN, and their base class: local files only, never a download.

Like cifar10, each reads `<data_dir>/<name>/`: a Parquet export (`<split>-*.parquet`, the
Hugging Face layout) first, else the files as the dataset's authors distribute them, read by the
small readers here, so no run reaches for a network (there is no `download` option: fetch the
files once where a network exists). Decoded splits go through the shared decode cache
(`cache_token` = the identity of the source files).

- STL-10: Coates, Ng, Lee, "An Analysis of Single-Layer Networks in Unsupervised Feature
  Learning", AISTATS 2011. Binary files, 96x96 RGB, labels 1..10; `stl10-unlabeled` is its
  100,000-image unlabeled split, for pre-training only.
- SVHN (cropped digits): Netzer, Wang, Coates, Bissacco, Wu, Ng, "Reading Digits in Natural
  Images with Unsupervised Feature Learning", NIPS Deep Learning Workshop 2011. MATLAB files;
  label 10 is the digit 0.

EuroSAT (Helber et al. 2019) and the generic `imagefolder` (one folder per class) are in
pe_bench.datasets_folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from pe_bench.data import (
    Dataset,
    DatasetParams,
    ImageArray,
    first_line,
    locate_split,
    read_parquet_split,
    source_token,
)
from pe_bench.datasets import fit_images
from pe_bench.errors import DataError
from pe_bench.registry import register_dataset

STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
SVHN_CLASSES = tuple(str(d) for d in range(10))


class LocalParams(DatasetParams):
    """`source`: auto (Parquet if present, else the distributed files), parquet, or files."""

    source: Literal["auto", "parquet", "files"] = "auto"


class LocalDataset(Dataset):
    """A dataset under `<data_dir>/<folder>/`: Parquet files first, else its distributed files.

    Subclasses list the files of a split (`native_files`, empty when absent) and read them."""

    Params: ClassVar[type[DatasetParams]] = LocalParams
    params: LocalParams
    name: ClassVar[str]  # the registry name, for error messages
    folder: ClassVar[str]
    layout: ClassVar[str]  # the distributed layout ("{split}" filled in), for error messages
    obtain: ClassVar[str]  # where the files come from, for error messages

    def base(self, data_dir: Path) -> Path:
        return data_dir / self.folder

    def native_files(self, split: str, data_dir: Path) -> list[Path]:
        raise NotImplementedError

    def read_native(self, split: str, data_dir: Path) -> ImageArray:
        raise NotImplementedError

    def _locate(self, split: str, data_dir: Path) -> tuple[str, list[Path]] | None:
        return locate_split(self.params.source, self.base(data_dir), split, "files",
                            lambda: self.native_files(split, data_dir))

    def cache_token(self, split: str, data_dir: Path) -> str | None:
        return source_token(self._locate(split, data_dir))

    def load(self, split: str, data_dir: Path) -> ImageArray:
        found = self._locate(split, data_dir)
        if found is None:
            raise DataError(self.missing_message(split, data_dir))
        if found[0] == "files":
            return self.read_native(split, data_dir)
        p = self.params
        return read_parquet_split(self.base(data_dir), split, p.resolution, p.channels)

    def hint(self, data_dir: Path) -> str:
        """How to provide the files (the last clause of the missing-data message)."""
        return f"pass --data-dir DIR or set PE_BENCH_DATA to a folder holding {self.folder}/; {self.obtain}"

    def missing_message(self, split: str, data_dir: Path) -> str:
        """One line: what was looked for where, and how to provide it."""
        base, looked = self.base(data_dir), []
        if self.params.source in ("auto", "parquet"):
            looked.append(f"Parquet files {base / f'{split}-*.parquet'}")
        if self.params.source in ("auto", "files"):
            looked.append(f"{self.layout.format(split=split)} in {base}")
        where = " and ".join(looked)
        return f"dataset {self.name!r} ({split}) not found: looked for {where}; {self.hint(data_dir)}"


class Stl10Params(LocalParams):
    resolution: int = Field(96, ge=8, le=512)  # native 96x96; 32 joins CIFAR-sized grids


def _stl10_images(path: Path) -> np.ndarray:
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
        images = _stl10_images(x_file)
        labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1
        if len(labels) != len(images) or (len(labels) and not 0 <= labels.min() <= labels.max() <= 9):
            raise DataError(f"{y_file}: expected {len(images)} labels in 1..10 (one byte each)")
        p = self.params
        fitted = np.ascontiguousarray(fit_images(images, p.resolution, p.channels))
        return ImageArray(fitted, labels, _stl10_names(names_file[0] if names_file else None))


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

    def load(self, split: str, data_dir: Path) -> ImageArray:
        if split != "train":
            raise DataError("dataset 'stl10-unlabeled' has no test split: use it for pre-training only")
        return super().load(split, data_dir)

    def read_native(self, split: str, data_dir: Path) -> ImageArray:
        p = self.params
        images = _stl10_images(self.native_files(split, data_dir)[0])
        fitted = np.ascontiguousarray(fit_images(images, p.resolution, p.channels))
        return ImageArray(fitted, np.zeros(len(fitted), np.int64), ("unlabeled",))


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
