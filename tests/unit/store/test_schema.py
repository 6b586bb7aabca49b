"""Typed rows: the Arrow schema derived from the row model, stores of earlier schema versions,
and metrics that fail validation becoming error rows in the worker (no Ray; no training:
`run_trial` is replaced)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from pe_bench.worker import pipeline
from pe_bench.report.leaderboard import aggregate, to_markdown
from pe_bench.store.metrics import Metrics, TaskMetrics, TrialMetrics
from pe_bench.store.results import append, build_row, latest_ok, scan
from pe_bench.store.schema import SCHEMA, arrow_type, parse_row
from pe_bench.engines.trial import execute
from tests.rows import PROV, metrics, row, task, trial, trial_metrics, typed

# The hand-written schema of version 2 (and, without the defense fields, version 1), frozen here
# as it was before the schema was derived from the models: old stores must keep reading.
V1_TARGET = [("index", pa.int64()), ("true_class", pa.int64()), ("target_class", pa.int64()),
             ("hit", pa.bool_()), ("hit_clean", pa.bool_()), ("p", pa.float64()),
             ("p_clean", pa.float64()), ("rank", pa.int64()), ("rank_clean", pa.int64())]
V2_TARGET = [*V1_TARGET[:5], ("hit_undefended", pa.bool_()), *V1_TARGET[5:7],
             ("p_undefended", pa.float64()), *V1_TARGET[7:]]
V1_METRICS = [("ca", pa.float64()), ("pa", pa.float64()), ("n_targets", pa.int64()),
              ("successes", pa.int64()), ("asr", pa.float64()), ("baseline_asr", pa.float64()),
              ("p_target", pa.float64()), ("p_target_clean", pa.float64())]
V2_METRICS = [("ca", pa.float64()), ("pa", pa.float64()), ("pa_undefended", pa.float64()),
              ("n_targets", pa.int64()), ("successes", pa.int64()), ("asr", pa.float64()),
              ("baseline_asr", pa.float64()), ("asr_undefended", pa.float64()),
              ("p_target", pa.float64()), ("p_target_clean", pa.float64()),
              ("p_target_undefended", pa.float64())]
V2_DEFENSE = [("defense_hooks", pa.string()), ("n_encoders", pa.int64()), ("clean_removed", pa.int64()),
              ("poison_recall", pa.float64()), ("poison_precision", pa.float64()),
              ("clean_used", pa.int64()), ("defense_extra_s", pa.float64())]
STAGES = ("data", "attack", "defense", "pretrain_clean", "pretrain_poisoned", "evaluate")


def old_schema(version: int) -> pa.Schema:
    target = pa.struct(V2_TARGET if version == 2 else V1_TARGET)
    row_metrics = V2_METRICS if version == 2 else V1_METRICS
    task_type = pa.struct([("task", pa.string()), ("n_classes", pa.int64()), ("n_test", pa.int64()),
                           *row_metrics, ("targets", pa.list_(target))])
    return pa.schema([
        ("suite", pa.string()), ("run_id", pa.string()), ("trial_key", pa.string()),
        ("cell_key", pa.string()), ("status", pa.string()), ("error", pa.string()),
        ("dataset", pa.string()), ("seed", pa.int64()), ("encoder", pa.string()),
        ("encoder_params", pa.string()), ("attack", pa.string()), ("attack_params", pa.string()),
        ("defense", pa.string()), ("defense_params", pa.string()), ("selection", pa.string()),
        ("poison_rate", pa.float64()), ("spec_json", pa.string()), ("n_pretrain", pa.int64()),
        ("n_poisons", pa.int64()), ("n_removed", pa.int64()), *row_metrics,
        *(V2_DEFENSE if version == 2 else []), ("tasks", pa.list_(task_type)),
        *[(f"time_{s}_s", pa.float64()) for s in STAGES], ("time_total_s", pa.float64()),
        ("cache_hits", pa.int64()), ("train_images_per_s", pa.float64()), ("device", pa.string()),
        ("pe_bench_version", pa.string()), ("torch_version", pa.string()),
        ("ray_version", pa.string()), ("python_version", pa.string()), ("git_commit", pa.string()),
        ("hostname", pa.string()), ("node_id", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
    ])


def write_old(store: Path, record: dict[str, Any], version: int) -> None:
    """`record` as a file an earlier pe-bench wrote: its layout, its version in the metadata."""
    schema = old_schema(version)
    old = {name: record.get(name, 1.5) for name in schema.names}  # a field since replaced: any value
    old["started_at"], old["finished_at"] = (datetime.fromisoformat(old[k]) for k in ("started_at",
                                                                                    "finished_at"))
    table = pa.Table.from_pylist([old], schema=schema)
    table = table.replace_schema_metadata({"pe_bench_schema": str(version)})
    folder = store / f"suite={record['suite']}" / f"run=v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{record['trial_key']}-old.parquet")


# -- the schema is derived from the models -----------------------------------------------------------
def test_schema_columns_come_from_the_row_model() -> None:
    names = set(SCHEMA.names)
    assert {"ca", "asr", "poison_recall", "defense_hooks", "time_data_s", "time_evaluate_s",
            "train_images_per_s", "pe_bench_version", "traceback", "tasks"} <= names
    assert not {"metrics", "defense", "timings", "provenance", "encoder_info"} & (names - {"defense"})
    assert SCHEMA.field("started_at").type == pa.timestamp("us", tz="UTC")
    task_struct = SCHEMA.field("tasks").type.value_type
    assert {f.name for f in task_struct} == set(TaskMetrics.model_fields)


def test_a_new_metric_field_gets_its_column_type() -> None:
    class WithFoo(Metrics):
        foo: float | None = None
        count: int = 0

    got = arrow_type(WithFoo)
    assert got.field("foo").type == pa.float64() and got.field("count").type == pa.int64()


@pytest.mark.parametrize("version", [1, 2])
def test_stores_of_earlier_schema_versions_still_read(tmp_path: Path, version: int) -> None:
    now = row(0, [True, False], pa=0.8)
    write_old(tmp_path, now, version)
    (got,) = scan(tmp_path).to_pylist()
    assert got["traceback"] is None and got["status"] == "ok"
    kept = [n for n in old_schema(version).names if n not in ("started_at", "finished_at")
            and n in SCHEMA.names]
    assert {n: got[n] for n in kept if n != "tasks"} == {n: now[n] for n in kept if n != "tasks"}
    old_task = {k for k, _ in (V2_METRICS if version == 2 else V1_METRICS)} | {"task", "n_classes", "n_test"}
    assert {k: got["tasks"][0][k] for k in old_task} == {k: now["tasks"][0][k] for k in old_task}
    if version == 1:
        assert got["pa_undefended"] is None and got["tasks"][0]["targets"][0]["hit_undefended"] is None
    # metrics added since (the repair's steps, an ensemble's vote share) read as null
    assert got["repair_steps"] is None and got["p_target_vote"] is None
    # and the detection metrics and costs of schema 5; the replaced wall-time cost is dropped
    for name in ("poison_auroc", "poison_auprc", "poison_fpr", "poison_f1", "encoder_score",
                 "encoder_score_clean", "encoder_flagged", "defense_cpu_s", "extra_steps", "extra_images"):
        assert got[name] is None, name
    assert "defense_extra_s" not in got
    assert got["tasks"][0]["targets"][0]["p_vote"] is None
    (line,) = aggregate(typed([got]))
    # schema 1 measured no defense: the evaluated encoder is the undefended one, so there is no
    # vs-none comparison (zero by construction, not a test)
    assert line.stats["pa"] == (0.8, 0.0) and line.intervals["delta_pa_defense"] is None
    assert line.stats["poison_auroc"] is None and line.pooled["encoder_auroc"] is None


def test_a_v2_store_gives_the_leaderboard_of_the_same_rows(tmp_path: Path) -> None:
    rows = [row(s, [s % 2 == 0, True], pa=0.8 + s / 100) for s in range(3)]
    for r in rows:
        write_old(tmp_path / "old", r, 2)
        append(tmp_path / "new", r)
    old, new = (aggregate(latest_ok(scan(tmp_path / k))) for k in ("old", "new"))
    assert to_markdown(old, "t") == to_markdown(new, "t")


def test_rows_come_back_as_frozen_models_with_what_older_versions_lack(tmp_path: Path) -> None:
    """A schema-6 file (before `defense_free_key` and `task_names`) reads with both computed
    from its spec as `build_row` writes them; a schema-1 row's undefended numbers are its own."""
    spec = trial(seed=1, tasks=("digits", "digits-16"))
    record = build_row(spec, "run1", PROV, datetime.now(UTC),
                       trial_metrics([task("digits", [True]), task("digits-16", [False])]))
    v6 = pa.schema([f for f in SCHEMA if f.name not in ("defense_free_key", "task_names")])
    values = {k: record[k] for k in v6.names}
    values.update({k: datetime.fromisoformat(values[k]) for k in ("started_at", "finished_at")})
    (tmp_path / "suite=unit" / "run=v6").mkdir(parents=True)
    table = pa.Table.from_pylist([values], schema=v6).replace_schema_metadata({"pe_bench_schema": "6"})
    pq.write_table(table, tmp_path / "suite=unit" / "run=v6" / "old.parquet")
    (got,) = latest_ok(scan(tmp_path))
    assert got == parse_row(record) and got.defense_free_key == spec.defense_free_key
    assert got.task_names == ("digits", "digits-16")
    with pytest.raises(ValidationError, match="frozen"):
        got.seed = 2  # type: ignore[misc]
    bad = {**values, "defense_free_key": "k", "task_names": ["digits"], "ca": 1.5}  # no fraction
    (tmp_path / "suite=unit" / "run=bad").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([bad], schema=SCHEMA), tmp_path / "suite=unit/run=bad/b.parquet")
    with pytest.warns(UserWarning, match=f"skipping stored row {spec.trial_key} of run run1: .*metrics.ca"):
        assert latest_ok(scan(tmp_path, run="bad")) == []
    write_old(tmp_path / "v1", row(0, [True, False], pa=0.8), 1)
    (old,) = latest_ok(scan(tmp_path / "v1"))
    assert old.metrics is not None and old.metrics.pa_undefended == 0.8 and old.metrics.asr_undefended == 0.5
    assert [x.hit_undefended for x in old.metrics.tasks[0].targets] == [True, False]


