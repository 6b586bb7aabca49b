"""The in-process engine: trials one after another in this process, without Ray
(`pe-bench run --in-process`, or `--engine in-process`).

For stepping through a plugin in a debugger, for a single machine where Ray is not installed
(a lent GPU box), and for checking that the Ray engine changes no number (the integration tests
compare the two). Same trial function, same rows, same store and encoder cache as the Ray
engine; what differs: no concurrency, the suite's `resources` are not enforced (the trial still
sets its torch threads from `resources.cpu`), and rows have no `node_id`. A crash that kills
the process (out of memory, a segfault) ends the run; every row written before it stays, and
`--resume` goes on from there. A store that cannot be written ends the run at once (the
`StoreWriteError` from the sink propagates; no further trial starts). A recipe that asks for
`cuda` on a machine without one stops the run before its first trial (a `DeviceError`, exit 2).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pe_bench.engines.base import RunContext
from pe_bench.engines.sink import RowSink
from pe_bench.config.spec import TrialSpec
from pe_bench.engines.trial import execute, require_device


@dataclass(frozen=True)
class InProcessEngine:
    """Runs each spec here, in order; its row lands in the store as the trial ends."""

    def run(self, specs: Sequence[TrialSpec], ctx: RunContext, sink: RowSink) -> None:
        for first in {spec.train.device: spec for spec in specs}.values():  # one per device asked
            require_device(first)  # this process is the worker: no GPU for `cuda` ends the run here
        for spec in specs:
            sink.started()
            began = time.perf_counter()
            row = execute(ctx.trial_config(spec))
            sink.write(row, time.perf_counter() - began)
