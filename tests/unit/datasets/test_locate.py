"""`Dataset.locate` and the data check before a run (pe_bench.datasets.locating): every built-in
finds a split's files without reading them, or raises the one-line DataError naming the folder
it looked in and how to point at another; every (dataset, split) a suite reads is located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pe_bench.api import validate_suite
from pe_bench.datasets.base import Dataset
from pe_bench.datasets.loading import SPLITS, load_dataset
from pe_bench.datasets.locating import NOT_CHECKED, DataCheck, Located, splits_read
from pe_bench.errors import DataError
from pe_bench.plugins.registry import DATASETS
from tests.helpers import placeholder_data

pytestmark = pytest.mark.usefixtures("isolated")
BUILTINS = sorted(name for name, info in DATASETS.infos().items() if info.builtin)
NEEDS = {"parquet": {"path": "nowhere"}, "imagefolder": {"root": "nowhere"}}  # required params
SUITE = """\
name: several
seeds: [0]
train: {epochs: 1, batch_size: 32}
datasets:
  - name: mixed
    pretrain: {dataset: cifar10, also: [{name: digits, params: {resolution: 32}}], max_images: 100}
    tasks:
      - {name: signs, dataset: gtsrb}
      - {name: coarse, dataset: cifar10-coarse}
encoders: [simclr]
attacks: [none]
"""


def plugin(name: str, **params: Any) -> Dataset:
    return DATASETS.get(name).from_dict({**NEEDS.get(name, {}), **params})


def write_suite(tmp_path: Path) -> Path:
    path = tmp_path / "several.yaml"
    path.write_text(SUITE, encoding="utf-8")
    return path


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", BUILTINS)
def test_missing_split_is_one_line_naming_the_folder_and_the_hint(tmp_path: Path, name: str,
                                                                  split: str) -> None:
    if name == "digits":
        assert plugin(name).locate(split, tmp_path) == "built in (scikit-learn)"
        return
    with pytest.raises(DataError) as info:
        plugin(name).locate(split, tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"dataset {name!r}"), message
    if (name, split) == ("stl10-unlabeled", "test"):
        assert "no test split" in message
        return
    assert str(tmp_path) in message and "--data-dir DIR or set PE_BENCH_DATA" in message, message


@pytest.mark.parametrize("name", sorted(set(BUILTINS) - {"digits"}))
def test_locate_finds_files_without_reading_them(tmp_path: Path, name: str) -> None:
    """Empty files where each dataset looks: found (loading them would fail)."""
    data = placeholder_data(tmp_path)
    dataset = DATASETS.get(name).from_dict({"path": "cifar10"} if name == "parquet" else
                                           {"root": "imagefolder"} if name == "imagefolder" else {})
    for split in ("train",) if name == "stl10-unlabeled" else SPLITS:
        where = dataset.locate(split, data)
        assert where is not None and where.startswith(str(data)), where
        assert where.endswith("(distributed files)" if name == "stl10-unlabeled" else "(Parquet)")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset("cifar10", "train", {}, data)


def test_torchvision_layout_and_download(tmp_path: Path) -> None:
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in ["test_batch", "batches.meta"]:
        (batches / name).touch()
    assert plugin("cifar10").locate("test", tmp_path) == f"{batches} (torchvision's layout)"
    with pytest.raises(DataError, match="cifar10"):  # no data_batch_* files
        plugin("cifar10").locate("train", tmp_path)
    empty = tmp_path / "empty"
    assert "download: true" in str(plugin("gtsrb", download=True).locate("train", empty))
    with pytest.raises(DataError, match="gtsrb"):
        plugin("gtsrb", download=True, source="parquet").locate("train", empty)


def test_coarse_names_itself_and_the_files_it_reads(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        plugin("cifar10-coarse").locate("test", tmp_path)
    assert str(info.value).startswith("dataset 'cifar10-coarse' reads cifar10's files: dataset 'cifar10' "
                                      f"(test) not found: looked for Parquet files {tmp_path / 'cifar10'}")


def test_every_split_a_suite_reads_is_located(tmp_path: Path) -> None:
    plan = validate_suite(write_suite(tmp_path))
    pairs = [(ref.name, split) for ref, split in splits_read(plan.grid.trials)]
    assert pairs == [("cifar10", "train"), ("digits", "train"), ("gtsrb", "train"), ("gtsrb", "test"),
                     ("cifar10-coarse", "train"), ("cifar10-coarse", "test")]
    assert plan.data is None  # validate_suite looks for data only when asked
    data = placeholder_data(tmp_path / "data")
    checked = validate_suite(write_suite(tmp_path), data_dir=data, check_data=True).data
    assert checked is not None and checked.data_dir == data
    assert checked.by_dataset() == {"cifar10": f"{data / 'cifar10'} (Parquet)",
                                    "digits": "built in (scikit-learn)",
                                    "gtsrb": f"{data / 'gtsrb'} (Parquet)",
                                    "cifar10-coarse": f"{data / 'cifar10'} (Parquet)"}


def test_missing_data_names_the_first_and_counts_the_others(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_BENCH_DATA", str(tmp_path / "env"))  # no --data-dir: the variable
    with pytest.raises(DataError) as info:
        validate_suite(write_suite(tmp_path), check_data=True)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"dataset 'cifar10' (train) not found: looked for Parquet files "
                              f"{tmp_path / 'env' / 'cifar10' / 'train-*.parquet'}")
    assert message.endswith("; also missing: gtsrb (train), gtsrb (test), cifar10-coarse (train), "
                            "cifar10-coarse (test)")


def test_places_per_split_and_not_checked() -> None:
    check = DataCheck(Path("/d"), (Located("gtsrb", "train", "/d/gtsrb (Parquet)"),
                                   Located("gtsrb", "test", "/d/gtsrb (torchvision's layout)"),
                                   Located("theirs", "train", None), Located("theirs", "test", None)))
    assert check.by_dataset() == {"gtsrb": "train /d/gtsrb (Parquet); test /d/gtsrb (torchvision's layout)",
                                  "theirs": NOT_CHECKED}


def test_every_builtin_says_where_its_files_are() -> None:
    """Only third-party datasets may leave `locate` out (and go unchecked)."""
    assert [name for name in BUILTINS if DATASETS.get(name).locate is Dataset.locate] == []
