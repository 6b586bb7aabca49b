"""`parquet`: any image dataset exported to Parquet in the Hugging Face layout, from a folder."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from pe_bench.datasets.loading import describe_source, files_token, parquet_files, read_parquet_split
from pe_bench.datasets.base import Dataset, DatasetParams, ImageArray
from pe_bench.errors import DataError
from pe_bench.plugins.registry import register_dataset


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

    def locate(self, split: str, data_dir: Path) -> str:
        directory = self.directory(data_dir)
        files = parquet_files(directory, split)
        if not files:
            raise DataError(
                f"dataset 'parquet' ({split}) not found: no {split}-*.parquet files in {directory}"
                f" (path {self.params.path!r}; a relative path is under the data dir {data_dir}:"
                " pass --data-dir DIR or set PE_BENCH_DATA)"
            )
        return describe_source(("parquet", files))

    def load(self, split: str, data_dir: Path) -> ImageArray:
        self.locate(split, data_dir)  # one message for missing files
        p = self.params
        return read_parquet_split(self.directory(data_dir), split, p.resolution, p.channels)
