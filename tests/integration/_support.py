"""Shared by the integration tests: tiny suites derived from suites/smoke.yaml, the `pe-bench`
command as a subprocess, and a look at the processes of a session through /proc (Linux)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
HOOKS = "tests.integration.hooks"


def write_suite(path: Path, name: str, **changes: Any) -> Path:
    """suites/smoke.yaml shrunk to a few cheap cells (1 seed, 1 epoch, 256 images), then
    `changes` applied as top-level keys; the test hooks module is always importable."""
    suite = yaml.safe_load((REPO / "suites" / "smoke.yaml").read_text())
    suite.update(name=name, seeds=[0], plugins=[HOOKS])
    suite["train"]["epochs"] = 1
    suite["datasets"][0]["pretrain"]["max_images"] = 256
    attacks = {a if isinstance(a, str) else a["name"]: a for a in suite["attacks"]}
    suite["attacks"] = [attacks["none"], attacks["duplicate"]]
    suite.update(changes)
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def cli_env() -> dict[str, str]:
    """The environment of a `pe-bench` subprocess: the repository importable (test hooks) in
    the driver and, through the Ray processes it starts, in every worker."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    data = os.environ.get("PE_BENCH_DATA") or str(REPO.parent / "shared" / "data")
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PE_BENCH_DATA": data}


def pe_bench(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "pe_bench.cli", *map(str, args)]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()


def session_members(sid: int) -> set[int]:
    """Live (non-zombie) processes of session `sid`: what a driver started with
    start_new_session=True and everything Ray started under it, whatever their process group."""
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[3]) == sid:
                members.add(int(entry.name))
    return members


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str,
             proc: Any = None) -> None:
    """Poll `condition`; fail early if `proc` (a Popen) exits meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def reap_session(sid: int, timeout_s: float = 20.0) -> set[int]:
    """Wait for session `sid` to die out; SIGKILL and return any process still there after
    `timeout_s` (only pids of that session: processes this test started)."""
    deadline = time.monotonic() + timeout_s
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    stray = session_members(sid)
    for pid in stray:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return stray


def row_files(store: Path) -> set[Path]:
    return set(store.glob("suite=*/run=*/*.parquet"))


def artefacts(cache: Path) -> dict[str, tuple[int, int]]:
    """Encoder weights by name, with inode and mtime: a rewrite would change both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.glob("encoders/*.pt")}


def descendants(pid: int) -> set[int]:
    """Live (non-zombie) processes below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found



class FullDisk:
    """Stands in for `pyarrow.parquet.write_table` (patch it with monkeypatch): the first
    `room` writes go through, every later one fails as on a full disk. `calls` counts them."""

    def __init__(self, write: Callable[..., Any], room: int) -> None:
        self.write, self.room, self.calls = write, room, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.room:
            raise OSError(28, "No space left on device")
        return self.write(*args, **kwargs)
