"""`eurosat`: EuroSAT RGB, 10 land-use classes, split here (see `_class_folders`).

Helber, Bischke, Dengel, Borth, "EuroSAT: A Novel Dataset and Deep Learning Benchmark for Land
Use and Land Cover Classification", IEEE JSTARS 2019; 27,000 64x64 Sentinel-2 RGB JPEGs in 10
classes, distributed without a train/test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from pe_bench.datasets._class_folders import FolderDataset, FolderParams, class_folders
from pe_bench.datasets.base import DatasetParams
from pe_bench.plugins.registry import register_dataset


class EuroSatParams(FolderParams):
    resolution: int = Field(64, ge=8, le=512)  # native 64x64; 32 joins CIFAR-sized grids


@register_dataset("eurosat")
class EuroSat(FolderDataset):
    """EuroSAT RGB: 10 land-use classes (Helber et al. 2019), split here (see the module doc)."""

    Params: ClassVar[type[DatasetParams]] = EuroSatParams
    name = folder = "eurosat"
    layout = "EuroSAT RGB class folders 2750/<class>/*.jpg or EuroSAT_RGB/<class>/*.jpg"
    obtain = ("unzip EuroSAT.zip or EuroSAT_RGB.zip (Helber et al. 2019) there, or run "
              "torchvision.datasets.EuroSAT(root='<data dir>', download=True) on a networked machine")

    def roots(self, split: str, data_dir: Path) -> tuple[Path, list[Path], bool] | None:
        for name in ("2750", "EuroSAT_RGB"):
            root = self.base(data_dir) / name
            if class_folders(root):
                return root, [root], True
        return None
