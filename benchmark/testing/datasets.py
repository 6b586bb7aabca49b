"""`check_dataset`: the contract every dataset plugin meets, on the files it finds in a data
directory (a dataset that needs files it cannot find raises its own DataError)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pe_bench.datasets.base import Dataset, DatasetParams, ImageArray
from pe_bench.errors import DataError
from pe_bench.testing.common import check_params, fail

SMALL = {"resolution": 16, "channels": 1}


def _check_split(cls: type[Dataset], data: ImageArray, params: DatasetParams, split: str) -> None:
    if not isinstance(data, ImageArray):
        raise fail(cls, f"load must return an ImageArray, not {type(data).__name__}")
    shape = (params.channels, params.resolution, params.resolution)
    if data.images.shape[1:] != shape:
        raise fail(cls, f"{split}: images must be (N, {', '.join(map(str, shape))}) as the params ask; "
                        f"got {data.images.shape}")
    if split == "train" and not len(data):
        raise fail(cls, "the train split must not be empty")
    if not data.classes:
        raise fail(cls, f"{split}: class names are missing")


def _check_locate(cls: type[Dataset], plugin: Dataset, split: str, data_dir: Path) -> None:
    """`locate` finds what `load` just read: a str (or None, not checked), never DataError."""
    try:
        where = plugin.locate(split, data_dir)
    except DataError as exc:
        raise fail(cls, f"{split}: locate raised DataError although load read the split: {exc}") from exc
    if where is not None and not isinstance(where, str):
        raise fail(cls, f"{split}: locate must return a str or None, not {type(where).__name__}")


def _same(a: ImageArray, b: ImageArray) -> bool:
    return (a.classes == b.classes and np.array_equal(a.images, b.images)
            and np.array_equal(a.labels, b.labels))


def check_dataset(cls: type[Dataset], data_dir: str | Path, params: dict[str, Any] | None = None,
                  splits: tuple[str, ...] = ("train", "test")) -> dict[str, Any]:
    """Load each split twice with `params` (default: the defaults) and once more at 16x16
    grey, and `locate` it; returns the splits' sizes. A DataError (missing files) propagates unchanged."""
    params = dict(params or {})
    check_params(cls, Dataset, DatasetParams, params, {**params, **SMALL})
    data_dir = Path(data_dir)
    sizes = {}
    for split in splits:
        for options in (params, {**params, **SMALL}):
            plugin = cls.from_dict(options)
            first = plugin.load(split, data_dir)
            _check_split(cls, first, plugin.params, split)
            _check_locate(cls, plugin, split, data_dir)
            if options is params:
                if not _same(first, cls.from_dict(options).load(split, data_dir)):
                    raise fail(cls, f"{split}: load must be deterministic (same files, same arrays)")
                if plugin.cache_token(split, data_dir) != cls.from_dict(options).cache_token(split, data_dir):
                    raise fail(cls, f"{split}: cache_token must not change while the files do not")
                sizes[split] = len(first)
    return {"sizes": sizes}
