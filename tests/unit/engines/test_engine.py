"""The engine seam: a third engine needs `Engine.run` and nothing else; Ray stays in one module;
a store that cannot be written stops an in-process run with one line and exit status 1.

Trials here are tiny (digits, 1 epoch, 256 images) and run in this process; no Ray session."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pe_bench.api import run_suite, validate_suite
from pe_bench.cli import main
from pe_bench.engines.base import Engine, RunContext
from pe_bench.engines.named import ENGINES, engine_named
from pe_bench.errors import PeBenchError
from pe_bench.store.results import scan
from pe_bench.engines.sink import RowSink
from pe_bench.config.spec import TrialSpec
from pe_bench.engines.trial import execute
from tests.integration._support import FullDisk, write_suite



class ReversedEngine:
    """A third engine, written against the documented contract only: the last cell first."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.contexts: list[RunContext] = []

    def run(self, specs: Sequence[TrialSpec], ctx: RunContext, sink: RowSink) -> None:
        self.contexts.append(ctx)
        for spec in reversed(specs):
            self.seen.append(spec.trial_key)
            sink.started()
            sink.write(execute(ctx.trial_config(spec)))


def test_a_third_engine_runs_a_suite_through_run_suite(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "tiny.yaml", "tiny")
    engine = ReversedEngine()
    assert isinstance(engine, Engine)
    plan, summary = run_suite(suite, store=tmp_path / "store", engine=engine, show_progress=False,
                              run_id="third")
    keys = [t.trial_key for t in plan.grid.trials]
    assert engine.seen == keys[::-1] and len(keys) == 2
    (ctx,) = engine.contexts
    assert ctx.run_id == "third" and ctx.store == (tmp_path / "store").resolve()
    assert ctx.resources == plan.suite.resources and ctx.source == str(suite)
    rows = scan(tmp_path / "store", "tiny").to_pylist()
    assert sorted(r["trial_key"] for r in rows) == sorted(keys)
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    assert {r["run_id"] for r in rows} == {"third"} and {r["node_id"] for r in rows} == {None}
    assert summary.ok == 2 and summary.errors == 0 and summary.seconds > 0
    # a later run with --resume finds nothing to do and never calls the engine
    again = ReversedEngine()
    _, none = run_suite(suite, store=tmp_path / "store", engine=again, resume=True, show_progress=False)
    assert again.contexts == [] and none.ok == 0


def test_built_in_engines_by_name() -> None:
    assert set(ENGINES) == {"ray", "in-process"}
    assert isinstance(engine_named("in-process"), Engine)
    with pytest.raises(PeBenchError, match="unknown engine 'dask'; choose one of ray, in-process"):
        engine_named("dask")
    with pytest.raises(PeBenchError, match="--address"):
        engine_named("in-process", "auto")


def test_engine_flag_and_in_process_alias_validate_the_same(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path / "tiny.yaml", "tiny")
    with pytest.raises(SystemExit):
        main(["run", str(suite), "--engine", "dask"])
    assert "invalid choice: 'dask'" in capsys.readouterr().err
    for flags in (["--in-process"], ["--engine", "in-process"]):
        assert main(["run", str(suite), *flags, "--address", "auto", "--store", str(tmp_path)]) == 2
        assert "cannot be combined with --address" in capsys.readouterr().err


def test_store_that_cannot_be_written_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The disk fills after the first row: the second row's write fails, the run stops there
    (the third trial never runs), exit status 1, one line, and the first row stays."""
    suite = write_suite(tmp_path / "three.yaml", "three", seeds=[0, 1, 2], attacks=["none"])
    store = tmp_path / "store"
    disk = FullDisk(pq.write_table, room=1)
    monkeypatch.setattr(pq, "write_table", disk)
    assert main(["run", str(suite), "--in-process", "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("pe-bench:")]
    assert line.startswith(f"pe-bench: error: cannot write to the results store {store.resolve()}: "
                           "No space left on device"), err
    assert disk.calls == 2  # the first row, the failed second; nothing after
    monkeypatch.undo()
    (kept,) = scan(store, "three").to_pylist()
    assert kept["status"] == "ok" and kept["trial_key"] == validate_suite(suite).grid.trials[0].trial_key
