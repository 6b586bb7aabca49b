"""Missing data fails before anything runs: `run` and `validate` locate every dataset a suite
reads (files found, none read) and stop with exit status 2 and one line for a missing one;
`validate` prints where each dataset was found. No engine is ever built here."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from pe_bench import api
from pe_bench.api import run_suite
from pe_bench.cli import main
from pe_bench.config.spec import TrialSpec
from pe_bench.engines.base import Engine, RunContext
from pe_bench.engines.sink import RowSink
from pe_bench.errors import DataError, PeBenchError
from pe_bench.store.results import scan
from tests.helpers import placeholder_data

pytestmark = pytest.mark.usefixtures("isolated")
REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO.parent / "shared" / "data"
SUITE = """\
name: needs-cifar
seeds: [0]
train: {{epochs: 1, batch_size: 32}}
datasets:
  - name: cifar
    pretrain: {{dataset: {dataset}, max_images: 100}}
    tasks: [{{name: task, dataset: {dataset}, train_size: 100, test_size: 50}}]
encoders: [{{name: simclr, params: {{width: 4}}}}]
attacks: [none]
{extra}"""
THIRD_PARTY = '''
from pathlib import Path

from pe_bench.datasets.base import Dataset, ImageArray
from pe_bench.plugins.registry import register_dataset


@register_dataset("test-no-locate")
class NoLocate(Dataset):
    """A dataset written before `locate` existed: `load` only."""

    def load(self, split: str, data_dir: Path) -> ImageArray:
        raise NotImplementedError
'''


class Recorder:
    """An engine that only records what it was given."""

    def __init__(self) -> None:
        self.trials: list[TrialSpec] = []

    def run(self, specs: Sequence[TrialSpec], ctx: RunContext, sink: RowSink) -> None:
        self.trials.extend(specs)


def write_suite(tmp_path: Path, dataset: str = "cifar10", extra: str = "") -> Path:
    path = tmp_path / "needs-cifar.yaml"
    path.write_text(SUITE.format(dataset=dataset, extra=extra), encoding="utf-8")
    return path


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pe-bench: error: "), stderr
    return lines[0]


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building any built-in engine fails the test: the check comes first."""
    def refuse(name: str, address: str | None = None) -> Engine:
        raise AssertionError(f"engine {name!r} built before the data check")

    monkeypatch.setattr(api, "engine_named", refuse)


@pytest.mark.parametrize("command", [["validate"], ["run"], ["run", "--in-process"]])
def test_missing_dataset_is_exit_2_and_one_line_before_any_trial(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_engine: None) -> None:
    suite, empty, store = write_suite(tmp_path), tmp_path / "empty", tmp_path / "store"
    empty.mkdir()
    extra = ["--store", str(store)] if command[0] == "run" else []
    assert main([*command, str(suite), "--data-dir", str(empty), *extra]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = one_line(err)
    assert line.startswith("pe-bench: error: dataset 'cifar10' (train) not found: looked for Parquet files "
                           f"{empty / 'cifar10' / 'train-*.parquet'} and torchvision's layout in "
                           f"{empty / 'cifar10'}; pass --data-dir DIR or set PE_BENCH_DATA"), line
    assert line.endswith("; also missing: cifar10 (test)"), line
    assert scan(store, "needs-cifar").num_rows == 0 and not store.exists()
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_run_suite_never_calls_the_engine_for_missing_data(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PE_BENCH_DATA", str(tmp_path / "nothing"))  # the data dir without --data-dir
    engine = Recorder()
    with pytest.raises(DataError, match=f"looked for Parquet files {tmp_path / 'nothing' / 'cifar10'}"):
        run_suite(write_suite(tmp_path), store=tmp_path / "store", engine=engine, show_progress=False)
    assert engine.trials == [] and not (tmp_path / "store").exists()
    found = placeholder_data(tmp_path / "data")
    plan, _ = run_suite(write_suite(tmp_path), store=tmp_path / "store", engine=engine, data_dir=found,
                        show_progress=False)
    assert plan.data is not None and plan.data.data_dir == found and len(engine.trials) == 1


def test_validate_prints_where_each_dataset_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = placeholder_data(tmp_path / "data")
    assert main(["validate", str(REPO / "suites" / "smoke.yaml"), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index(f"  data in {data}:")
    assert out[start + 1] == "    digits: built in (scikit-learn)"
    assert out[start + 2].startswith("  poison budgets: --budgets crafts each attack setting once")
    assert main(["validate", str(write_suite(tmp_path)), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"    cifar10: {data / 'cifar10'} (Parquet)"  # no attack: no budget to check


@pytest.mark.data
def test_validate_finds_the_real_data(capsys: pytest.CaptureFixture[str]) -> None:
    if not (SHARED_DATA / "cifar10").is_dir() or not (SHARED_DATA / "gtsrb").is_dir():
        pytest.skip(f"real data not found in {SHARED_DATA}")
    assert main(["validate", str(REPO / "suites" / "quick.yaml"), "--data-dir", str(SHARED_DATA),
                 "--budgets"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    start = lines.index(f"  data in {SHARED_DATA}:")
    assert lines[start:start + 4] == [f"  data in {SHARED_DATA}:", "    digits: built in (scikit-learn)",
                                      f"    cifar10: {SHARED_DATA / 'cifar10'} (Parquet)",
                                      f"    gtsrb: {SHARED_DATA / 'gtsrb'} (Parquet)"]
    # quick.yaml's PoisonedEncoder repeats images at its budget: validate says so before the run
    assert "    digits × poisoned-encoder: 108 poisons, 49 distinct (seed 0)" in lines


def test_third_party_dataset_without_locate_is_not_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pe_bench_test_no_locate.py").write_text(THIRD_PARTY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = write_suite(tmp_path, "test-no-locate", "plugins: [pe_bench_test_no_locate]\n")
    assert main(["validate", str(suite), "--data-dir", str(tmp_path / "empty")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "    test-no-locate: not checked (its plugin does not say where its files are)"
    engine = Recorder()
    run_suite(suite, store=tmp_path / "store", engine=engine, data_dir=tmp_path / "empty",
              show_progress=False)
    assert len(engine.trials) == 1  # the run goes on; its trials find out


def test_ray_client_run_skips_the_check_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Through `ray://` the trials read the data dir on the cluster, not on this machine."""
    def stop(name: str, address: str | None = None) -> Engine:
        raise PeBenchError(f"stopped at the {name} engine")

    monkeypatch.setattr(api, "engine_named", stop)
    argv = ["run", str(write_suite(tmp_path)), "--data-dir", str(tmp_path / "empty"), "--store",
            str(tmp_path / "store"), "--address", "ray://head:10001"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["pe-bench: note: data not checked before the run: its trials read the data dir on the "
                   "Ray cluster at ray://head:10001, not on this machine",
                   "pe-bench: error: stopped at the ray engine"]
