"""STL-10, SVHN, EuroSAT and imagefolder read from tiny files written here in each real format;
and suites/full.yaml validates through the CLI with its data found but never read."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from scipy.io import savemat

from pe_bench.api import validate_suite
from pe_bench.cli import main
from pe_bench.datasets.loading import clear_memo, load_dataset
from pe_bench.errors import DataError
from pe_bench.plugins.registry import DATASETS
from pe_bench.testing import check_dataset
from tests.helpers import placeholder_data

pytestmark = pytest.mark.usefixtures("isolated")
REPO = Path(__file__).resolve().parents[3]
FULL = REPO / "suites" / "full.yaml"
STL_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def write_stl10_x(path: Path, images: np.ndarray) -> None:
    """The official layout: per image, the R, G and B planes, each plane column by column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    planes = [img[:, :, c].flatten(order="F") for img in images for c in range(3)]
    np.concatenate(planes).astype(np.uint8).tofile(path)


def write_stl10(data_dir: Path, n: int = 5, names: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train/test X and y files of `n` random (96, 96, 3) images with labels 1..10."""
    rng = np.random.default_rng(0)
    folder, out = data_dir / "stl10" / "stl10_binary", {}
    for split in ("train", "test"):
        hwc = rng.integers(0, 256, size=(n, 96, 96, 3), dtype=np.uint8)
        y = rng.integers(1, 11, size=n, dtype=np.uint8)
        y[0] = 10
        write_stl10_x(folder / f"{split}_X.bin", hwc)
        y.tofile(folder / f"{split}_y.bin")
        out[split] = (hwc, y)
    if names:
        (folder / "class_names.txt").write_text("\n".join(STL_NAMES) + "\n", encoding="utf-8")
    return out


def write_image(path: Path, value: int, size: int = 64, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path, format=fmt)


def write_class_folders(root: Path, counts: dict[str, int], fmt: str = "PNG", start: int = 0) -> None:
    """`counts[c]` solid images per class; image k of all has the grey level start + 4k (an id)."""
    k = start
    for cls, count in counts.items():
        for i in range(count):
            write_image(root / cls / f"{cls}_{i}.{fmt.lower().replace('jpeg', 'jpg')}", k * 4, fmt=fmt)
            k += 1


def ids(images: np.ndarray) -> set[int]:
    """The grey-level ids of solid images (JPEG may be off by one)."""
    return {int(round(float(x.mean()) / 4)) for x in images}


# -- STL-10 ------------------------------------------------------------------------------------
def test_stl10_binary_orientation_round_trips_exactly(tmp_path: Path) -> None:
    written = write_stl10(tmp_path)
    for split, (hwc, y) in written.items():
        data = load_dataset("stl10", split, {}, tmp_path)
        assert data.images.shape == (5, 3, 96, 96)
        np.testing.assert_array_equal(data.images, hwc.transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(data.labels, y.astype(np.int64) - 1)
        assert data.classes == tuple(STL_NAMES) and data.labels[0] == 9


def test_stl10_row_is_not_a_column(tmp_path: Path) -> None:
    """A red top row must come back as the top row, not the left column."""
    image = np.zeros((1, 96, 96, 3), np.uint8)
    image[0, 0, :, 0] = 255
    folder = tmp_path / "stl10" / "stl10_binary"
    write_stl10_x(folder / "test_X.bin", image)
    np.array([3], np.uint8).tofile(folder / "test_y.bin")
    data = load_dataset("stl10", "test", {}, tmp_path)
    assert (data.images[0, 0, 0, :] == 255).all() and data.images[0, 0, 1:, 0].max() == 0
    assert data.classes == tuple(STL_NAMES)  # no class_names.txt: the official names


def test_stl10_resolution_channels_and_unlabeled(tmp_path: Path) -> None:
    write_stl10(tmp_path, names=False)
    small = load_dataset("stl10", "train", {"resolution": 32, "channels": 1}, tmp_path)
    assert small.images.shape == (5, 1, 32, 32)
    hwc = np.random.default_rng(1).integers(0, 256, size=(3, 96, 96, 3), dtype=np.uint8)
    write_stl10_x(tmp_path / "stl10" / "stl10_binary" / "unlabeled_X.bin", hwc)
    unlabeled = load_dataset("stl10-unlabeled", "train", None, tmp_path)
    np.testing.assert_array_equal(unlabeled.images, hwc.transpose(0, 3, 1, 2))
    assert unlabeled.classes == ("unlabeled",) and unlabeled.labels.tolist() == [0, 0, 0]
    with pytest.raises(DataError, match="no test split"):
        load_dataset("stl10-unlabeled", "test", None, tmp_path)


def test_stl10_truncated_file_is_a_data_error(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    x_file = tmp_path / "stl10" / "stl10_binary" / "train_X.bin"
    x_file.write_bytes(x_file.read_bytes()[:-7])
    with pytest.raises(DataError, match="train_X.bin"):
        load_dataset("stl10", "train", {}, tmp_path)


# -- SVHN --------------------------------------------------------------------------------------
def write_svhn(path: Path, labels: list[int], seed: int = 0) -> np.ndarray:
    """A .mat file as distributed: X (32, 32, 3, N) uint8, y (N, 1) in 1..10."""
    x = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3, len(labels)), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"X": x, "y": np.array(labels, np.uint8).reshape(-1, 1)})
    return x


def test_svhn_mat_files_and_label_ten_is_zero(tmp_path: Path) -> None:
    x = write_svhn(tmp_path / "svhn" / "train_32x32.mat", [10, 1, 5, 10])
    write_svhn(tmp_path / "svhn" / "test_32x32.mat", [2, 3], seed=1)
    train = load_dataset("svhn", "train", {}, tmp_path)
    assert train.images.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(train.images, x.transpose(3, 2, 0, 1))
    assert train.labels.tolist() == [0, 1, 5, 0]
    assert train.classes == tuple(str(d) for d in range(10))
    assert load_dataset("svhn", "test", {"resolution": 16}, tmp_path).images.shape == (2, 3, 16, 16)
    write_svhn(tmp_path / "svhn" / "extra_32x32.mat", [7, 7, 7], seed=2)
    assert load_dataset("svhn", "train", {"extra": True}, tmp_path).labels.tolist() == [0, 1, 5, 0, 7, 7, 7]


def test_svhn_prefers_parquet_like_cifar10(tmp_path: Path) -> None:
    write_svhn(tmp_path / "svhn" / "train_32x32.mat", [1, 2])
    rows = []
    for value in (10, 20, 30):
        buf = io.BytesIO()
        Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(buf, format="PNG")
        rows.append({"bytes": buf.getvalue(), "path": None})
    img_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({"image": pa.array(rows, img_type), "label": pa.array([4, 0, 9], pa.int64())}),
                   tmp_path / "svhn" / "train-00000-of-00001.parquet")
    assert load_dataset("svhn", "train", {}, tmp_path).labels.tolist() == [4, 0, 9]
    assert load_dataset("svhn", "train", {"source": "files"}, tmp_path).labels.tolist() == [1, 2]


# -- EuroSAT and imagefolder -------------------------------------------------------------------
EUROSAT_COUNTS = {"AnnualCrop": 10, "Forest": 5, "River": 2}


@pytest.mark.parametrize("folder", ["2750", "EuroSAT_RGB"])
def test_eurosat_stratified_deterministic_split(tmp_path: Path, folder: str) -> None:
    write_class_folders(tmp_path / "eurosat" / folder, EUROSAT_COUNTS, fmt="JPEG")
    train = load_dataset("eurosat", "train", {}, tmp_path)
    test = load_dataset("eurosat", "test", {}, tmp_path)
    assert train.images.shape[1:] == (3, 64, 64) and train.classes == tuple(EUROSAT_COUNTS)
    assert np.bincount(test.labels).tolist() == [2, 1, 1]  # round(n * 0.2), at least one
    assert np.bincount(train.labels).tolist() == [8, 4, 1]
    assert ids(train.images).isdisjoint(ids(test.images))
    assert ids(train.images) | ids(test.images) == set(range(17))
    clear_memo()
    again = load_dataset("eurosat", "test", {"resolution": 32}, tmp_path)
    assert again.images.shape == (4, 3, 32, 32) and ids(again.images) == ids(test.images)
    reseeded = load_dataset("eurosat", "test", {"split_seed": 1, "test_fraction": 0.5}, tmp_path)
    assert np.bincount(reseeded.labels).tolist() == [5, 2, 1]


def test_eurosat_split_keeps_images_in_place_when_one_is_added(tmp_path: Path) -> None:
    root = tmp_path / "eurosat" / "2750"
    write_class_folders(root, {"Forest": 20})
    before = ids(load_dataset("eurosat", "test", {}, tmp_path).images)
    write_image(root / "Forest" / "Forest_new.png", 50 * 4)
    clear_memo()
    after = ids(load_dataset("eurosat", "test", {}, tmp_path).images)
    assert len(before) == len(after) == 4 and len(before & after) >= 3


def test_imagefolder_pre_split_with_union_of_classes(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "mine" / "train", {"cat": 2, "dog": 3, "emu": 1})
    write_class_folders(tmp_path / "mine" / "test", {"cat": 1, "dog": 1}, start=10)
    train = load_dataset("imagefolder", "train", {"root": "mine"}, tmp_path)
    test = load_dataset("imagefolder", "test", {"root": str(tmp_path / "mine")}, tmp_path / "elsewhere")
    assert train.classes == test.classes == ("cat", "dog", "emu")
    assert train.labels.tolist() == [0, 0, 1, 1, 1, 2] and test.labels.tolist() == [0, 1]
    assert train.images.shape == (6, 3, 32, 32) and ids(test.images) == {10, 11}


def test_imagefolder_flat_is_split_and_half_split_is_an_error(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "flat", {"a": 5, "b": 5})
    params = {"root": "flat", "resolution": 16, "channels": 1}
    train = load_dataset("imagefolder", "train", params, tmp_path)
    test = load_dataset("imagefolder", "test", params, tmp_path)
    assert (len(train), len(test)) == (8, 2) and test.images.shape[1:] == (1, 16, 16)
    assert ids(train.images).isdisjoint(ids(test.images))
    write_class_folders(tmp_path / "half" / "train", {"a": 2})
    with pytest.raises(DataError, match="train/ but not the other"):
        load_dataset("imagefolder", "train", {"root": "half"}, tmp_path)


def test_broken_image_is_named(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "eurosat" / "2750", {"Forest": 4})
    (tmp_path / "eurosat" / "2750" / "Forest" / "Forest_0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="Forest_0.png"):
        for split in ("train", "test"):
            load_dataset("eurosat", split, {}, tmp_path)


# -- missing data, registry, cache -------------------------------------------------------------
@pytest.mark.parametrize(("name", "params", "expect"), [
    ("stl10", {}, "stl10_binary"),
    ("stl10-unlabeled", {}, "unlabeled_X.bin"),
    ("svhn", {}, "train_32x32.mat"),
    ("eurosat", {}, "2750/<class>"),
    ("imagefolder", {"root": "nowhere"}, "relative root is under the data dir"),
])  # fmt: skip
def test_missing_data_message(tmp_path: Path, name: str, params: dict[str, str], expect: str) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(name, "train", params, tmp_path)
    message = str(info.value)
    assert "\n" not in message and f"dataset {name!r} (train) not found" in message
    folder = "nowhere" if name == "imagefolder" else name.removesuffix("-unlabeled")
    assert str(tmp_path / folder) in message and expect in message


def test_registered_names_and_native_defaults() -> None:
    assert {"stl10", "stl10-unlabeled", "svhn", "eurosat", "imagefolder"} <= set(DATASETS.names())
    defaults = {n: DATASETS.get(n).Params.model_validate({"root": "x"} if n == "imagefolder" else {})
                for n in ("stl10", "svhn", "eurosat", "imagefolder")}
    assert {n: p.resolution for n, p in defaults.items()} == {
        "stl10": 96, "svhn": 32, "eurosat": 64, "imagefolder": 32}
    assert defaults["eurosat"].test_fraction == 0.2  # type: ignore[attr-defined]


def test_decoded_split_is_cached_and_invalidated(tmp_path: Path, isolated: Path) -> None:
    write_svhn(tmp_path / "svhn" / "test_32x32.mat", [1, 2])
    first = load_dataset("svhn", "test", {}, tmp_path)
    assert list(isolated.rglob("images.npy"))
    clear_memo()
    np.testing.assert_array_equal(load_dataset("svhn", "test", {}, tmp_path).images, first.images)
    write_svhn(tmp_path / "svhn" / "test_32x32.mat", [3, 4, 5])
    clear_memo()
    assert load_dataset("svhn", "test", {}, tmp_path).labels.tolist() == [3, 4, 5]


# -- the paper-scale suite ---------------------------------------------------------------------
def test_full_suite_validates_without_reading_data(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_BENCH_DATA", str(placeholder_data(tmp_path)))  # empty files: found, unread
    assert main(["validate", str(FULL)]) == 0
    out = capsys.readouterr().out
    for name in ("cifar10", "gtsrb", "stl10", "svhn", "eurosat"):
        assert f"    {name}: {tmp_path / name} (Parquet)" in out.splitlines()
    first = out.splitlines()[0]
    match = re.fullmatch(r"suite full: (\d+) trials, (\d+) clean pre-training runs", first)
    assert match, first
    raw = yaml.safe_load(FULL.read_text(encoding="utf-8"))
    cells = len(raw["datasets"]) * len(raw["encoders"]) * len(raw["attacks"]) * len(raw["defenses"])
    plan = validate_suite(FULL)
    assert int(match.group(1)) == len(plan.grid.trials) == cells * len(raw["seeds"]) - len(plan.grid.excluded)
    assert int(match.group(2)) == plan.grid.pretrain_runs()
    assert {t.encoder.params["backbone"] for t in plan.grid.trials} == {"resnet18"}


# -- the dataset contract on the fixtures above ------------------------------------------------
def test_contract_on_fixtures(tmp_path: Path) -> None:
    """pe_bench.testing.check_dataset for the built-ins whose files are not in the shared data."""
    write_stl10(tmp_path)
    write_stl10_x(tmp_path / "stl10" / "stl10_binary" / "unlabeled_X.bin",
                  np.random.default_rng(1).integers(0, 256, size=(3, 96, 96, 3), dtype=np.uint8))
    write_svhn(tmp_path / "svhn" / "train_32x32.mat", [10, 1, 5, 10])
    write_svhn(tmp_path / "svhn" / "test_32x32.mat", [2, 3], seed=1)
    write_class_folders(tmp_path / "eurosat" / "2750", EUROSAT_COUNTS, fmt="JPEG")
    write_class_folders(tmp_path / "mine", {"a": 5, "b": 5})
    for name, params, splits in [("stl10", {}, ("train", "test")), ("stl10-unlabeled", {}, ("train",)),
                                 ("svhn", {}, ("train", "test")), ("eurosat", {}, ("train", "test")),
                                 ("imagefolder", {"root": "mine"}, ("train", "test"))]:
        sizes = check_dataset(DATASETS.get(name), tmp_path, params, splits)["sizes"]
        assert set(sizes) == set(splits) and all(sizes.values()), (name, sizes)
