"""`gtsrb`: the German Traffic Sign Recognition Benchmark from Parquet files or torchvision's layout."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pe_bench.datasets.loading import stack_images
from pe_bench.datasets._torchvision_layout import FolderImageDataset
from pe_bench.datasets.base import ImageArray
from pe_bench.errors import DataError
from pe_bench.plugins.registry import register_dataset

GTSRB_CLASSES = (
    "Speed limit (20km/h)", "Speed limit (30km/h)", "Speed limit (50km/h)",
    "Speed limit (60km/h)", "Speed limit (70km/h)", "Speed limit (80km/h)",
    "End of speed limit (80km/h)", "Speed limit (100km/h)", "Speed limit (120km/h)",
    "No passing", "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection", "Priority road", "Yield", "Stop", "No vehicles",
    "Vehicles over 3.5 metric tons prohibited", "No entry", "General caution",
    "Dangerous curve to the left", "Dangerous curve to the right", "Double curve",
    "Bumpy road", "Slippery road", "Road narrows on the right", "Road work",
    "Traffic signals", "Pedestrians", "Children crossing", "Bicycles crossing",
    "Beware of ice/snow", "Wild animals crossing", "End of all speed and passing limits",
    "Turn right ahead", "Turn left ahead", "Ahead only", "Go straight or right",
    "Go straight or left", "Keep right", "Keep left", "Roundabout mandatory",
    "End of no passing", "End of no passing by vehicles over 3.5 metric tons",
)  # fmt: skip


@register_dataset("gtsrb")
class Gtsrb(FolderImageDataset):
    """GTSRB: traffic-sign crops in 43 classes (Stallkamp et al. 2012), resized to square.

    torchvision appends "gtsrb" to its root itself, so its root is the data dir: the layout
    lands in `<data_dir>/gtsrb/GTSRB/...` like every other source of this dataset."""

    folder = "gtsrb"
    torchvision_class = "GTSRB"
    torchvision_layout = "GTSRB/Training/<class>/*.ppm, GTSRB/Final_Test/Images, GT-final_test.csv"

    def torchvision_kwargs(self, split: str, data_dir: Path) -> dict[str, Any]:
        return {"root": str(data_dir), "split": split}

    def _samples(self, split: str, data_dir: Path) -> list[tuple[Path, int]]:
        """(image file, class id) pairs; class = folder number (train) or the CSV (test)."""
        base = data_dir / self.folder
        if split == "train":
            root = base / "GTSRB" / "Training"
            folders = sorted(d for d in root.glob("*") if d.is_dir() and d.name.isdigit())
            return [(f, int(d.name)) for d in folders for f in sorted(d.rglob("*.ppm"))]
        images, table = base / "GTSRB" / "Final_Test" / "Images", base / "GT-final_test.csv"
        if not (images.is_dir() and table.is_file()):
            return []
        with table.open(newline="") as handle:
            rows = csv.DictReader(handle, delimiter=";", skipinitialspace=True)
            try:
                return [(images / r["Filename"], int(r["ClassId"])) for r in rows]
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{table}: expected columns Filename and ClassId") from exc

    def torchvision_files(self, split: str, data_dir: Path) -> list[Path]:
        samples = self._samples(split, data_dir)
        extra = [data_dir / self.folder / "GT-final_test.csv"] if split == "test" else []
        return [path for path, _ in samples] + extra if samples else []

    def read_torchvision(self, split: str, data_dir: Path) -> ImageArray:
        samples = self._samples(split, data_dir)
        labels = np.array([label for _, label in samples], dtype=np.int64)
        if labels.min() < 0 or labels.max() >= len(GTSRB_CLASSES):
            raise DataError(f"{data_dir / self.folder}: class ids outside 0..42")
        pils = (Image.open(path) for path, _ in samples)
        p = self.params
        try:
            images = stack_images(pils, len(samples), p.resolution, p.channels)
        except OSError as exc:
            raise DataError(f"cannot read GTSRB image: {exc}") from exc
        return ImageArray(images, labels, GTSRB_CLASSES)
