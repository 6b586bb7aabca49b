"""A failing cell becomes an error row, the others finish; `--retry-failed` reruns only it.

The failure comes from the test-flaky defense (tests/integration/hooks.py), which raises in the
Ray worker until a marker file exists. One in-process Ray session for the module.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from pe_bench.api import validate_suite
from pe_bench.cli import main
from pe_bench.store.results import scan
from tests.integration._support import write_suite

pytestmark = pytest.mark.ray


def test_retry_failed_runs_only_the_failed_cells(tmp_path: Path, ray_session: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    marker, store = tmp_path / "fixed", tmp_path / "store"
    suite = write_suite(tmp_path / "flaky.yaml", "flaky", attacks=["none"],
                        defenses=["none", {"name": "test-flaky", "params": {"marker": str(marker)}}])
    grid = {t.trial_key: t for t in validate_suite(suite).grid.trials}
    base = ["run", str(suite), "--store", str(store), "--no-leaderboard"]

    assert main([*base, "--run-id", "first"]) == 1
    err = capsys.readouterr().err
    assert "1 ok, 1 failed" in err and "flaky defense" in err
    first = {r["trial_key"]: r for r in scan(store, "flaky").to_pylist()}
    assert set(first) == set(grid)
    failed = {k for k, r in first.items() if r["status"] == "error"}
    assert [grid[k].defense.name for k in failed] == ["test-flaky"]
    error_row = first[next(iter(failed))]
    assert "RuntimeError: flaky defense" in error_row["error"] and "\n" not in error_row["error"]
    assert error_row["traceback"].startswith("Traceback") and "flaky defense" in error_row["traceback"]

    marker.touch()
    assert main([*base, "--run-id", "retry", "--retry-failed"]) == 0
    retried = scan(store, "flaky", "retry").to_pylist()
    assert {r["trial_key"] for r in retried} == failed and {r["status"] for r in retried} == {"ok"}

    rows = scan(store, "flaky").to_pylist()
    assert Counter(r["trial_key"] for r in rows if r["status"] == "ok") == Counter(set(grid))
    assert main([*base, "--run-id", "noop", "--retry-failed"]) == 0  # nothing left to retry
    assert "0 ok, 0 failed" in capsys.readouterr().err
    assert scan(store, "flaky").num_rows == len(rows)
    # the leaderboard counts the failure only while the trial had no ok row
    assert main(["leaderboard", "--store", str(store), "--run", "first", "--format", "csv"]) == 0
    assert sorted(r["failed"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))) == ["0", "1"]
    assert main(["leaderboard", "--store", str(store), "--format", "csv"]) == 0
    assert {r["failed"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out))} == {"0"}
