"""A recipe that asks for `cuda` where there is none fails in one line (issue #25, point 4):
in-process, before the run (exit 2); in a trial, as an error row naming why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from pe_bench.api import validate_suite
from pe_bench.cli import main
from pe_bench.config.spec import Resources
from pe_bench.engines.base import RunContext
from pe_bench.engines.trial import execute
from pe_bench.store.results import provenance, scan
from tests.integration._support import REPO, write_suite

DATA = REPO.parent / "shared" / "data"


def _cuda_suite(path: Path) -> Path:
    suite = write_suite(path, "cuda")
    config = yaml.safe_load(suite.read_text())
    config["train"]["device"] = "cuda"
    suite.write_text(yaml.safe_dump(config, sort_keys=False))
    return suite


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.usefixtures("no_cuda")
def test_in_process_run_that_asks_for_cuda_stops_before_any_trial(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (DATA / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not found in {DATA}")
    suite, store = _cuda_suite(tmp_path / "cuda.yaml"), tmp_path / "store"
    assert main(["run", str(suite), "--in-process", "--data-dir", str(DATA), "--store", str(store),
                 "--no-leaderboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.device is 'cuda' but this machine has none" in err, err
    assert not list(store.glob("suite=cuda/**/*.parquet"))
    assert scan(store, "cuda").num_rows == 0


@pytest.mark.usefixtures("no_cuda")
def test_trial_that_asks_for_cuda_without_one_is_a_one_line_error_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a Ray trial given no GPU (CUDA_VISIBLE_DEVICES="") the row says why, before reading data."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    suite = _cuda_suite(tmp_path / "cuda.yaml")
    spec = validate_suite(suite).grid.trials[0]
    ctx = RunContext(store=tmp_path, data_dir=tmp_path / "no-data", cache=str(tmp_path / "cache"),
                     run_id="r1", provenance=provenance(), resources=Resources(), max_concurrent=1,
                     source=str(suite))
    row = execute(ctx.trial_config(spec))
    assert row["status"] == "error" and "\n" not in row["error"]
    assert row["error"].startswith("DeviceError: train.device is 'cuda' but this machine has none "
                                   "(CUDA_VISIBLE_DEVICES is empty: the suite's resources ask for no GPU)")
