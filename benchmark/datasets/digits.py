"""`digits`: scikit-learn's 8x8 handwritten digits, bundled with scikit-learn (no download)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from pe_bench.datasets.loading import fit_images
from pe_bench.datasets.base import Dataset, ImageArray
from pe_bench.plugins.registry import register_dataset


@register_dataset("digits")
class Digits(Dataset):
    """scikit-learn's 8x8 handwritten digits: ships with scikit-learn, so runs need no download.

    The train/test split is fixed for everyone (stratified, 25 % test, seed 0), independent of
    any trial seed, so results on it are comparable across runs."""

    TEST_FRACTION: ClassVar[float] = 0.25
    SPLIT_SEED: ClassVar[int] = 0

    def locate(self, split: str, data_dir: Path) -> str:
        return "built in (scikit-learn)"

    def load(self, split: str, data_dir: Path) -> ImageArray:
        from sklearn.datasets import load_digits  # lazy: scikit-learn takes seconds to import
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        labels = bunch.target.astype(np.int64)
        train, test = train_test_split(
            np.arange(len(labels)),
            test_size=self.TEST_FRACTION,
            random_state=self.SPLIT_SEED,
            stratify=labels,
        )
        rows = np.sort(train if split == "train" else test)
        images = fit_images(pixels[rows], self.params.resolution, self.params.channels)
        return ImageArray(images, labels[rows], tuple(str(i) for i in range(10)))
