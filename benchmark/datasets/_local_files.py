"""Base of the datasets read offline from `<data_dir>/<folder>/`: a Parquet export
(`<split>-*.parquet`, the Hugging Face layout) first, else the files as the dataset's authors
distribute them, read by small readers, so no run reaches for a network (there is no `download`
option: fetch the files once where a network exists). Decoded splits go through the shared
decode cache (`cache_token` = the identity of the source files)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pe_bench.datasets.loading import describe_source, locate_split, read_parquet_split, source_token
from pe_bench.datasets.base import Dataset, DatasetParams, ImageArray
from pe_bench.errors import DataError


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

    def _found(self, split: str, data_dir: Path) -> tuple[str, list[Path]]:
        """`_locate`'s answer, or the missing-data DataError (what `locate` and `load` both say)."""
        found = self._locate(split, data_dir)
        if found is None:
            raise DataError(self.missing_message(split, data_dir))
        return found

    def locate(self, split: str, data_dir: Path) -> str:
        return describe_source(self._found(split, data_dir))

    def load(self, split: str, data_dir: Path) -> ImageArray:
        found = self._found(split, data_dir)
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
