"""The Ray Tune engine: one grid_search over our own trial specs, rows written as trials end.

The only module that imports Ray. The driver is the store's only writer: a Tune callback hands
each trial's row to the run's `RowSink` the moment the trial reports (or an error row when the
trial's worker dies), so an interrupted run keeps every finished cell. Rows are keyed by our
`trial_key`, never by Tune's result order. A store that cannot be written stops the experiment
(a Tune stopper) and the run ends with that one error; an exception inside a callback would
instead end `tuner.fit()` with Tune's traceback. GPUs go only where the suite's resources
ask for them: a trial Ray gives no GPU sees none (`hide_unrequested_gpus`), and a `cuda`
recipe in trials that ask for none is refused before Ray starts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import ray
from ray import tune

from pe_bench.engines.base import RunContext
from pe_bench.errors import StoreWriteError, SuiteError
from pe_bench.store.results import build_row, package_version, row_from_json, row_to_json
from pe_bench.engines.sink import RowSink
from pe_bench.config.spec import TrialSpec
from pe_bench.engines.trial import execute

WORKER_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "RAY_AIR_NEW_OUTPUT": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}


# Tune restarts a trial whose worker died (a preempted node, an OOM kill) up to this many times;
# the restarted trial resumes its pre-training from the last checkpoint (pe_bench.worker.checkpoint).
# A Python error inside a trial is never retried: `trial.execute` turns it into an error row.
RETRIES = 3


def node_id() -> str:
    """The Ray node this process runs on (recorded in the trial's row)."""
    return str(ray.get_runtime_context().get_node_id())


def hide_unrequested_gpus() -> None:
    """A trial that Ray gave no GPU sees none: `CUDA_VISIBLE_DEVICES=""` before torch first
    touches CUDA. Ray 2.60 sets the variable only for trials that get GPUs, so a `gpu: 0` trial
    on a GPU node would otherwise see every card and, with `device: auto`, train on GPU 0
    beside the trials Ray did place there."""
    if not ray.get_gpu_ids():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def trainable(config: dict[str, Any]) -> None:
    """A Tune trial: `trial.execute` on this worker, its row reported back as JSON."""
    hide_unrequested_gpus()
    tune.report({"row_json": row_to_json(execute({**config, "node_id": node_id()}))})


class StoreWriter(tune.Callback):
    """Hands each trial's row to the run's `RowSink` as soon as the trial reports or dies;
    keeps the first `StoreWriteError` (and writes nothing after it) for the engine to raise."""

    def __init__(self, sink: RowSink, run_id: str, prov: dict[str, Any]) -> None:
        self.sink, self.run_id, self.prov = sink, run_id, prov
        self.started: dict[str, float] = {}
        self.failure: StoreWriteError | None = None

    def write(self, row: dict[str, Any], trial_id: str | None = None) -> None:
        if self.failure is not None:
            return
        seconds = time.perf_counter() - self.started[trial_id] if trial_id in self.started else None
        try:
            self.sink.write(row, seconds)
        except StoreWriteError as exc:
            self.failure = exc

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.perf_counter()
        self.sink.started()

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if "row_json" in result:
            self.write(row_from_json(result["row_json"]), trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        spec = TrialSpec.model_validate_json(trial.config["spec"])
        if spec.trial_key in self.sink.written:
            return
        message = " ".join(str(trial.get_error() or "trial failed").split())[:2000]
        self.write(build_row(spec, self.run_id, self.prov, datetime.now(UTC), None, message), trial.trial_id)


class StopOnStoreFailure(tune.Stopper):
    """Ends the whole experiment once the writer has failed: no trial is worth running whose
    row cannot be kept."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.writer.failure is not None


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


def unmet_resources(ctx: RunContext) -> tuple[str, float, float] | None:
    """(key, asked per trial, available) for the first resource the Ray session can never give
    one trial (Tune would otherwise wait for it forever), else None."""
    total: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    for key, asked in (("cpu", ctx.resources.cpu), ("gpu", ctx.resources.gpu)):
        has = float(total.get(key.upper(), 0.0))
        if asked and asked > has:
            return key, float(asked), has
    return None


def check_gpu_request(specs: Sequence[TrialSpec], ctx: RunContext) -> None:
    """A recipe that asks for `cuda` in trials that ask Ray for no GPU could only fail in every
    trial (they see none): say so before Ray starts."""
    if not ctx.resources.gpu and any(s.train.device == "cuda" for s in specs):
        raise SuiteError(ctx.source, "resources.gpu", "train.device is cuda but each trial asks "
                         "for 0 GPUs, and Ray hides the GPUs from such trials; set resources.gpu "
                         "(1, or a fraction such as 0.5 to share a card) or train.device: auto")


def _check_resources(ctx: RunContext) -> None:
    unmet = unmet_resources(ctx)
    if unmet:
        key, asked, has = unmet
        raise SuiteError(ctx.source, f"resources.{key}", f"each trial asks for {asked:g} {key.upper()}s, "
                         f"this machine has {has:g}; lower it, join a cluster (--address) or use "
                         "--in-process")


@dataclass(frozen=True)
class RayEngine:
    """Trials as Ray Tune trials, `max_concurrent` at a time, each with the suite's resources;
    on a cluster (`address`) or a private local Ray session started here."""

    address: str | None = None

    def run(self, specs: Sequence[TrialSpec], ctx: RunContext, sink: RowSink) -> None:
        check_gpu_request(specs, ctx)
        if not ray.is_initialized():
            start_ray(self.address, None)
        if not self.address:  # a cluster may add nodes on demand; this machine will not
            _check_resources(ctx)
        if not specs:
            return
        ctx = replace(ctx, provenance={**ctx.provenance, "ray_version": package_version("ray")})
        writer = StoreWriter(sink, ctx.run_id, dict(ctx.provenance))
        resources = {"cpu": ctx.resources.cpu, "gpu": ctx.resources.gpu}
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={**ctx.trial_config(),
                         "spec": tune.grid_search([s.model_dump_json() for s in specs])},
            tune_config=tune.TuneConfig(max_concurrent_trials=ctx.max_concurrent),
            run_config=tune.RunConfig(
                name=ctx.run_id, storage_path=str((ctx.store / "_tune").resolve()), verbose=0,
                callbacks=[writer], stop=StopOnStoreFailure(writer),
                failure_config=tune.FailureConfig(max_failures=RETRIES),
            ),
        )
        try:
            grid = tuner.fit()
        except Exception:
            if writer.failure is not None:  # Tune itself could not write either
                raise writer.failure from None
            raise
        for i in range(len(grid)):  # safety net: a result whose row the callback did not see
            result = grid[i]
            if result.metrics and "row_json" in result.metrics:
                writer.write(row_from_json(result.metrics["row_json"]))
        if writer.failure is not None:
            raise writer.failure
