"""The Ray Tune driver: one grid_search over our own trial specs, rows written as trials end.

The driver is the store's only writer: a callback appends each trial's row the moment it
reports (or an error row when the trial's worker dies), so an interrupted run keeps every
finished cell. Rows are keyed by our `trial_key`, never by Tune's result order.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from ray import tune

from pe_bench.results import build_row, row_from_json
from pe_bench.sink import RowSink, RunSummary
from pe_bench.spec import TrialSpec
from pe_bench.suite import Suite
from pe_bench.trial import trainable, trial_config

WORKER_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "RAY_AIR_NEW_OUTPUT": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}


class StoreWriter(tune.Callback):
    """Hands each trial's row to the run's `RowSink` as soon as the trial reports or dies."""

    def __init__(self, store: Path, run_id: str, prov: dict[str, Any], summary: RunSummary,
                 progress: Any = None) -> None:
        self.run_id, self.prov = run_id, prov
        self.sink = RowSink(store, summary, progress)
        self.started: dict[str, float] = {}

    def write(self, row: dict[str, Any], trial_id: str | None = None) -> None:
        seconds = time.perf_counter() - self.started[trial_id] if trial_id in self.started else None
        self.sink.write(row, seconds)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.perf_counter()
        self.sink.started()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if "row_json" in result:
            self.write(row_from_json(result["row_json"]), trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = TrialSpec.model_validate_json(trial.config["spec"])
        if spec.trial_key in self.sink.written:
            return
        message = " ".join(str(trial.get_error() or "trial failed").split())[:2000]
        self.write(build_row(spec, self.run_id, self.prov, datetime.now(UTC), None, message), trial.trial_id)


def start_ray(address: str | None, num_cpus: float | None) -> None:
    """Join a cluster (`address`) or start a private local Ray with quiet logs.

    Without `--address`, `ray.init()` would silently join whatever cluster `ray start` left
    on this machine (someone else's, or a half torn-down one); a local run gets its own."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False,
        "runtime_env": {"env_vars": WORKER_ENV},
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=int(num_cpus) if num_cpus else None, **kwargs)


def unmet_resources(suite: Suite) -> tuple[str, float, float] | None:
    """(key, asked per trial, available) for the first resource the Ray session can never give
    one trial (Tune would otherwise wait for it forever), else None."""
    total = ray.cluster_resources()
    for key, asked in (("cpu", suite.resources.cpu), ("gpu", suite.resources.gpu)):
        has = float(total.get(key.upper(), 0.0))
        if asked and asked > has:
            return key, float(asked), has
    return None


def run_trials(suite: Suite, specs: Sequence[TrialSpec], *, store: Path, data_dir: Path,
               cache: str, run_id: str, prov: dict[str, Any], progress: Any = None
               ) -> RunSummary:
    """Run `specs` as Tune trials (Ray must be initialised); rows land in `store`, encoders in
    `cache` (a directory or a filesystem URI, see pe_bench.cache)."""
    summary = RunSummary(run_id)
    start = time.perf_counter()
    if not specs:
        return summary
    base = trial_config(suite, data_dir, cache, run_id, prov)
    resources = {"cpu": suite.resources.cpu, "gpu": suite.resources.gpu}
    writer = StoreWriter(store, run_id, prov, summary, progress)
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={**base, "spec": tune.grid_search([s.model_dump_json() for s in specs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=suite.max_concurrent),
        run_config=tune.RunConfig(
            name=run_id, storage_path=str((store / "_tune").resolve()), verbose=0,
            callbacks=[writer], failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    grid = tuner.fit()
    for result in grid:  # safety net: a result whose row the callback did not see
        if result.metrics and "row_json" in result.metrics:
            writer.write(row_from_json(result.metrics["row_json"]))
    summary.seconds = time.perf_counter() - start
    return summary
