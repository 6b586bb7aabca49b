"""A store that cannot be written (read-only, full disk) stops the run with one line, and
keeps every row written before it (RowSink; no Ray)."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pe_bench.errors import PeBenchError, StoreWriteError
from pe_bench.store.results import scan
from pe_bench.engines.sink import RowSink, RunSummary
from tests.rows import row


def sink_with_one_row(store: Path) -> RowSink:
    sink = RowSink(store, RunSummary("run1"))
    sink.write(row(0, [True]))
    return sink


def assert_stops_in_one_line(sink: RowSink, store: Path) -> None:
    with pytest.raises(StoreWriteError) as caught:
        sink.write(row(1, [False]))
    message = str(caught.value)
    assert isinstance(caught.value, PeBenchError) and "\n" not in message
    assert message.startswith(f"cannot write to the results store {store}: ")
    assert sink.summary.ok == 1 and scan(store).num_rows == 1  # the row written before stays
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]


NOBODY = 65534


def _attempt(sink: RowSink, record: dict[str, Any]) -> str:
    try:
        sink.write(record)
    except StoreWriteError as exc:
        return f"StoreWriteError: {exc}"
    return "written"


def write_as_unprivileged(sink: RowSink, record: dict[str, Any]) -> str:
    """`sink.write(record)` by a user whom file permissions bind: this process, or for root a
    forked child that drops to `nobody` (fork, not spawn: the child runs loaded code only)."""
    if os.geteuid() != 0:
        return _attempt(sink, record)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any of pytest's exit handlers
        os.close(read)
        message = "drop failed"
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            message = _attempt(sink, record)
        except BaseException as exc:  # noqa: B036 - everything goes back to the parent
            message = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, message.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


def test_a_read_only_store_stops_with_one_line() -> None:
    root = Path(tempfile.mkdtemp(prefix="pe-bench-ro-"))  # not under pytest's root-only tmp dir
    root.chmod(0o755)
    store = root / "store"
    sink = sink_with_one_row(store)
    folders = [store, *(p for p in store.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        message = write_as_unprivileged(sink, row(1, [False]))
    finally:
        for folder in folders:
            folder.chmod(0o755)
    try:
        assert message.startswith(f"StoreWriteError: cannot write to the results store {store}: "), message
        assert "\n" not in message and "Permission denied" in message
        assert scan(store).num_rows == 1  # the row written before stays
        assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]
    finally:
        shutil.rmtree(root)


def test_a_full_disk_stops_with_one_line(tmp_path: Path) -> None:
    """Files may not grow past 1 kB (RLIMIT_FSIZE): the write fails with EFBIG, as on a full
    disk, for root too."""
    store = tmp_path / "store"
    sink = sink_with_one_row(store)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    try:
        assert_stops_in_one_line(sink, store)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
