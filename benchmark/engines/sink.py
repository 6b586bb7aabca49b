"""Where a run's rows go as trials end, whichever engine ran them (Ray Tune or in-process).

The store's only writer in a run: each row is appended the moment its trial ends, once per
`trial_key`, so an interrupted run keeps every finished cell; the summary counts what landed.
A store that cannot be written raises StoreWriteError: the engines stop the run on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pe_bench.errors import StoreWriteError
from pe_bench.store.results import append


@dataclass
class RunSummary:
    run_id: str
    ok: int = 0
    errors: int = 0
    cache_hits: int = 0
    seconds: float = 0.0
    error_messages: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # `kind/name: old -> new` that `--resume` re-ran for
    rerun_stale: int = 0  # trials run again because a plugin they used changed version
    planned: int = 0  # trials this run set out to run (the rest of the grid was already done)
    total: int = 0  # trials of the suite's grid
    # wall seconds per trial_key, from the trial starting to its row arriving (under Ray: the
    # trial's own time_total_s plus Ray's share: worker start, imports, result transport)
    trial_seconds: dict[str, float] = field(default_factory=dict)


    @property
    def already_done(self) -> int:
        """Trials of the grid with a row from before this run (so not planned)."""
        return self.total - self.planned


class RowSink:
    """Appends rows to the store (each trial_key once) and keeps the run's summary."""

    def __init__(self, store: Path, summary: RunSummary, progress: Any = None) -> None:
        self.store, self.summary, self.progress = store, summary, progress
        self.written: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks (and with them this sink) for restores; the live
        progress display stays behind."""
        return {**self.__dict__, "progress": None}

    def started(self) -> None:
        if self.progress is not None:
            self.progress.started()

    def write(self, row: dict[str, Any], seconds: float | None = None) -> None:
        """Append `row` (once per trial_key); raises StoreWriteError when the store cannot be
        written, so the engine stops the run instead of losing every further row."""
        key = row["trial_key"]
        if key in self.written:
            return
        if seconds is not None:
            self.summary.trial_seconds[key] = seconds
        try:
            append(self.store, row)
        except OSError as exc:
            cause = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
            raise StoreWriteError(f"cannot write to the results store {self.store}: {cause}; the rows "
                                  "written before are kept (--resume goes on from there)") from exc
        self.written.add(key)
        if row["status"] == "ok":
            self.summary.ok += 1
            self.summary.cache_hits += row.get("cache_hits") or 0
        else:
            self.summary.errors += 1
            self.summary.error_messages.append(f"{key}: {row['error']}")
        if self.progress is not None:
            self.progress.finished(row["status"] == "ok")
