"""`pe-bench run` SIGKILLed mid-run, then `--resume`d with the same command.

The grid has two cells: `none` (finishes, writes its row) and `duplicate` with the test-stall
defense, which blocks after both of its encoders are trained and cached. The driver's whole
session is killed while the second cell stalls; the resumed run must keep the first cell's row,
rerun only the second, and load its encoders from the cache instead of training them again.
The killed driver is a subprocess; the resumed run is in-process (this module's one Ray session).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from pe_bench.api import validate_suite
from pe_bench.cli import main
from pe_bench.store.results import scan
from tests.integration._support import (
    REPO,
    artefacts,
    cli_env,
    pe_bench,
    reap_session,
    row_files,
    session_members,
    wait_for,
    write_suite,
)

pytestmark = pytest.mark.ray


def kill_suite(tmp_path: Path, marker: Path) -> Path:
    return write_suite(
        tmp_path / "killme.yaml", "killme",
        defenses=["none", {"name": "test-stall", "params": {"marker": str(marker)}}],
        exclude=[{"attack": "none", "defense": "test-stall"}, {"attack": "duplicate", "defense": "none"}],
    )


def start_and_kill(command: list[str], store: Path, marker: Path, log: Path) -> None:
    """Run until a row exists and the stall cell has trained its encoders, then SIGKILL the
    driver's process group; every process of its session must die with it."""
    with open(log, "w") as out:
        driver = subprocess.Popen(command, cwd=REPO, env=cli_env(), start_new_session=True,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        reached = marker.with_name(marker.name + ".reached")
        wait_for(lambda: reached.exists() and bool(row_files(store)), 150, "a row and the stall",
                 driver)
        assert len(session_members(driver.pid)) > 2, "expected Ray's processes in the session"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        stray = reap_session(driver.pid)
    assert not stray, f"processes outlived the killed driver: {stray}\n{log.read_text()[-2000:]}"


def test_resume_after_sigkill_reruns_only_unfinished_cells(tmp_path: Path, ray_session: None,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    marker, store = tmp_path / "release", tmp_path / "store"
    suite = kill_suite(tmp_path, marker)
    command = pe_bench("run", suite, "--store", store, "--run-id", "a", "--no-leaderboard")
    start_and_kill(command, store, marker, tmp_path / "first.log")

    rows_before = {p: p.read_bytes() for p in row_files(store)}
    done_before = {r["trial_key"] for r in scan(store).to_pylist()}
    cached_before = artefacts(store / "_cache")
    assert len(rows_before) == 1 and len(cached_before) >= 2  # clean twin + poisoned encoder
    assert (store / "_tune" / "a").is_dir()  # the killed run's Tune folder stays in the way
    run_dir = next(iter(rows_before)).parent
    (run_dir / ".0123456789abcdef-deadbeef.parquet.tmp").write_bytes(b"PAR1 half a row")

    marker.touch()
    capsys.readouterr()
    assert main([*command[3:], "--resume"]) == 0  # the same arguments, plus --resume
    assert "1 ok, 0 failed, 1 already done" in capsys.readouterr().err

    grid = {t.trial_key for t in validate_suite(suite).grid.trials}
    rows = scan(store, "killme").to_pylist()
    assert Counter(r["trial_key"] for r in rows if r["status"] == "ok") == Counter(grid)
    assert all(r["status"] == "ok" for r in rows)
    assert all(p.read_bytes() == data for p, data in rows_before.items())  # untouched
    new = [r for r in rows if r["trial_key"] not in done_before]
    assert len(new) == 1 and new[0]["defense"] == "test-stall"
    # both encoders of the stalled cell were trained before the kill: loaded, not retrained
    assert new[0]["cache_hits"] >= 2
    cached_after = artefacts(store / "_cache")
    assert {k: cached_after.get(k) for k in cached_before} == cached_before
