"""`cifar10`: CIFAR-10 from Parquet files or torchvision's `cifar-10-batches-py` layout."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pe_bench.datasets.loading import fit_images
from pe_bench.datasets._torchvision_layout import FolderImageDataset
from pe_bench.datasets.base import ImageArray
from pe_bench.errors import DataError
from pe_bench.plugins.registry import register_dataset


def _unpickle(path: Path) -> dict[str, Any]:
    """One CIFAR batch file with str keys, whether pickled by Python 2 or by Python 3."""
    try:
        with path.open("rb") as handle:
            raw = pickle.load(handle, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read CIFAR batch file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise DataError(f"cannot read CIFAR batch file {path}: not a pickled dict")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in raw.items()}


@register_dataset("cifar10")
class Cifar10(FolderImageDataset):
    """CIFAR-10: 32x32 colour images in 10 classes (Krizhevsky 2009)."""

    folder = "cifar10"
    torchvision_class = "CIFAR10"
    torchvision_layout = "cifar-10-batches-py"

    def torchvision_kwargs(self, split: str, data_dir: Path) -> dict[str, Any]:
        return {"root": str(data_dir / self.folder), "train": split == "train"}

    def torchvision_files(self, split: str, data_dir: Path) -> list[Path]:
        base = data_dir / self.folder / "cifar-10-batches-py"
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        files = [base / n for n in [*names, "batches.meta"]]
        return files if all(f.is_file() for f in files) else []

    def read_torchvision(self, split: str, data_dir: Path) -> ImageArray:
        """Read the pickles directly: torchvision's CIFAR10 insists on the original md5s."""
        *batch_files, meta_file = self.torchvision_files(split, data_dir)
        batches = [_unpickle(f) for f in batch_files]
        try:
            data = np.concatenate([np.asarray(b["data"], np.uint8) for b in batches])
            labels = np.concatenate([np.asarray(b["labels"], np.int64) for b in batches])
            names = _unpickle(meta_file)["label_names"]
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
            images = data.reshape(-1, 3, 32, 32)
            return ImageArray(fit_images(images, self.params.resolution, self.params.channels),
                              labels, classes)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed CIFAR batch files in {meta_file.parent}: {exc}") from exc
