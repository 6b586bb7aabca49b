"""Base of the datasets stored as one folder of images per class (EuroSAT, `imagefolder`).

Classes are the folder names in name order (torchvision's ImageFolder order). Where no split
is given, one is made per class [ours]: each image's place in its class is fixed by a hash of
the split seed and its path relative to the dataset, and the first round(n * test_fraction)
go to test. So the split is stratified, the same on every machine and for every trial seed,
and adding or removing an image moves at most a few others. Parquet files take precedence, as
for every dataset read from local files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image
from pydantic import Field

from pe_bench.datasets.loading import first_line, stack_images
from pe_bench.datasets._local_files import LocalDataset, LocalParams
from pe_bench.datasets.base import DatasetParams, ImageArray
from pe_bench.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
Samples = list[tuple[Path, int]]  # (image file, class index)


class FolderParams(LocalParams):
    """How a split is made where the files have none; ignored for pre-split folders."""

    test_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = Field(0, ge=0)


def class_folders(root: Path) -> list[Path]:
    """Subfolders of `root` in name order, hidden ones skipped."""
    if not root.is_dir():
        return []
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.name)


def folder_samples(root: Path, classes: tuple[str, ...]) -> Samples:
    """Every image under `root/<class>/` (at any depth), class by class, in path order."""
    samples: Samples = []
    for index, name in enumerate(classes):
        files = sorted((root / name).rglob("*")) if (root / name).is_dir() else []
        samples.extend((f, index) for f in files
                       if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file())
    return samples


def _rank(path: Path, root: Path, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}/{path.relative_to(root).as_posix()}".encode(), digest_size=8).digest()


def split_samples(samples: Samples, root: Path, split: str, fraction: float, seed: int) -> Samples:
    """`split`'s share of `samples`, stratified: per class, round(n * fraction) images (at least
    one, never all) go to test, chosen by `_rank`; returned in path order."""
    by_class: dict[int, list[Path]] = {}
    for path, label in samples:
        by_class.setdefault(label, []).append(path)
    chosen: Samples = []
    for label, paths in by_class.items():
        ranked = sorted(paths, key=lambda p: (_rank(p, root, seed), p))
        n_test = min(len(ranked) - 1, max(1, round(len(ranked) * fraction)))
        part = ranked[:n_test] if split == "test" else ranked[n_test:]
        chosen.extend((p, label) for p in part)
    return sorted(chosen)


def _opened(paths: Iterable[Path]) -> Iterator[Image.Image]:
    """Decode images one by one, naming the file that fails."""
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, ValueError) as exc:  # UnidentifiedImageError is an OSError
            raise DataError(f"cannot decode image {path}: {first_line(exc)}") from exc
        yield image


class FolderDataset(LocalDataset):
    """Class folders of images; subclasses say where they are (`roots`)."""

    Params: ClassVar[type[DatasetParams]] = FolderParams
    params: FolderParams

    def __init__(self, params: DatasetParams) -> None:
        super().__init__(params)
        self._scans: dict[tuple[str, Path], tuple[Samples, tuple[str, ...]]] = {}

    def roots(self, split: str, data_dir: Path) -> tuple[Path, list[Path], bool] | None:
        """(folder holding `split`'s class folders, folders whose subfolders name the classes,
        whether to make the split), or None when the layout is absent."""
        raise NotImplementedError

    def scan(self, split: str, data_dir: Path) -> tuple[Samples, tuple[str, ...]]:
        """`split`'s (image, class) pairs and the class names; remembered, as both the cache
        token and the loader need them and EuroSAT has 27,000 files."""
        key = (split, data_dir)
        if key not in self._scans:
            found, samples = self.roots(split, data_dir), []
            classes: tuple[str, ...] = ()
            if found is not None:
                root, class_roots, make_split = found
                classes = tuple(sorted({d.name for r in class_roots for d in class_folders(r)}))
                samples = folder_samples(root, classes)
                if make_split:
                    p = self.params
                    samples = split_samples(samples, root, split, p.test_fraction, p.split_seed)
            self._scans[key] = (samples, classes)
        return self._scans[key]

    def native_files(self, split: str, data_dir: Path) -> list[Path]:
        return [path for path, _ in self.scan(split, data_dir)[0]]

    def read_native(self, split: str, data_dir: Path) -> ImageArray:
        samples, classes = self.scan(split, data_dir)
        labels = [label for _, label in samples]
        p = self.params
        images = stack_images(_opened(path for path, _ in samples), len(samples), p.resolution, p.channels)
        return ImageArray(images, np.asarray(labels, dtype=np.int64), classes)
