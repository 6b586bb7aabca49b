"""What keeps a store and a cache usable when runs overlap, die or meet damaged files (no Ray).

Rows come from tests/rows.py, so every store test follows the row schema together. The
end-to-end kill/resume/retry checks live in tests/integration/.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from pe_bench.api import select_trials, trial_states
from pe_bench.worker.cache import ArtifactCache, CacheLocationError
from pe_bench.cli import main
from pe_bench.store.results import append, scan, validate_row
from pe_bench.config.spec import TrialSpec
from tests.rows import error_row, trial
from tests.rows import row as _row

REPO = Path(__file__).resolve().parents[3]
ROWS_PER_WRITER = 40


def ok_row(seed: int, run_id: str = "run1", age_s: float = 3.0) -> dict:
    return _row(seed, [True, False], run_id, age_s)


def spec(seed: int) -> TrialSpec:
    return trial(seed=seed)


def _append_rows(store: str, run_id: str, n: int) -> None:
    """One writer: n rows, one per seed, in its own run folder."""
    for seed in range(n):
        append(Path(store), ok_row(seed, run_id))


# -- the Parquet store ------------------------------------------------------------------------------
def test_two_writer_processes_lose_and_tear_nothing(tmp_path: Path) -> None:
    rows = [(tmp_path, ok_row(seed, f"w{seed % 2}")) for seed in range(2 * ROWS_PER_WRITER)]
    # spawn (no fork of a process holding Arrow threads); the workers import only pe_bench.store.results
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pending = pool.starmap_async(append, rows, chunksize=1)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", "skipping unreadable")  # never a half-written file
            while not pending.ready():
                scan(tmp_path)
                time.sleep(0.01)
        written = pending.get()
    assert len(set(written)) == len(rows)
    got = scan(tmp_path).to_pylist()
    assert len(got) == len(rows)
    assert {(r["run_id"], r["seed"]) for r in got} == {(row["run_id"], row["seed"]) for _, row in rows}
    assert all(r["asr"] == 0.5 and r["tasks"][0]["targets"][0]["hit"] for r in got)
    assert len({Path(p).parent.name for p in written}) == 2


def test_two_writer_threads_share_one_run_folder(tmp_path: Path) -> None:
    threads = [threading.Thread(target=_append_rows, args=(str(tmp_path), "same", 25)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = scan(tmp_path).to_pylist()
    assert len(rows) == 50 and len({r["trial_key"] for r in rows}) == 25


def damaged_store(store: Path) -> Path:
    """Two good rows, a corrupt file, a truncated one, and a killed writer's temporary."""
    good = append(store, ok_row(0))
    append(store, ok_row(1))
    folder = good.parent
    (folder / "corrupt-00000000.parquet").write_bytes(b"PAR1 garbage PAR1")
    data = good.read_bytes()
    (folder / "truncated-00000000.parquet").write_bytes(data[: len(data) // 2])
    (folder / f".{good.stem}-deadbeef.parquet.tmp").write_bytes(data[:100])
    return folder


def test_scan_skips_truncated_and_half_written_files(tmp_path: Path) -> None:
    damaged_store(tmp_path)
    with pytest.warns(UserWarning) as caught:
        table = scan(tmp_path)
    assert table.num_rows == 2 and {r["seed"] for r in table.to_pylist()} == {0, 1}
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and "corrupt-" in messages[0] and "truncated-" in messages[1]
    assert not any(".tmp" in m for m in messages)


def test_leaderboard_cli_shows_good_rows_of_a_damaged_store(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    damaged_store(tmp_path)
    with pytest.warns(UserWarning, match="skipping unreadable"):
        assert main(["leaderboard", "--store", str(tmp_path), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].startswith("dataset,") and len(lines) == 2  # one cell, both seeds
    assert "Traceback" not in err


# -- which cells a run executes --------------------------------------------------------------------------
def table(rows: list[dict]) -> pa.Table:
    return pa.concat_tables([validate_row(r) for r in rows])


def test_trial_states_ok_wins_then_latest() -> None:
    rows = [ok_row(0, age_s=9), error_row(0, age_s=1),  # ok, then a failed rerun: still ok
            error_row(1, age_s=9), ok_row(1, age_s=1),  # retried successfully
            ok_row(2, age_s=1), error_row(2, age_s=9),
            error_row(3, age_s=9), error_row(3, age_s=1)]
    states = trial_states(table(rows))
    assert states == {spec(s).trial_key: "ok" for s in (0, 1, 2)} | {spec(3).trial_key: "error"}


def test_select_trials_for_resume_and_retry() -> None:
    grid = [spec(s) for s in range(4)]  # 0 ok, 1 failed, 2 failed then ok, 3 never ran
    rows = table([ok_row(0), error_row(1), error_row(2, age_s=9), ok_row(2, age_s=1)])
    assert select_trials(grid, None, resume=False, retry_failed=False) == grid
    assert select_trials(grid, rows, resume=False, retry_failed=False) == grid
    assert select_trials(grid, rows, resume=True, retry_failed=False) == [grid[1], grid[3]]
    assert select_trials(grid, rows, resume=True, retry_failed=True) == [grid[1]]
    assert select_trials(grid, rows, resume=False, retry_failed=True) == [grid[1]]


# -- the artefact cache -----------------------------------------------------------------------------------
def weights(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3, 2), value), "b": torch.arange(2.0)}


@pytest.mark.parametrize("lock", [None, False], ids=["file-uri-locked", "object-store-mode"])
def test_cache_on_a_file_uri(tmp_path: Path, lock: bool | None) -> None:
    cache = ArtifactCache(f"file://{tmp_path}/cache", lock=lock)
    state, info, hit = cache.get_or_create("encoders", "k1", lambda: (weights(1.0), {"seconds": 2.0}))
    assert not hit and info == {"seconds": 2.0}
    again = ArtifactCache(f"file://{tmp_path}/cache", lock=lock)
    state2, info2, hit2 = again.get_or_create("encoders", "k1", lambda: pytest.fail("rebuilt"))
    assert hit2 and info2 == info and all(torch.equal(state[k], state2[k]) for k in state)
    files = sorted(p.name for p in (tmp_path / "cache" / "encoders").iterdir())
    assert files == (["k1.json", "k1.lock", "k1.pt"] if lock is None else ["k1.json", "k1.pt"])
    # a plain path to the same folder is the same cache
    assert ArtifactCache(tmp_path / "cache").get_or_create("encoders", "k1", lambda: pytest.fail())[2]


def test_local_lock_builds_once_object_store_mode_may_build_twice(tmp_path: Path) -> None:
    def race(cache_root: str, lock: bool | None) -> list[bool]:
        started, builds = threading.Barrier(2), []

        def build() -> tuple[dict[str, torch.Tensor], dict[str, float]]:
            builds.append(True)
            return weights(7.0), {"seconds": 1.0}

        def worker() -> None:
            started.wait()
            state, _, _ = ArtifactCache(cache_root, lock=lock).get_or_create("encoders", "k", build)
            assert torch.equal(state["w"], weights(7.0)["w"])

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return builds

    assert len(race(str(tmp_path / "locked"), None)) == 1
    assert 1 <= len(race(f"file://{tmp_path}/unlocked", False)) <= 2
    state, _, hit = ArtifactCache(f"file://{tmp_path}/unlocked").get_or_create(
        "encoders", "k", lambda: pytest.fail("rebuilt"))
    assert hit and torch.equal(state["w"], weights(7.0)["w"])
    assert not list((tmp_path / "unlocked").rglob("*.tmp"))


def test_cache_ignores_a_killed_writers_leftovers(tmp_path: Path) -> None:
    folder = tmp_path / "encoders"
    folder.mkdir()
    (folder / ".k.pt.0123abcd.tmp").write_bytes(b"half a file")
    (folder / "k.pt").write_bytes(b"weights without metadata: the writer died before the .json")
    _, _, hit = ArtifactCache(tmp_path).get_or_create("encoders", "k", lambda: (weights(2.0), {}))
    assert not hit
    state, _, hit = ArtifactCache(tmp_path).get_or_create("encoders", "k", lambda: pytest.fail())
    assert hit and torch.equal(state["w"], weights(2.0)["w"])


def test_unknown_cache_uri_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CacheLocationError, match="bogus://x"):
        ArtifactCache("bogus://x/cache")
    store = tmp_path / "store"
    argv = ["run", str(REPO / "suites" / "smoke.yaml"), "--store", str(store), "--cache", "bogus://x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pe-bench: error: cache 'bogus://x': cannot open")
    assert not store.exists()
