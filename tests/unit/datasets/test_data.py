"""Dataset layer: digits, the Parquet reader, real data, the decode cache, torchvision layouts."""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pydantic import ValidationError

from pe_bench.datasets.loading import (
    cache_dir,
    clear_memo,
    load_dataset,
    parquet_class_names,
    read_parquet_split,  # fmt: skip
    resolve_data_dir,
)
from pe_bench.plugins.types import ImageArray
from pe_bench.datasets.gtsrb import GTSRB_CLASSES
from pe_bench.errors import DataError, PluginError
from pe_bench.plugins.registry import DATASETS
from pe_bench.testing import check_dataset

pytestmark = pytest.mark.usefixtures("isolated")
SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")  # fmt: skip


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> np.ndarray:
    return np.tile(np.array(colour, np.uint8), (size[1], size[0], 1))


def write_parquet(path: Path, images: list[np.ndarray], labels: list[int],
                  names: list[str] | None = None, fmt: str = "PNG") -> None:
    """A file in the Hugging Face image layout: img struct{bytes, path}, label int64."""
    rows = []
    for i, image in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=fmt)
        rows.append({"bytes": buf.getvalue(), "path": f"{i}.{fmt.lower()}"})
    img_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"img": pa.array(rows, img_type), "label": pa.array(labels, pa.int64())})
    if names is not None:
        features = {"img": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata(
            {"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def cached_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_digits_shapes_split_and_determinism(tmp_path: Path, isolated: Path) -> None:
    train = load_dataset("digits", "train", {}, tmp_path)
    test = load_dataset("digits", "test", None, tmp_path)
    assert train.images.shape == (1347, 3, 32, 32) and test.images.shape == (450, 3, 32, 32)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert len(train) + len(test) == 1797
    assert set(np.unique(test.labels)) == set(range(10)) and test.classes == tuple("0123456789")
    assert np.array_equal(train.images[:, 0], train.images[:, 2])  # gray replicated
    assert train.images.max() > 200  # 0..16 scaled to 0..255
    counts = np.bincount(test.labels)
    assert counts.min() >= 43 and counts.max() <= 47  # stratified
    clear_memo()
    again = load_dataset("digits", "test", {}, tmp_path)
    assert np.array_equal(again.images, test.images) and np.array_equal(again.labels, test.labels)
    assert not cached_files(isolated)  # digits is rebuilt, never cached on disk


def test_digits_channels_and_resolution(tmp_path: Path) -> None:
    small = load_dataset("digits", "train", {"channels": 1, "resolution": 16}, tmp_path)
    assert small.images.shape == (1347, 1, 16, 16)
    memo = load_dataset("digits", "train", {}, tmp_path)
    assert load_dataset("digits", "train", {}, tmp_path) is memo
    assert not small.images.flags.writeable  # shared through the memo
    with pytest.raises(ValidationError):
        load_dataset("digits", "train", {"resolution": 4}, tmp_path)
    with pytest.raises(ValidationError):
        load_dataset("digits", "train", {"colour": True}, tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("digits", "valid", {}, tmp_path)


def test_read_parquet_split_png(tmp_path: Path) -> None:
    write_parquet(tmp_path / "train-00000-of-00001.parquet", [solid(RED), solid(GREEN), solid(BLUE),
                  solid(GREEN)], [0, 1, 2, 1], ["red", "green", "blue"])  # fmt: skip
    arr = read_parquet_split(tmp_path, "train", resolution=8, channels=3)
    assert arr.classes == ("red", "green", "blue") and arr.labels.tolist() == [0, 1, 2, 1]
    assert arr.images.shape == (4, 3, 8, 8)
    assert arr.images[0, :, 3, 3].tolist() == list(RED) and arr.images[2, 2].min() == 255
    bigger = read_parquet_split(tmp_path, "train", resolution=16, channels=1)
    assert bigger.images.shape == (4, 1, 16, 16)
    assert abs(int(bigger.images[1, 0, 5, 5]) - 150) <= 1  # L = 0.587 * 255 for green


def test_read_parquet_split_jpeg_shards_and_fallback_names(tmp_path: Path) -> None:
    for shard, colour, label in [(1, BLUE, 3), (0, RED, 0)]:
        path = tmp_path / f"test-0000{shard}-of-00002.parquet"
        write_parquet(path, [solid(colour, (12, 10))], [label], fmt="JPEG")
    arr = read_parquet_split(tmp_path, "test", resolution=8, channels=3)
    assert arr.labels.tolist() == [0, 3]  # shards in name order
    assert arr.classes == ("0", "1", "2", "3")  # no metadata: names from the labels
    assert np.abs(arr.images[0].astype(int) - np.array(RED)[:, None, None]).max() <= 8
    assert np.abs(arr.images[1].astype(int) - np.array(BLUE)[:, None, None]).max() <= 8
    with pytest.raises(DataError, match="no Parquet files"):
        read_parquet_split(tmp_path, "train", 8, 3)


def test_parquet_plugin_relative_and_absolute_path(tmp_path: Path) -> None:
    write_parquet(tmp_path / "mine" / "train-0.parquet", [solid(RED)], [0], ["only"])
    rel = load_dataset("parquet", "train", {"path": "mine", "resolution": 8}, tmp_path)
    absolute = load_dataset("parquet", "train", {"path": str(tmp_path / "mine")}, tmp_path / "x")
    assert rel.classes == ("only",) and absolute.images.shape == (1, 3, 32, 32)
    with pytest.raises(DataError, match="no test-\\*.parquet files") as err:
        load_dataset("parquet", "test", {"path": "mine"}, tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(ValidationError):
        load_dataset("parquet", "train", {}, tmp_path)


@pytest.mark.data
def test_real_cifar10_and_gtsrb() -> None:
    if not (SHARED_DATA / "cifar10").is_dir() or not (SHARED_DATA / "gtsrb").is_dir():
        pytest.skip(f"real data not found in {SHARED_DATA}")
    cifar = load_dataset("cifar10", "test", {}, SHARED_DATA)
    assert cifar.images.shape == (10000, 3, 32, 32) and cifar.classes == CIFAR_NAMES
    assert np.bincount(cifar.labels).tolist() == [1000] * 10
    names = parquet_class_names(SHARED_DATA / "gtsrb" / "test-00000-of-00001.parquet")
    assert names is not None and len(names) == 43 and names == GTSRB_CLASSES


def test_decode_cache_is_reused_and_invalidated(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "data" / "cifar10" / "test-00000-of-00001.parquet"
    write_parquet(source, [solid(RED), solid(BLUE)], [0, 1], ["a", "b"])
    first = load_dataset("cifar10", "test", {"resolution": 8}, tmp_path / "data")
    files = cached_files(isolated / "decoded")
    assert {p.name for p in files} == {"images.npy", "labels.npy", "meta.json"}
    assert files[0].parent.name.startswith("cifar10-test-")
    clear_memo()
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("decoded again"))
    second = load_dataset("cifar10", "test", {"resolution": 8}, tmp_path / "data")
    assert np.array_equal(first.images, second.images) and second.classes == ("a", "b")
    assert np.array_equal(first.labels, second.labels)
    os.utime(source, ns=(0, 10**18))  # the source changed: the cache no longer matches
    clear_memo()
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        load_dataset("cifar10", "test", {"resolution": 8}, tmp_path / "data")


def write_cifar_batches(root: Path) -> np.ndarray:
    """A tiny cifar-10-batches-py folder (Python 3 pickles with bytes keys); returns all data."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    data = np.random.default_rng(0).integers(0, 256, (13, 3072), dtype=np.uint8)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        rows = slice(2 * i, 2 * i + 2) if name != "test_batch" else slice(10, 13)
        batch = {b"data": data[rows], b"labels": [j % 10 for j in range(rows.start, rows.stop)]}
        (base / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}
    (base / "batches.meta").write_bytes(pickle.dumps(meta))
    return data


def test_cifar10_torchvision_layout(tmp_path: Path) -> None:
    data = write_cifar_batches(tmp_path / "cifar10")
    train = load_dataset("cifar10", "train", {}, tmp_path)
    test = load_dataset("cifar10", "test", {"source": "torchvision"}, tmp_path)
    assert len(train) == 10 and len(test) == 3 and test.classes == CIFAR_NAMES
    assert np.array_equal(train.images, data[:10].reshape(-1, 3, 32, 32))
    assert test.labels.tolist() == [0, 1, 2]
    gray = load_dataset("cifar10", "test", {"channels": 1, "resolution": 16}, tmp_path)
    assert gray.images.shape == (3, 1, 16, 16)
    with pytest.raises(DataError, match="looked for Parquet files"):
        load_dataset("cifar10", "test", {"source": "parquet"}, tmp_path)


def write_gtsrb(data_dir: Path) -> None:
    """torchvision's GTSRB layout: GTSRB/Training/<class>/*.ppm, Final_Test + GT-final_test.csv."""
    base = data_dir / "gtsrb"
    train = base / "GTSRB" / "Training"
    test = base / "GTSRB" / "Final_Test" / "Images"
    for path, colour, size in [(train / "00000" / "00000_00000.ppm", RED, (30, 34)),
                               (train / "00000" / "00000_00001.ppm", RED, (41, 40)),
                               (train / "00042" / "00000_00000.ppm", BLUE, (29, 31)),
                               (test / "00000.ppm", GREEN, (50, 45)),
                               (test / "00001.ppm", RED, (33, 33))]:  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(solid(colour, size)).save(path, format="PPM")
    (train / "00042" / "GT-00042.csv").write_text("Filename;ClassId\n")
    (base / "GT-final_test.csv").write_text(
        "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
        "00000.ppm;50;45;5;5;45;40;7\n00001.ppm;33;33;5;5;28;28;14\n")


def test_gtsrb_torchvision_layout(tmp_path: Path) -> None:
    write_gtsrb(tmp_path)
    train = load_dataset("gtsrb", "train", {}, tmp_path)
    test = load_dataset("gtsrb", "test", {"resolution": 16}, tmp_path)
    assert train.images.shape == (3, 3, 32, 32) and train.labels.tolist() == [0, 0, 42]
    assert train.classes == GTSRB_CLASSES and len(train.classes) == 43
    assert test.images.shape == (2, 3, 16, 16) and test.labels.tolist() == [7, 14]
    assert test.images[0, :, 8, 8].tolist() == list(GREEN)


def test_contract_on_fixtures(tmp_path: Path) -> None:
    """pe_bench.testing.check_dataset on torchvision layouts and a Parquet folder."""
    write_cifar_batches(tmp_path / "cifar10")
    write_gtsrb(tmp_path)
    for split in ("train", "test"):
        write_parquet(tmp_path / "mine" / f"{split}-0.parquet", [solid(RED), solid(BLUE)], [0, 1], ["r", "b"])
    for name, params in [("cifar10", {"source": "torchvision"}), ("gtsrb", {"source": "torchvision"}),
                         ("parquet", {"path": "mine"}), ("cifar10-coarse", {"source": "torchvision"})]:
        assert check_dataset(DATASETS.get(name), tmp_path, params)["sizes"]["train"] > 0, name


def fake_torchvision(monkeypatch: pytest.MonkeyPatch, fill: Any) -> list[tuple[str, Any]]:
    """Stand-in for torchvision.datasets: records constructor calls, `fill` plays the download."""
    calls: list[tuple[str, Any]] = []

    def constructor(kind: str) -> Any:
        return lambda **kwargs: (calls.append((kind, kwargs)), fill(kind, kwargs))

    module = types.SimpleNamespace(CIFAR10=constructor("CIFAR10"), GTSRB=constructor("GTSRB"))
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(datasets=module))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", module)
    return calls


def test_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fill(kind: str, kwargs: dict[str, Any]) -> None:
        (write_cifar_batches if kind == "CIFAR10" else write_gtsrb)(Path(kwargs["root"]))

    calls = fake_torchvision(monkeypatch, fill)
    cifar = load_dataset("cifar10", "train", {"download": True}, tmp_path)
    gtsrb = load_dataset("gtsrb", "test", {"download": True}, tmp_path)
    assert len(cifar) == 10 and len(gtsrb) == 2
    assert calls == [
        ("CIFAR10", {"root": str(tmp_path / "cifar10"), "train": True, "download": True}),
        ("GTSRB", {"root": str(tmp_path), "split": "test", "download": True}),
    ]

    def offline(*_: Any) -> None:
        raise OSError("network unreachable\n(traceback details)")

    fake_torchvision(monkeypatch, offline)  # a failed download is one line, not a traceback
    with pytest.raises(DataError, match="download failed: network unreachable$"):
        load_dataset("gtsrb", "train", {"download": True}, tmp_path / "offline")


@pytest.mark.parametrize("name", ["cifar10", "gtsrb"])
def test_missing_dataset_message(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(name, "test", {}, tmp_path / "empty")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"dataset {name!r} (test) not found")
    assert str(tmp_path / "empty" / name / "test-*.parquet") in message
    assert f"torchvision's layout in {tmp_path / 'empty' / name}" in message
    assert "--data-dir" in message and "PE_BENCH_DATA" in message and "download: true" in message


def test_data_and_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PE_BENCH_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("PE_BENCH_DATA")
    assert resolve_data_dir() == tmp_path / "xdg" / "pe-bench" / "data"
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("PE_BENCH_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "pe-bench" / "cache"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "pe-bench" / "data"


def test_unknown_dataset_suggests_a_name(tmp_path: Path) -> None:
    assert {"digits", "cifar10", "gtsrb", "parquet"} <= set(DATASETS.names())
    with pytest.raises(PluginError, match="did you mean 'cifar10'"):
        load_dataset("cifar100", "test", {}, tmp_path)


def test_image_array_validation_and_subset() -> None:
    arr = ImageArray(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, 1, 1, 0]), ("a", "b"))
    assert len(arr.subset(np.array([1, 2]))) == 2 and arr.subset(slice(0, 1)).classes == ("a", "b")
    with pytest.raises(ValueError, match="uint8"):
        ImageArray(np.zeros((4, 2, 8, 8), np.uint8), np.zeros(4, np.int64), ("a",))
    with pytest.raises(ValueError, match="classes"):
        ImageArray(np.zeros((1, 3, 8, 8), np.uint8), np.array([5]), ("a",))


def test_cifar10_coarse_is_vehicle_vs_animal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = Path(__file__).resolve().parents[4] / "shared" / "data"
    if not (data_dir / "cifar10").is_dir():
        pytest.skip("real CIFAR-10 not available")
    monkeypatch.setenv("PE_BENCH_CACHE", str(tmp_path / "cache"))
    fine = load_dataset("cifar10", "test", {}, data_dir)
    coarse = load_dataset("cifar10-coarse", "test", {}, data_dir)
    assert coarse.classes == ("vehicle", "animal") and len(coarse) == len(fine)
    vehicles = {fine.classes.index(c) for c in ("airplane", "automobile", "ship", "truck")}
    assert (coarse.labels == np.where(np.isin(fine.labels, list(vehicles)), 0, 1)).all()
    assert np.bincount(coarse.labels).tolist() == [4000, 6000]