# -- validation: a malformed trial is an error row, built in the worker ---------------------------------
@pytest.mark.parametrize(("change", "field"), [
    ({"pa": math.nan}, "pa"),
    ({"ca": math.inf}, "ca"),
    ({"asr": 1.5}, "asr"),
    ({"successes": 3}, "successes"),
    ({"n_poisons": -1}, "n_poisons"),
])
def test_trial_metrics_reject_garbage(change: dict[str, Any], field: str) -> None:
    good = metrics([True, False]).model_dump()
    with pytest.raises(ValidationError, match=field):
        TrialMetrics.model_validate({**good, **change})


def test_task_metrics_must_agree_with_their_target_pairs() -> None:
    good = task("t", [True, False]).model_dump()
    with pytest.raises(ValidationError, match="do not match"):
        TaskMetrics.model_validate({**good, "successes": 2})
    with pytest.raises(ValidationError, match="p_clean"):
        pairs = [{**good["targets"][0], "p_clean": -0.1}, good["targets"][1]]
        TaskMetrics.model_validate({**good, "targets": pairs})


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    spec = trial(seed=3)
    return {"spec": spec.model_dump_json(), "data_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"),
            "run_id": "r", "provenance": PROV, "cpus": 1, "in_process": True}


def returning(monkeypatch: pytest.MonkeyPatch, result: Any) -> None:
    def fake(*_: Any, **__: Any) -> Any:
        if isinstance(result, BaseException):
            raise result
        return result

    monkeypatch.setattr(pipeline, "run_trial", fake)


