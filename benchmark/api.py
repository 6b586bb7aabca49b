"""The Python API behind the CLI: validate_suite(), run_suite(), build_leaderboard().

Notebooks and tests call these directly; cli.py only parses arguments.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pe_bench.grid import Grid, expand
from pe_bench.leaderboard import Line, aggregate
from pe_bench.suite import Suite, load_suite

if TYPE_CHECKING:
    from pe_bench.runner import RunSummary


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


def run_suite(path: str | Path, *, store: str | Path = "results", data_dir: str | Path | None = None,
              address: str | None = None, resume: bool = False, run_id: str | None = None,
              show_progress: bool = True) -> tuple[Plan, RunSummary]:
    """Validate, then run every not-yet-done cell of the suite through Ray Tune."""
    plan = validate_suite(path)  # before the heavy imports: bad input fails fast
    from pe_bench.data import resolve_data_dir
    from pe_bench.progress import TrialProgress
    from pe_bench.results import latest_ok, new_run_id, provenance, scan
    from pe_bench.runner import RunSummary, run_trials, start_ray

    store = Path(store).resolve()
    done = {r["trial_key"] for r in latest_ok(scan(store, plan.suite.name))} if resume else set()
    todo = [s for s in plan.grid.trials if s.trial_key not in done]
    rid = run_id or new_run_id()
    if not todo:
        return plan, RunSummary(rid)
    import ray

    if not ray.is_initialized():
        start_ray(address, None)
    progress = TrialProgress(len(todo)) if show_progress else None
    with progress if progress is not None else contextlib.nullcontext():
        return plan, run_trials(plan.suite, todo, store=store, data_dir=resolve_data_dir(data_dir),
                                cache_dir=default_cache_dir(store), run_id=rid, prov=provenance(),
                                progress=progress)


def build_leaderboard(store: str | Path = "results", suite: str | None = None,
                      run: str | None = None) -> list[Line]:
    """Aggregate the store's latest ok rows (per trial key) into leaderboard lines."""
    from pe_bench.results import latest_ok, scan

    return aggregate(latest_ok(scan(Path(store), suite, run)))
