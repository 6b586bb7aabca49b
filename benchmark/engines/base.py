"""The engine seam: what runs a run's trials, behind one method.

The run layers, one entry point each:

    `pe-bench run` (cli.py)  ->  api.run_suite  ->  Engine.run  ->  trial.execute  ->  pipeline.run_trial
    parse arguments             validate, pick      schedule the     one trial: plain    the trial's
                                the cells and       trials, hand     JSON config in,     actual work
                                an engine           rows to the sink one row out         (torch)

An engine gets the trial specs, a `RunContext` (where data, store and cache are, the run id,
provenance, the suite's resources) and the run's `RowSink`. It calls `sink.started()` when a
trial starts and `sink.write(row)` with the row `trial.execute(ctx.trial_config(spec))` returns;
the sink writes the store and keeps the summary. A `StoreWriteError` from `sink.write` must stop
the run: the engine stops scheduling and lets it (or re-raises it) propagate, so the user sees
one line and every row written before stays. That is the whole contract; a third engine (a
thread pool, a batch scheduler) implements it and nothing else:

    class ReversedEngine:
        def run(self, specs: Sequence[TrialSpec], ctx: RunContext, sink: RowSink) -> None:
            for spec in reversed(specs):
                sink.started()
                sink.write(execute(ctx.trial_config(spec)))

and is passed to `api.run_suite(..., engine=ReversedEngine())`. The built-in engines are
looked up by name (`--engine ray|in-process`, pe_bench.engines.named); their modules are imported
only when chosen, so nothing here imports torch or Ray. `ray_tune.py` is the only module that
imports Ray.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pe_bench.config.spec import Resources, TrialSpec

if TYPE_CHECKING:
    from pe_bench.engines.sink import RowSink


@dataclass(frozen=True)
class RunContext:
    """What every trial of a run shares besides its spec; built once by `api.run_suite`."""

    store: Path  # rows (absolute)
    data_dir: Path  # datasets (absolute, so workers elsewhere agree)
    cache: str  # encoder cache: a directory or a filesystem URI (see pe_bench.worker.cache)
    run_id: str
    provenance: Mapping[str, str | int | None]  # versions and commit, copied into every row
    resources: Resources  # per trial
    max_concurrent: int  # trials at once, where the engine runs several
    source: str  # the suite file, for error messages naming its keys

    def trial_config(self, spec: TrialSpec | None = None) -> dict[str, Any]:
        """The plain JSON `trial.execute` takes; without `spec`, the part every trial shares
        (an engine that schedules many trials at once adds each trial's `spec` itself)."""
        config: dict[str, Any] = {"data_dir": str(self.data_dir), "cache_dir": self.cache,
                                  "run_id": self.run_id, "provenance": dict(self.provenance),
                                  "cpus": self.resources.cpu}
        if spec is not None:
            config["spec"] = spec.model_dump_json()
        return config


@runtime_checkable
class Engine(Protocol):
    """Runs trials and hands each row to the sink as its trial ends (see the module docstring)."""

    def run(self, specs: Sequence[TrialSpec], ctx: RunContext, sink: RowSink) -> None: ...
