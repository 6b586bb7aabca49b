"""Base of the datasets read from `<data_dir>/<name>/` as Parquet files (the Hugging Face export,
as in the shared data folder) or else in torchvision's on-disk layout (CIFAR-10, GTSRB).

Both layouts are read by small readers here; torchvision is imported only to download
(`download: true`), because its CIFAR10 class rejects any batch file whose md5 differs
(re-pickled or test copies) and importing it costs seconds of torch start-up just to list files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pe_bench.datasets.loading import (
    describe_source,
    first_line,
    locate_split,
    read_parquet_split,
    source_token,
)
from pe_bench.datasets.base import Dataset, DatasetParams, ImageArray, ImageDatasetParams
from pe_bench.errors import DataError

DATA_HINT = "pass --data-dir DIR or set PE_BENCH_DATA to a folder holding {folder}/ ({layouts})"


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

    def locate(self, split: str, data_dir: Path) -> str:
        found = self._locate(split, data_dir)
        if found is not None:
            return describe_source(found)
        if self.params.download and self.params.source != "parquet":
            return f"{data_dir / self.folder} (absent: torchvision downloads it on first use, download: true)"
        raise DataError(self._missing_message(split, data_dir))

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
