"""Built-in datasets: scikit-learn's digits (offline), CIFAR-10 and GTSRB, any Parquet folder.

CIFAR-10 and GTSRB are read from `<data_dir>/<name>/`: Parquet files (the Hugging Face export,
as in the shared data folder) first, then torchvision's on-disk layout. Both layouts are read by
small readers here; torchvision is imported only to download (`download: true`), because its
CIFAR10 class rejects any batch file whose md5 differs (re-pickled or test copies) and importing
it costs seconds of torch start-up just to list files.
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import Field

from pe_bench.data import (
    Dataset,
    DatasetParams,
    ImageArray,
    ImageDatasetParams,
    files_token,
    first_line,
    locate_split,
    parquet_files,
    read_parquet_split,
    source_token,
    stack_images,
)
from pe_bench.errors import DataError
from pe_bench.registry import register_dataset

DATA_HINT = "pass --data-dir DIR or set PE_BENCH_DATA to a folder holding {folder}/ ({layouts})"


def fit_images(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """Bring uint8 (N, C, H, W) arrays to the requested size and channels (no-op if they match)."""
    n, c, h, w = images.shape
    if (c, h, w) == (channels, resolution, resolution):
        return images
    pils = (Image.fromarray(x[0] if c == 1 else x.transpose(1, 2, 0)) for x in images)
    return stack_images(pils, n, resolution, channels)


@register_dataset("digits")
class Digits(Dataset):
    """scikit-learn's 8x8 handwritten digits: ships with scikit-learn, so runs need no download.

    The train/test split is fixed for everyone (stratified, 25 % test, seed 0), independent of
    any trial seed, so results on it are comparable across runs."""

    TEST_FRACTION: ClassVar[float] = 0.25
    SPLIT_SEED: ClassVar[int] = 0

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


class FolderImageDataset(Dataset):
    """A dataset in `<data_dir>/<folder>/`: Parquet files, else torchvision's layout.

    Subclasses name the folder, the torchvision class (used to download) and its layout."""

    Params: ClassVar[type[DatasetParams]] = ImageDatasetParams
    params: ImageDatasetParams
    folder: ClassVar[str]
    torchvision_class: ClassVar[str]
    torchvision_layout: ClassVar[str]  # how the layout looks, for error messages

    def torchvision_kwargs(self, split: str, data_dir: Path) -> dict[str, Any]:
        """Constructor arguments (besides download) of the torchvision class."""
        raise NotImplementedError

    def torchvision_files(self, split: str, data_dir: Path) -> list[Path]:
        """The files of torchvision's layout for `split`; empty when it is absent or incomplete."""
        raise NotImplementedError

    def read_torchvision(self, split: str, data_dir: Path) -> ImageArray:
        """Decode `split` from torchvision's layout (present, see `torchvision_files`)."""
        raise NotImplementedError

    def _locate(self, split: str, data_dir: Path) -> tuple[str, list[Path]] | None:
        """Which source `split` comes from, honouring `source`, and its files."""
        return locate_split(self.params.source, data_dir / self.folder, split, "torchvision",
                            lambda: self.torchvision_files(split, data_dir))

    def cache_token(self, split: str, data_dir: Path) -> str | None:
        return source_token(self._locate(split, data_dir))

    def load(self, split: str, data_dir: Path) -> ImageArray:
        found = self._locate(split, data_dir)
        if found is None and self.params.download and self.params.source != "parquet":
            self.download(split, data_dir)
            found = self._locate(split, data_dir)
        if found is None:
            raise DataError(self._missing_message(split, data_dir))
        if found[0] == "torchvision":
            return self.read_torchvision(split, data_dir)
        p = self.params
        return read_parquet_split(data_dir / self.folder, split, p.resolution, p.channels)

    def download(self, split: str, data_dir: Path) -> None:
        """Fetch `split` with torchvision (it verifies the archive's checksum)."""
        import torchvision.datasets  # lazy: pulls in torch

        constructor = getattr(torchvision.datasets, self.torchvision_class)
        try:
            constructor(**self.torchvision_kwargs(split, data_dir), download=True)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"dataset {self.folder!r}: download failed: {first_line(exc)}") from exc

    def _missing_message(self, split: str, data_dir: Path) -> str:
        """One line: what was looked for where, and how to provide it."""
        base = data_dir / self.folder
        looked, layouts = [], []
        if self.params.source in ("auto", "parquet"):
            looked.append(f"Parquet files {base / f'{split}-*.parquet'}")
            layouts.append("Parquet files train-*.parquet/test-*.parquet")
        if self.params.source in ("auto", "torchvision"):
            looked.append(f"torchvision's layout in {base}")
            layouts.append(f"torchvision's {self.torchvision_layout}")
        hint = DATA_HINT.format(folder=self.folder, layouts=" or ".join(layouts))
        if self.params.source != "parquet":
            hint += "; or set download: true where a network exists"
        where = " and ".join(looked)
        return f"dataset {self.folder!r} ({split}) not found: looked for {where}; {hint}"


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


class ParquetParams(DatasetParams):
    """`path`: a folder of train-*.parquet/test-*.parquet; a relative one is under the data dir."""

    path: str = Field(min_length=1)


@register_dataset("parquet")
class ParquetFolder(Dataset):
    """Any image dataset exported to Parquet in the Hugging Face layout (img/image + label)."""

    Params: ClassVar[type[DatasetParams]] = ParquetParams
    params: ParquetParams

    def directory(self, data_dir: Path) -> Path:
        path = Path(self.params.path).expanduser()
        return path if path.is_absolute() else data_dir / path

    def cache_token(self, split: str, data_dir: Path) -> str | None:
        files = parquet_files(self.directory(data_dir), split)
        return files_token(files) if files else None

    def load(self, split: str, data_dir: Path) -> ImageArray:
        directory = self.directory(data_dir)
        if not parquet_files(directory, split):
            raise DataError(
                f"dataset 'parquet' ({split}) not found: no {split}-*.parquet files in {directory}"
                f" (path {self.params.path!r}; a relative path is under the data dir {data_dir})"
            )
        p = self.params
        return read_parquet_split(directory, split, p.resolution, p.channels)


@register_dataset("cifar10-coarse")
class Cifar10Coarse(Dataset):
    """CIFAR-10 relabelled as a 2-class task: vehicle (airplane, automobile, ship, truck) vs
    animal (the other six). The same images as `cifar10`, read through its cache."""

    Params: ClassVar[type[DatasetParams]] = ImageDatasetParams
    VEHICLES: ClassVar[frozenset[str]] = frozenset({"airplane", "automobile", "ship", "truck"})

    def load(self, split: str, data_dir: Path) -> ImageArray:
        from pe_bench.data import load_dataset

        fine = load_dataset("cifar10", split, self.params.model_dump(), data_dir)
        coarse = np.array([0 if c in self.VEHICLES else 1 for c in fine.classes], dtype=np.int64)
        return ImageArray(fine.images, coarse[fine.labels], ("vehicle", "animal"))
