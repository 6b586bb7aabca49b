"""Trials one after another in this process, without Ray: `pe-bench run --in-process`.

For stepping through a plugin in a debugger, for a single machine where Ray is not installed
(a lent GPU box), and for checking that the Ray path changes no number (the integration tests
compare the two). Same trial function, same rows, same store and encoder cache as the Ray
path; what differs: no concurrency, the suite's `resources` are not enforced (the trial still
sets its torch threads from `resources.cpu`), and rows have no `node_id`. A crash that kills
the process (out of memory, a segfault) ends the run; every row written before it stays, and
`--resume` goes on from there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pe_bench.sink import RowSink, RunSummary
from pe_bench.spec import TrialSpec
from pe_bench.suite import Suite
from pe_bench.trial import execute, trial_config


def run_in_process(suite: Suite, specs: Sequence[TrialSpec], *, store: Path, data_dir: Path,
                   cache: str, run_id: str, prov: dict[str, Any], progress: Any = None) -> RunSummary:
    """Run `specs` sequentially here; rows land in `store` as each trial ends."""
    summary = RunSummary(run_id)
    sink = RowSink(store, summary, progress)
    base = {**trial_config(suite, data_dir, cache, run_id, prov), "in_process": True}
    start = time.perf_counter()
    for spec in specs:
        sink.started()
        began = time.perf_counter()
        row = execute({**base, "spec": spec.model_dump_json()})
        sink.write(row, time.perf_counter() - began)
    summary.seconds = time.perf_counter() - start
    return summary
