"""Content-addressed store for expensive artefacts (trained encoders).

Keys are hashes of everything an artefact depends on (see `TrialSpec.pretrain_key`). A file
lock per key makes concurrent trials on one machine (or on a shared filesystem) build each
artefact once: the first takes the lock and trains, the others wait and load. Weights are
written with `torch.save(state_dict)` and read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ArtifactCache:
    """`<root>/<kind>/<key>.pt` plus `<key>.json` metadata."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _paths(self, kind: str, key: str) -> tuple[Path, Path, Path]:
        base = self.root / kind / key
        return base.with_suffix(".pt"), base.with_suffix(".json"), base.with_suffix(".lock")

    def get_or_create(self, kind: str, key: str,
                      build: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]]
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any], bool]:
        """(state, metadata, hit): load the artefact, or build and store it under the lock."""
        weights, meta, lock = self._paths(kind, key)
        with _locked(lock):
            if weights.exists() and meta.exists():
                state = torch.load(weights, map_location="cpu", weights_only=True)
                return state, json.loads(meta.read_text()), True
            state, info = build()
            self._atomic(weights, lambda f: torch.save(state, f))
            self._atomic(meta, lambda f: f.write(json.dumps(info).encode()))
            return state, info, False

    @staticmethod
    def _atomic(target: Path, write: Callable[[Any], Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
