"""The Python API behind the CLI: validate_suite(), run_suite(), build_leaderboard().

Notebooks and tests call these directly; cli.py only parses arguments. `run_suite` is the run
layer between the CLI and an engine (see pe_bench.engines.base for the layers): it validates,
finds the data (pe_bench.datasets.locating), picks the cells still to run and the engine, builds
the run's `RunContext` and `RowSink`, and hands them to `Engine.run`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pe_bench.config import evidence
from pe_bench.config.evidence import Tested
from pe_bench.engines.base import Engine, RunContext
from pe_bench.engines.named import engine_named
from pe_bench.config.grid import Grid, expand
from pe_bench.report.leaderboard import from_store
from pe_bench.report.lines import Line
from pe_bench.config.suite import Suite, load_suite

if TYPE_CHECKING:
    import pyarrow as pa

    from pe_bench.engines.sink import RunSummary
    from pe_bench.config.spec import TrialSpec
    from pe_bench.datasets.locating import DataCheck


@dataclass(frozen=True)
class Plan:
    suite: Suite
    grid: Grid
    data: DataCheck | None = None  # where the grid's datasets are; None: not looked for
    evidence: tuple[Tested, ...] = ()  # its comparisons tested at more seeds (`evidence:`)

    @property
    def evidence_line(self) -> str:
        """Which suite tests each of its comparisons at more seeds ("" if it names none)."""
        return evidence.closing_line(self.suite, self.grid, list(self.evidence))


def validate_suite(path: str | Path, overrides: Sequence[str] = (), *, data_dir: str | Path | None = None,
                   check_data: bool = False) -> Plan:
    """Load and fully validate a suite file with its `--set` overrides (pe_bench.config.overrides),
    and expand its grid (raises SuiteError), and find which of its comparisons the suites its
    `evidence` names test at more seeds (pe_bench.config.evidence). With `check_data`, also locate
    its datasets (`find_data`; raises DataError for a missing one)."""
    suite = load_suite(path, overrides)
    grid = expand(suite)
    tested = tuple(evidence.find(path, suite, grid, strict=not overrides)) if suite.evidence else ()
    return Plan(suite, grid, find_data(grid, data_dir) if check_data else None, tested)


def find_data(grid: Grid, data_dir: str | Path | None = None, skip: str | None = None) -> DataCheck:
    """Where every dataset split the grid reads is, under the resolved data dir (`data_dir`,
    else $PE_BENCH_DATA, else the user cache): files found, none read, no torch. A missing
    split raises DataError, one line naming the dataset, the folders looked in and how to point
    at them. `skip`: why not to look (kept as the check's `skipped`)."""
    from pe_bench.datasets.loading import resolve_data_dir
    from pe_bench.datasets.locating import DataCheck, locate_data

    root = resolve_data_dir(data_dir)
    return DataCheck(root, skipped=skip) if skip else locate_data(grid.trials, root)


def remote_data_note(engine: str | Engine, address: str | None) -> str | None:
    """Why a run's data cannot be checked on this machine, or None: through Ray Client
    (`ray://`) the trials read the data dir on the cluster's machines, not here."""
    if engine == "ray" and address is not None and address.startswith("ray://"):
        return (f"data not checked before the run: its trials read the data dir on the Ray cluster "
                f"at {address}, not on this machine")
    return None


def default_cache_dir(store: Path) -> Path:
    """Trained encoders live beside the rows they produced, so a store is self-contained."""
    return store / "_cache"


def cache_location(store: Path, cache: str | Path | None) -> str:
    """Where workers keep encoders: a URI as given, a path made absolute. Opened here, before
    Ray starts, so a bad `--cache` is a one-line error (CacheLocationError)."""
    from pe_bench.worker.cache import is_uri, open_location

    _, root = open_location(default_cache_dir(store) if cache is None else cache)
    return str(cache) if cache is not None and is_uri(cache) else root


def _latest(rows: pa.Table) -> dict[str, tuple[bool, Any, str, str | None, int | None]]:
    """trial_key -> (ok, finished, status, plugin versions, training revision) of its latest ok
    row, else of its latest row."""
    columns = [c for c in ("trial_key", "status", "finished_at", "plugin_versions", "training_revision")
               if c in rows.column_names]
    states: dict[str, tuple[bool, Any, str, str | None, int | None]] = {}
    for row in rows.select(columns).to_pylist():
        rank = (row["status"] == "ok", row["finished_at"] or datetime.min.replace(tzinfo=UTC))
        key = row["trial_key"]
        if key not in states or rank > states[key][:2]:
            states[key] = (*rank, row["status"], row.get("plugin_versions"), row.get("training_revision"))
    return states


def trial_states(rows: pa.Table) -> dict[str, str]:
    """trial_key -> "ok" when any row of it is ok, else the status of its latest row."""
    return {key: state[2] for key, state in _latest(rows).items()}


def stale_trials(trials: Sequence[TrialSpec], rows: pa.Table) -> dict[str, list[str]]:
    """trial_key -> what changed since the trial's latest ok row was written, for each trial
    where anything did: the plugins whose version changed (`kind/name: old -> new`) and the
    training revision (a row without one was written at revision 4 or earlier). `--resume` runs
    these again, so a store never passes one version's results off as another's."""
    from pe_bench.config.spec import TRAINING_REVISION
    from pe_bench.plugins.registry import plugin_versions
    from pe_bench.store.versions import changed

    latest = _latest(rows)
    found: dict[str, list[str]] = {}
    for t in trials:
        state = latest.get(t.trial_key)
        if state is None or not state[0]:
            continue
        why = changed(state[3], plugin_versions(t.plugins_used()))
        if state[4] != TRAINING_REVISION:
            why.append(f"training revision {state[4] or '<= 4'} -> {TRAINING_REVISION}")
        if why:
            found[t.trial_key] = why
    return found


def select_trials(trials: Sequence[TrialSpec], rows: pa.Table | None, *, resume: bool,
                  retry_failed: bool, stale: Collection[str] = ()) -> list[TrialSpec]:
    """The cells a run executes: all; with `resume`, those without an ok row or whose plugins
    changed version since (`stale` trial keys); with `retry_failed`, only those whose latest
    row is an error (cells never run are left out)."""
    if rows is None or not (resume or retry_failed):
        return list(trials)
    states = trial_states(rows)
    if retry_failed:
        return [t for t in trials if states.get(t.trial_key) == "error"]
    return [t for t in trials if states.get(t.trial_key) != "ok" or t.trial_key in stale]


def run_suite(path: str | Path, *, store: str | Path = "results", data_dir: str | Path | None = None,
              engine: str | Engine = "ray", address: str | None = None, resume: bool = False,
              run_id: str | None = None, show_progress: bool = True, retry_failed: bool = False,
              cache: str | Path | None = None, overrides: Sequence[str] = (),
              redeclare: bool = False) -> tuple[Plan, RunSummary]:
    """Validate (with `--set` `overrides`) and find the data (`find_data`: a missing dataset is a
    DataError before any engine starts), then run the suite's cells: every cell, or with
    `resume` the cells without an ok row, or with `retry_failed` the cells whose latest row is
    an error. `engine` is a built-in engine's name (`ray`, joining `address` if given, or
    `in-process`, which never imports Ray) or any `pe_bench.engines.base.Engine`. Records the
    suite's comparisons first (pe_bench.store.declarations: changed ones need `redeclare`).
    Raises StoreWriteError when the store cannot be written (the rows written before stay)."""
    plan = validate_suite(path, overrides)  # before the heavy imports: bad input fails fast
    data = find_data(plan.grid, data_dir, remote_data_note(engine, address))  # missing data too
    plan = replace(plan, data=data)
    chosen = engine_named(engine, address) if isinstance(engine, str) else engine
    from pe_bench.progress import TrialProgress
    from pe_bench.store.results import new_run_id, provenance, scan
    from pe_bench.engines.sink import RowSink, RunSummary
    from pe_bench.store.declarations import record

    store = Path(store).resolve()
    ctx = RunContext(store=store, data_dir=data.data_dir, cache=cache_location(store, cache),
                     run_id=run_id or new_run_id(), provenance=provenance(),
                     resources=plan.suite.resources, max_concurrent=plan.suite.max_concurrent,
                     source=str(path))
    record(store, plan.suite.name, plan.suite.comparisons, redeclare, plan.evidence_line, plan.suite.description)
    rows = scan(store, plan.suite.name) if resume or retry_failed else None
    stale = stale_trials(plan.grid.trials, rows) if rows is not None and resume else {}
    todo = select_trials(plan.grid.trials, rows, resume=resume, retry_failed=retry_failed, stale=stale)
    summary = RunSummary(ctx.run_id, stale=sorted({p for plugins in stale.values() for p in plugins}),
                         rerun_stale=len(stale), planned=len(todo), total=len(plan.grid.trials))
    if not todo:
        return plan, summary
    progress = TrialProgress(len(todo)) if show_progress else None
    start = time.perf_counter()
    with progress if progress is not None else contextlib.nullcontext():
        chosen.run(todo, ctx, RowSink(store, summary, progress))
    summary.seconds = time.perf_counter() - start
    return plan, summary


def build_leaderboard(store: str | Path = "results", suite: str | None = None,
                      run: str | None = None) -> list[Line]:
    """Aggregate the store's latest ok rows (per trial key) into leaderboard lines, each
    counting its cell's failed trials."""
    return from_store(store, suite, run)
