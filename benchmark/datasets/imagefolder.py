"""`imagefolder`: any labelled images in class folders (pre-split or split here) or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from pe_bench.datasets._class_folders import FolderDataset, FolderParams, class_folders
from pe_bench.datasets.base import DatasetParams
from pe_bench.errors import DataError
from pe_bench.plugins.registry import register_dataset


class ImageFolderParams(FolderParams):
    """`root`: the folder, absolute or relative to the data dir."""

    root: str = Field(min_length=1)


@register_dataset("imagefolder")
class ImageFolder(FolderDataset):
    """Any labelled images as `root/train/<class>/*` and `root/test/<class>/*`, or as
    `root/<class>/*` (split here), or `root/{train,test}-*.parquet`; both splits get the
    classes of both, so labels agree. Images are resized to `resolution` (default 32)."""

    Params: ClassVar[type[DatasetParams]] = ImageFolderParams
    params: ImageFolderParams
    name = folder = "imagefolder"
    layout = "class folders train/<class>/*, test/<class>/* or <class>/*"
    obtain = "any image format PIL reads"

    def base(self, data_dir: Path) -> Path:
        path = Path(self.params.root).expanduser()
        return path if path.is_absolute() else data_dir / path

    def hint(self, data_dir: Path) -> str:
        return (f"root {self.params.root!r}: a relative root is under the data dir {data_dir} "
                "(pass --data-dir DIR or set PE_BENCH_DATA)")

    def roots(self, split: str, data_dir: Path) -> tuple[Path, list[Path], bool] | None:
        base = self.base(data_dir)
        pre_split = [base / s for s in ("train", "test") if (base / s).is_dir()]
        if len(pre_split) == 2:
            return base / split, pre_split, False
        if pre_split:
            raise DataError(f"dataset 'imagefolder': {base} has {pre_split[0].name}/ but not the other of "
                            "train/ and test/: give both, or class folders only")
        return (base, [base], True) if class_folders(base) else None
