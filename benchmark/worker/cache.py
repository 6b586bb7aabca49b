"""Content-addressed store for expensive artefacts (trained encoders), on a local directory or
any filesystem URI pyarrow knows (`file:///...`, `s3://bucket/prefix`, `gs://bucket/prefix`).

Keys are hashes of everything an artefact depends on (see `TrialSpec.pretrain_key`). Weights are
written with `torch.save(state_dict)` and read with `torch.load(weights_only=True)`; each file is
written under a temporary name and moved into place, so a reader never sees half a file (and a
killed writer leaves only a temporary that nothing reads).

Concurrency: on a local filesystem (a plain path or `file://`, including a shared POSIX mount
that honours `flock`) a lock per key makes concurrent trials build each artefact once: the first
takes the lock and trains, the others load. A stored artefact is read without the lock (writes
are atomic). Nobody blocks inside `flock`: a trial that finds the key being built either turns
to other work (`get_or_create(..., wait=False)` answers None; the pipeline trains its other
encoder meanwhile) or polls (a non-blocking try every `POLL_S`, growing to `POLL_MAX_S`), so a
wait is interruptible and ends within `POLL_MAX_S` of the artefact appearing. The kernel drops
the lock of a builder that dies (killed, preempted, crashed), so a waiter takes the key over and
resumes from the builder's last checkpoint (`side files`, pe_bench.worker.checkpoint). Object
stores have no such lock, so there it is best effort: two trials that need the same missing
artefact at the same moment may both train it. Training is seeded, so both produce the same
encoder (bit-identical on CPU; on GPU, equivalent up to non-deterministic kernels), and the last
complete write wins.
"""

from __future__ import annotations

import fcntl
import io
import json
import pickle
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any, Literal, overload

import pyarrow as pa
import pyarrow.fs as pafs
import torch

from pe_bench.errors import PeBenchError

Build = Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]]
Usable = Callable[[dict[str, torch.Tensor]], bool]
Found = tuple[dict[str, torch.Tensor], dict[str, Any]]
Made = tuple[dict[str, torch.Tensor], dict[str, Any], bool]  # (state, metadata, hit)


class CacheLocationError(PeBenchError):
    """A cache location that is not a directory path or a filesystem URI pyarrow can open."""


def is_uri(location: str | Path) -> bool:
    return isinstance(location, str) and "://" in location


def open_location(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root path inside it); a plain path is made absolute, since workers on other
    machines or in other directories must find the same place."""
    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).expanduser().absolute())
    try:
        fs, root = pafs.FileSystem.from_uri(str(location))
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CacheLocationError(f"cache {location!r}: cannot open: {first}") from None
    return fs, root.rstrip("/")


POLL_S, POLL_MAX_S = 0.05, 2.0  # a waiter's first poll interval, and the longest


def _try_lock(path: Path) -> IO[str] | None:
    """The lock file, opened and locked (exclusive), or None if another holder has it. Each
    call opens its own file description, so threads of one process exclude each other too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def acquire(path: Path, wait: bool = True) -> IO[str] | None:
    """The key's lock, held; polls while another holder has it (None at once without `wait`).
    The kernel releases a lock whose holder died, so a poll then succeeds."""
    delay = POLL_S
    while (handle := _try_lock(path)) is None and wait:
        time.sleep(delay)
        delay = min(2 * delay, POLL_MAX_S)
    return handle


def release(handle: IO[str]) -> None:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


@contextmanager
def _held(handle: IO[str] | None) -> Iterator[None]:
    try:
        yield
    finally:
        if handle is not None:
            release(handle)


class ArtifactCache:
    """`<root>/<kind>/<key>.pt` plus `<key>.json` metadata (and `<key>.lock` when local).

    `lock=None` locks on local filesystems only; `lock=False` forces the object-store mode."""

    def __init__(self, root: str | Path, lock: bool | None = None) -> None:
        self.location = str(root)
        self.fs, self.root = open_location(root)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.lock = self.local if lock is None else lock and self.local

    def _path(self, kind: str, key: str, suffix: str) -> str:
        return f"{self.root}/{kind}/{key}{suffix}"

    def _exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type == pafs.FileType.File)

    def _guard(self, kind: str, key: str, wait: bool) -> tuple[bool, Any]:
        """(acquired, a context that releases it): always acquired without a lock."""
        if not self.lock:
            return True, nullcontext()
        handle = acquire(Path(self._path(kind, key, ".lock")), wait)
        return handle is not None, _held(handle)

    def _usable(self, kind: str, key: str, usable: Usable | None) -> Found | None:
        found = self.load(kind, key)
        return found if found is not None and (usable is None or usable(found[0])) else None

    @overload
    def get_or_create(self, kind: str, key: str, build: Build, usable: Usable | None = None,
                      wait: Literal[True] = True) -> Made: ...

    @overload
    def get_or_create(self, kind: str, key: str, build: Build, usable: Usable | None = None, *,
                      wait: bool) -> Made | None: ...

    def get_or_create(self, kind: str, key: str, build: Build, usable: Usable | None = None,
                      wait: bool = True) -> Made | None:
        """(state, metadata, hit): load the artefact, or build and store it (under the lock
        where there is one). A stored artefact that cannot be read, or that `usable` rejects,
        is built again and replaced. While another process builds it, poll until it is done
        (`wait`), or return None at once (`wait=False`: the caller does other work first)."""
        found = self._usable(kind, key, usable)  # lock-free: a stored artefact is complete
        if found is not None:
            return *found, True
        acquired, held = self._guard(kind, key, wait)
        if not acquired:
            return None
        with held:
            found = self._usable(kind, key, usable)
            if found is not None:
                return *found, True
            state, info = build()
            self.store(kind, key, state, info)
            return state, info, False

    def read_side(self, kind: str, key: str, suffix: str) -> bytes | None:
        path = self._path(kind, key, suffix)
        return self._read(path) if self._exists(path) else None

    def write_side(self, kind: str, key: str, suffix: str, data: bytes) -> None:
        """Atomically (temporary name, then moved into place), like the artefact itself."""
        self._write_once(self._path(kind, key, suffix), data)

    def delete_side(self, kind: str, key: str, suffix: str) -> None:
        path = self._path(kind, key, suffix)
        if self._exists(path):
            self.fs.delete_file(path)

    def load(self, kind: str, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The stored artefact, or None; metadata is written last, so its presence means the
        weights are complete."""
        weights, meta = self._path(kind, key, ".pt"), self._path(kind, key, ".json")
        if not (self._exists(meta) and self._exists(weights)):
            return None
        try:
            state = torch.load(io.BytesIO(self._read(weights)), map_location="cpu", weights_only=True)
            return state, json.loads(self._read(meta))
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            warnings.warn(f"pe-bench: rebuilding unreadable cached {kind}/{key}: {first}", stacklevel=2)
            return None

    def store(self, kind: str, key: str, state: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self._write_once(self._path(kind, key, ".pt"), buffer.getvalue())
        self._write_once(self._path(kind, key, ".json"), json.dumps(info).encode())

    def _read(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as handle:
            return bytes(handle.read())

    def _write_once(self, target: str, data: bytes) -> None:
        """Write under a unique temporary name, then move into place (a rename locally; a
        server-side copy on object stores, where the object appears whole or not at all)."""
        folder, name = target.rsplit("/", 1)
        self.fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with self.fs.open_output_stream(tmp) as handle:
                handle.write(data)
            self.fs.move(tmp, target)
        except BaseException:
            if self._exists(tmp):
                self.fs.delete_file(tmp)
            raise
