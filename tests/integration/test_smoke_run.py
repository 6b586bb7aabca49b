"""End to end through Ray: `pe-bench run suites/smoke.yaml`, rows in Parquet, a leaderboard.

One Ray session for the whole module (ray.init costs seconds here). Attack success at smoke
scale is noise, so only the pipeline is checked, never the numbers' direction.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pe_bench.cli import main
from pe_bench.store.results import scan
from tests.integration._support import FullDisk

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    ray = pytest.importorskip("ray")
    path = tmp_path_factory.mktemp("store")
    yield path
    ray.shutdown()


@pytest.fixture(scope="module")
def smoke_run(store: Path) -> int:
    return main(["run", str(ROOT / "suites" / "smoke.yaml"), "--store", str(store), "--run-id", "first"])


def test_smoke_suite_writes_one_ok_row_per_cell(smoke_run: int, store: Path) -> None:
    assert smoke_run == 0
    rows = scan(store, "smoke").to_pylist()
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    assert len({r["trial_key"] for r in rows}) == 6
    assert {r["attack"] for r in rows} == {"none", "poisoned-encoder", "duplicate"}
    for r in rows:
        assert r["torch_version"] and r["ray_version"] and r["pe_bench_version"]
        assert 0.0 <= r["pa"] <= 1.0 and r["time_total_s"] > 0
        if r["attack"] == "none":
            assert r["n_poisons"] == 0 and r["pa"] == r["ca"] and r["asr"] is None
        else:
            # 5% of the 512 pre-training images the attacker split leaves
            assert r["n_pretrain"] < 512 and r["n_poisons"] == round(0.05 * r["n_pretrain"])
            assert r["n_targets"] == 3 and r["asr"] is not None
            assert r["time_pretrain_poisoned_s"] > 0
    # one clean twin per seed, and the attacks of one seed share their target pairs: the
    # clean-side numbers of both attacked rows of a seed are the same
    for seed in (0, 1):
        attacked = [r for r in rows if r["seed"] == seed and r["attack"] != "none"]
        assert len({(r["ca"], r["p_target_clean"], r["baseline_asr"]) for r in attacked}) == 1
    assert sum(r["cache_hits"] for r in rows) >= 4


def test_leaderboard_from_the_store(smoke_run: int, store: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "board.md"
    assert main(["leaderboard", "--store", str(store), "--suite", "smoke", "--format", "md",
                 "--out", str(out)]) == 0
    text = out.read_text()
    for attack in ("none", "poisoned-encoder", "duplicate"):
        assert f"| {attack} |" in text
    assert main(["leaderboard", "--store", str(store), "--suite", "smoke"]) == 0
    assert "pe-bench leaderboard" in capsys.readouterr().out


def test_resume_reruns_nothing(smoke_run: int, store: Path) -> None:
    assert main(["run", str(ROOT / "suites" / "smoke.yaml"), "--store", str(store), "--resume",
                 "--no-leaderboard"]) == 0
    assert scan(store, "smoke").num_rows == 6


def test_failing_trial_becomes_an_error_row(smoke_run: int, store: Path, tmp_path: Path) -> None:
    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    suite["name"] = "broken"
    suite["seeds"] = [0]
    suite["attacks"] = ["none"]
    # the task's resolution differs from the pre-training set's: the trial must fail cleanly
    suite["datasets"][0]["tasks"][0]["dataset"]["params"]["resolution"] = 8
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert main(["run", str(path), "--store", str(store), "--no-leaderboard"]) == 1
    (row,) = scan(store, "broken").to_pylist()
    assert row["status"] == "error" and "DataError" in row["error"] and "resolution" in row["error"]


RUN_SPECIFIC = {"run_id", "cache_hits", "train_images_per_s", "defense_cpu_s", "extra_train_cpu_s",
                "ray_version", "node_id",
                "hostname", "git_commit", "started_at", "finished_at"}


def test_in_process_run_gives_the_ray_run_numbers(smoke_run: int, store: Path, tmp_path: Path) -> None:
    """The same trials without Ray (`--in-process`, fresh store and cache): every metric equal
    to the Ray run's, bit for bit; only timings, cache hits and where it ran differ."""
    assert main(["run", str(ROOT / "suites" / "smoke.yaml"), "--in-process", "--store", str(tmp_path),
                 "--no-leaderboard"]) == 0
    by_key = {r["trial_key"]: r for r in scan(store, "smoke").to_pylist() if r["run_id"] == "first"}
    local = scan(tmp_path, "smoke").to_pylist()
    assert sorted(r["trial_key"] for r in local) == sorted(by_key)
    for row in local:
        ray_row = by_key[row["trial_key"]]
        differ = [k for k in row if k not in RUN_SPECIFIC and not k.startswith("time_")
                  and row[k] != ray_row[k]]
        assert not differ, {k: (row[k], ray_row[k]) for k in differ}
        assert row["node_id"] is None and ray_row["node_id"]


@pytest.mark.parametrize(("resources", "key"), [({"cpu": 64}, "resources.cpu"),
                                                ({"cpu": 1, "gpu": 1}, "resources.gpu")])
def test_resources_this_machine_cannot_give_fail_in_one_line(
        smoke_run: int, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        resources: dict, key: str) -> None:
    """Without --address, Tune would wait forever for a trial that asks for more than the
    local Ray session has: the run stops at once with one line naming the key, and writes nothing."""
    import ray

    if key == "resources.gpu" and ray.cluster_resources().get("GPU"):
        pytest.skip("this machine has a GPU")
    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    suite.update(name="greedy", resources=resources)
    path = tmp_path / "greedy.yaml"
    path.write_text(yaml.safe_dump(suite))
    capsys.readouterr()
    assert main(["run", str(path), "--store", str(store), "--no-leaderboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}: {key}: each trial asks for" in err, err
    assert "--in-process" in err
    assert scan(store, "greedy").num_rows == 0


def test_store_that_cannot_be_written_stops_the_ray_run(
        smoke_run: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The disk fills after the first row (the driver's callback writes rows, so the failure is
    injected here): Tune is stopped, the run ends with one line and exit status 1, no Tune
    traceback, and the row written before stays."""
    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    suite.update(name="full-disk", seeds=[0, 1, 2], attacks=["none"], max_concurrent=1)
    path = tmp_path / "full-disk.yaml"
    path.write_text(yaml.safe_dump(suite))
    store = tmp_path / "store"
    disk = FullDisk(pq.write_table, room=1)
    monkeypatch.setattr(pq, "write_table", disk)
    capsys.readouterr()
    assert main(["run", str(path), "--store", str(store), "--no-leaderboard"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("pe-bench:")]
    assert line.startswith(f"pe-bench: error: cannot write to the results store {store.resolve()}: "
                           "No space left on device"), err
    assert disk.calls == 2  # the first row and the failed second; nothing written after
    monkeypatch.undo()
    (kept,) = scan(store, "full-disk").to_pylist()
    assert kept["status"] == "ok" and kept["seed"] == 0