def garbage_trials() -> Iterator[Any]:
    """Metrics objects a buggy plugin could lead to; built without validation (model_copy)."""
    good = metrics([True, False])
    yield pytest.param(good.model_copy(update={"pa": math.nan}),
                       "metrics.pa: Input should be a finite number", id="nan-pa")
    yield pytest.param(good.model_copy(update={"asr": 1.5}),
                       "metrics.asr: Input should be less than or equal to 1", id="asr-above-1")
    yield pytest.param(good.model_copy(update={"successes": 5}), "metrics: Value error, successes (5) exceed "
                       "n_targets (2)", id="more-successes-than-targets")
    bad_task = good.tasks[0].model_copy(update={"p_target": math.nan})
    yield pytest.param(good.model_copy(update={"tasks": (bad_task,)}), "metrics.tasks.0.p_target: ",
                       id="nan-in-a-task")


@pytest.mark.parametrize(("bad", "reason"), garbage_trials())
def test_execute_turns_invalid_metrics_into_an_error_row(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        config: dict[str, Any], bad: TrialMetrics,
                                                        reason: str) -> None:
    returning(monkeypatch, bad)
    got = execute(config)
    assert got["status"] == "error" and got["ca"] is None
    assert got["error"].startswith(f"ValidationError: TrialRow: {reason}"), got["error"]
    assert got["error"].endswith("(at results.py)") or "(at results.py:" in got["error"]
    assert "\n" not in got["error"] and "Traceback" in got["traceback"]
    json.dumps(got)  # plain JSON, as Ray ships it
    append(tmp_path / "store", got)
    (stored,) = scan(tmp_path / "store").to_pylist()
    assert stored["error"] == got["error"] and stored["traceback"] == got["traceback"]


def test_execute_keeps_the_traceback_of_a_failing_plugin(monkeypatch: pytest.MonkeyPatch,
                                                         config: dict[str, Any]) -> None:
    returning(monkeypatch, RuntimeError("the plugin\nexploded"))
    got = execute(config)
    assert got["status"] == "error" and got["error"].startswith("RuntimeError: the plugin exploded (at ")
    assert got["traceback"].startswith("Traceback (most recent call last):")
    assert "in fake" in got["traceback"] and got["traceback"].rstrip().endswith("exploded")


def test_execute_returns_a_validated_json_row(monkeypatch: pytest.MonkeyPatch,
                                              config: dict[str, Any]) -> None:
    good = trial_metrics([task("digits", [True, False, True])])
    returning(monkeypatch, good)
    got = execute(config)
    assert got["status"] == "ok" and got["error"] is None and got["traceback"] is None
    assert json.loads(json.dumps(got)) == got
    model = parse_row(got)
    assert model.metrics == good and model.trial_key == trial(seed=3).trial_key
