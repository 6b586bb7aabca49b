"""`pe-bench run --in-process`: the trials run one after another in the driver, without Ray.

The run is a subprocess in which `import ray` fails, so nothing on this path may need Ray; the
integration tests check that it gives the same numbers as the Ray path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pe_bench.cli import main
from pe_bench.results import scan
from tests.integration._support import cli_env, pe_bench, write_suite


@pytest.fixture
def no_ray(tmp_path: Path) -> dict[str, str]:
    """A subprocess environment in which `import ray` raises ImportError."""
    blocker = tmp_path / "blocker" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("ray is blocked in this test")\n')
    env = cli_env()
    env["PYTHONPATH"] = f"{blocker.parent}:{env['PYTHONPATH']}"
    return env


def test_runs_without_ray(tmp_path: Path, no_ray: dict[str, str]) -> None:
    suite = write_suite(tmp_path / "tiny.yaml", "tiny")
    store = tmp_path / "store"
    done = subprocess.run(pe_bench("run", suite, "--in-process", "--store", store), env=no_ray,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 ok, 0 failed" in done.stderr
    assert "pe-bench leaderboard: tiny" in done.stdout
    rows = scan(store, "tiny").to_pylist()
    assert sorted(r["attack"] for r in rows) == ["duplicate", "none"]
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["node_id"] is None and r["ray_version"] is None and r["torch_version"]
    # the attacked row found the clean twin in the cache the first row filled
    assert sum(r["cache_hits"] for r in rows) >= 1
    again = subprocess.run(pe_bench("run", suite, "--in-process", "--store", store, "--resume",
                                    "--no-leaderboard"), env=no_ray, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "0 ok, 0 failed, 2 already done" in again.stderr, again.stderr


def test_failing_trial_is_an_error_row_and_the_run_goes_on(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "bad.yaml", "bad")
    config = yaml.safe_load(suite.read_text())
    # the task's resolution differs from the pre-training set's: every trial must fail cleanly
    config["datasets"][0]["tasks"][0]["dataset"]["params"]["resolution"] = 8
    suite.write_text(yaml.safe_dump(config, sort_keys=False))
    store = tmp_path / "store"
    assert main(["run", str(suite), "--in-process", "--store", str(store), "--no-leaderboard"]) == 1
    rows = scan(store, "bad").to_pylist()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"error"}
    assert all("resolution" in r["error"] for r in rows), [r["error"] for r in rows]


def test_in_process_and_address_exclude_each_other(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path / "tiny.yaml", "tiny")
    assert main(["run", str(suite), "--in-process", "--address", "auto", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--in-process" in err and "--address" in err, err
