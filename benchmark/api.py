"""The Python API behind the CLI: validate_suite(), run_suite(), build_leaderboard().

Notebooks and tests call these directly; cli.py only parses arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pe_bench.errors import PeBenchError, SuiteError
from pe_bench.grid import Grid, expand
from pe_bench.leaderboard import Line, from_store
from pe_bench.suite import Suite, load_suite

if TYPE_CHECKING:
    import pyarrow as pa

    from pe_bench.sink import RunSummary
    from pe_bench.spec import TrialSpec


@dataclass(frozen=True)
class Plan:
    suite: Suite
    grid: Grid


def validate_suite(path: str | Path) -> Plan:
    """Load and fully validate a suite file, and expand its grid (raises SuiteError)."""
    suite = load_suite(path)
    return Plan(suite, expand(suite))


def default_cache_dir(store: Path) -> Path:
    """Trained encoders live beside the rows they produced, so a store is self-contained."""
    return store / "_cache"


def cache_location(store: Path, cache: str | Path | None) -> str:
    """Where workers keep encoders: a URI as given, a path made absolute. Opened here, before
    Ray starts, so a bad `--cache` is a one-line error (CacheLocationError)."""
    from pe_bench.cache import is_uri, open_location

    _, root = open_location(default_cache_dir(store) if cache is None else cache)
    return str(cache) if cache is not None and is_uri(cache) else root


def trial_states(rows: pa.Table) -> dict[str, str]:
    """trial_key -> "ok" when any row of it is ok, else the status of its latest row."""
    states: dict[str, tuple[bool, Any, str]] = {}
    for row in rows.select(["trial_key", "status", "finished_at"]).to_pylist():
        ok = row["status"] == "ok"
        rank = (ok, row["finished_at"] or datetime.min.replace(tzinfo=UTC))
        key = row["trial_key"]
        if key not in states or rank > states[key][:2]:
            states[key] = (*rank, row["status"])
    return {key: state[2] for key, state in states.items()}


def select_trials(trials: Sequence[TrialSpec], rows: pa.Table | None, *, resume: bool,
                  retry_failed: bool) -> list[TrialSpec]:
    """The cells a run executes: all; with `resume`, those without an ok row; with
    `retry_failed`, only those whose latest row is an error (cells never run are left out)."""
    if rows is None or not (resume or retry_failed):
        return list(trials)
    states = trial_states(rows)
    if retry_failed:
        return [t for t in trials if states.get(t.trial_key) == "error"]
    return [t for t in trials if states.get(t.trial_key) != "ok"]


def run_suite(path: str | Path, *, store: str | Path = "results", data_dir: str | Path | None = None,
              address: str | None = None, resume: bool = False, run_id: str | None = None,
              show_progress: bool = True, retry_failed: bool = False,
              cache: str | Path | None = None, in_process: bool = False) -> tuple[Plan, RunSummary]:
    """Validate, then run the suite's cells: every cell, or with `resume` the cells without an
    ok row, or with `retry_failed` the cells whose latest row is an error. Through Ray Tune, or
    with `in_process` one after another in this process without importing Ray."""
    if in_process and address:
        raise PeBenchError("--in-process runs without Ray: it cannot be combined with --address")
    plan = validate_suite(path)  # before the heavy imports: bad input fails fast
    from pe_bench.data import resolve_data_dir
    from pe_bench.progress import TrialProgress
    from pe_bench.results import new_run_id, provenance, scan
    from pe_bench.sink import RunSummary

    store = Path(store).resolve()
    cache_at = cache_location(store, cache)
    rows = scan(store, plan.suite.name) if resume or retry_failed else None
    todo = select_trials(plan.grid.trials, rows, resume=resume, retry_failed=retry_failed)
    rid = run_id or new_run_id()
    if not todo:
        return plan, RunSummary(rid)
    run = _in_process_runner() if in_process else _ray_runner(address, plan.suite, str(path))
    progress = TrialProgress(len(todo)) if show_progress else None
    with progress if progress is not None else contextlib.nullcontext():
        return plan, run(plan.suite, todo, store=store, data_dir=resolve_data_dir(data_dir),
                         cache=cache_at, run_id=rid, prov=provenance(), progress=progress)


def _in_process_runner() -> Any:
    from pe_bench.inprocess import run_in_process

    return run_in_process


def _ray_runner(address: str | None, suite: Suite, file: str) -> Any:
    import ray

    from pe_bench.runner import run_trials, start_ray, unmet_resources

    if not ray.is_initialized():
        start_ray(address, None)
    if not address:  # a cluster may add nodes on demand; this machine will not
        unmet = unmet_resources(suite)
        if unmet:
            key, asked, has = unmet
            raise SuiteError(file, f"resources.{key}", f"each trial asks for {asked:g} {key.upper()}s, this "
                             f"machine has {has:g}; lower it, join a cluster (--address) or use --in-process")
    return run_trials


def build_leaderboard(store: str | Path = "results", suite: str | None = None,
                      run: str | None = None) -> list[Line]:
    """Aggregate the store's latest ok rows (per trial key) into leaderboard lines, each
    counting its cell's failed trials."""
    return from_store(store, suite, run)
