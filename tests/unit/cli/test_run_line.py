"""The line a run ends with counts what it did: a run stopped part-way never calls the trials it
did not reach "already done"."""

from __future__ import annotations

from pe_bench.commands import run_line
from pe_bench.engines.sink import RunSummary


def test_a_stopped_run_says_what_it_did_not_run() -> None:
    stopped = RunSummary("r", ok=36, planned=250, total=250, cache_hits=72, seconds=1400)
    assert run_line(stopped) == ("run r: 36 ok, 0 failed, 0 already done, 214 not run (stopped: "
                                      "--resume runs them); 72 encoder cache hits; 1400 s")


def test_a_resumed_run_counts_what_was_done_before_it() -> None:
    resumed = RunSummary("r", ok=1, planned=1, total=2)
    assert run_line(resumed) == "run r: 1 ok, 0 failed, 1 already done; 0 encoder cache hits; 0 s"
