"""The results store: one validated Parquet file per trial row, hive-partitioned by suite/run.

`<store>/suite=<name>/run=<run_id>/<trial_key>-<nonce>.parquet`. Unique file names and atomic
renames let several writers share a store; a file that cannot be read is skipped with a
warning. The schema version is in each file's metadata; the row model and the schema derived
from it are in pe_bench.store.schema. Rows come back as validated, frozen `TrialRow` models
(`latest_ok`, `failed_trials`, `all_rows`), rows of older schema versions upgraded on the way
(pe_bench.store.upgrade); `scan` is the raw table they are read from.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import uuid
import warnings
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pe_bench import __version__
from pe_bench.errors import PeBenchError
from pe_bench.store.metrics import TrialMetrics
from pe_bench.store.schema import SCHEMA, SCHEMA_VERSION, TrialRow, conform, flatten, parse_row
from pe_bench.store.plugin_columns import attack_columns, encoder_label, line_label
from pe_bench.store import versions
from pe_bench.store.upgrade import read_rows
from pe_bench.config.grid import attack_family, designed_for
from pe_bench.config.spec import TRAINING_REVISION, TrialSpec

__all__ = ["SCHEMA", "SCHEMA_VERSION", "all_rows", "append", "attack_columns", "build_row", "conform",
           "failed_trials", "latest_ok", "line_label", "new_run_id", "provenance", "row_from_json",
           "row_to_json", "scan", "validate_row"]


def package_version(distribution: str) -> str | None:
    """The installed version of `distribution` from its metadata (the package itself is not
    imported: torch and Ray cost seconds to import), or None where it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """HEAD of the checkout pe-bench runs from, `+dirty` when tracked files other than docs
    differ from it (a table from uncommitted code must not pass for the commit's; the tables
    `make results` regenerates into docs/ while later suites run are not code); None outside
    a checkout."""
    here = Path(__file__).parent.parent  # benchmark/ (this module is in benchmark/store/)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":(exclude)docs",
                                ":(exclude)*.md"], cwd=here.parent,
                               capture_output=True, timeout=10).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def provenance() -> dict[str, str | int | None]:
    """Versions, the training revision and the git commit of the checkout pe-bench runs from
    (when it is one). `ray_version` is None here: the Ray engine fills it in, as only its trials
    use Ray."""
    commit = git_commit()
    return {"pe_bench_version": __version__, "torch_version": package_version("torch"),
            "ray_version": None, "python_version": platform.python_version(),
            "git_commit": commit, "training_revision": TRAINING_REVISION}


def build_row(spec: TrialSpec, run_id: str, prov: Mapping[str, Any], started: datetime,
              metrics: TrialMetrics | Mapping[str, Any] | None, error: str | None = None, *,
              traceback: str | None = None, node_id: str | None = None,
              plugin_versions: str | None = None) -> dict[str, Any]:
    """The validated row for `spec` as a flat, JSON-able record (`metrics=None` with `error`:
    an error row). Metrics are validated again from their plain values, so a model built
    without validation cannot smuggle a NaN in; raises ValidationError naming the field."""
    finished = datetime.now(UTC)
    params = spec.attack.params
    values = None if metrics is None else (
        metrics.model_dump() if isinstance(metrics, TrialMetrics) else dict(metrics))
    row = TrialRow.model_validate({
        "suite": spec.suite, "run_id": run_id, "trial_key": spec.trial_key, "cell_key": spec.cell_key,
        "defense_free_key": spec.defense_free_key, "status": "ok" if error is None else "error",
        "error": error, "traceback": traceback,
        "dataset": spec.dataset, "task_names": [t.name for t in spec.tasks], "seed": spec.seed,
        "encoder": spec.encoder.name, "encoder_label": encoder_label(spec.encoder.name, spec.encoder.params),
        "encoder_params": json.dumps(spec.encoder.params, sort_keys=True),
        "attack": spec.attack.name, "attack_params": json.dumps(params, sort_keys=True),
        "family": (family := attack_family(spec.attack.name, params)),
        "designed_for": designed_for(spec.attack.name, spec.defense.name, family),
        "defense": spec.defense.name, "defense_params": json.dumps(spec.defense.params, sort_keys=True),
        **attack_columns(spec.attack.name, params),
        "spec_json": spec.model_dump_json(), "plugin_versions": plugin_versions, "metrics": values,
        "time_total_s": (finished - started).total_seconds(), "provenance": dict(prov),
        "hostname": socket.gethostname(), "node_id": node_id,
        "started_at": started, "finished_at": finished,
    })
    return flatten(row.model_dump(mode="json"))


def validate_row(row: Mapping[str, Any] | TrialRow) -> pa.Table:
    """One-row table in the store schema; raises ValueError on a malformed row."""
    model = row if isinstance(row, TrialRow) else parse_row(row)
    table = pa.Table.from_pylist([flatten(model.model_dump())], schema=SCHEMA)
    return table.replace_schema_metadata({"pe_bench_schema": SCHEMA_VERSION})


def append(store: Path, row: Mapping[str, Any] | TrialRow) -> Path:
    """Validate and write one row; atomic, never overwrites (a failed write leaves no file)."""
    model = row if isinstance(row, TrialRow) else parse_row(row)
    table = validate_row(model)
    folder = Path(store) / f"suite={model.suite}" / f"run={model.run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.trial_key}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{path.name}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def scan(store: Path, suite: str | None = None, run: str | None = None) -> pa.Table:
    """Every readable row under the store (optionally one suite / one run)."""
    pattern = f"suite={suite or '*'}/run={run or '*'}/*.parquet"
    tables = []
    for path in sorted(Path(store).glob(pattern)):
        try:
            tables.append(conform(pq.read_table(path)))
        except (pa.ArrowException, OSError, ValueError) as exc:
            warnings.warn(f"skipping unreadable results file {path}: {exc}", stacklevel=2)
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


def all_rows(table: pa.Table) -> list[TrialRow]:
    """Every row of a scanned table, ok and error, as validated models (older schema versions
    upgraded: pe_bench.store.upgrade)."""
    return list(read_rows(table))


def _latest(table: pa.Table, status: str, skip: Collection[str] = ()) -> pa.Table:
    """The latest row of `status` of each trial (not in `skip`), in the order the trials first
    appear."""
    best: dict[str, tuple[int, datetime]] = {}
    keys, states, ends = (table.column(name).to_pylist() for name in ("trial_key", "status", "finished_at"))
    for i, (key, state, end) in enumerate(zip(keys, states, ends, strict=True)):
        if state == status and key not in skip and (key not in best or end > best[key][1]):
            best[key] = (i, end)
    return table.take(pa.array([i for i, _ in best.values()], type=pa.int64()))


def latest_ok(table: pa.Table) -> list[TrialRow]:
    """One row per trial_key: its latest `ok` row (resumed and repeated runs collapse)."""
    return list(read_rows(_latest(table, "ok")))


def no_ok_rows(store: str | Path, suite: str | None = None) -> PeBenchError:
    """The one error every reader of a store raises when nothing ok matches."""
    return PeBenchError(f"no ok rows in store {str(store)!r}" + (f" for suite {suite!r}" if suite else ""))


def ok_rows(store: str | Path, suite: str | None = None, run: str | None = None) -> list[TrialRow]:
    """The store's latest ok rows (one suite / run when given); `no_ok_rows` when there are none."""
    rows = latest_ok(scan(Path(store), suite, run))
    if not rows:
        raise no_ok_rows(store, suite)
    return rows


def failed_trials(table: pa.Table) -> list[TrialRow]:
    """The latest error row of each trial that has no ok row: the trials a leaderboard line
    counts as failed (an error later retried successfully is history, not a failure)."""
    ok = set(table.filter(pc.equal(table["status"], "ok")).column("trial_key").to_pylist())
    return list(read_rows(_latest(table, "error", ok)))


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def row_to_json(row: dict[str, Any]) -> str:
    """A row as JSON (timestamps as ISO strings): how rows travel from workers to the driver."""
    return json.dumps(row, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def row_from_json(text: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(text)
    for key in ("started_at", "finished_at"):
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row


def source_note(rows: Sequence[TrialRow], command: str = "pe-bench leaderboard --format md") -> str:
    """Which runs and code the rows came from, for the head of a generated table: every run id
    with its trial count and the git commit(s) its rows record."""
    runs: dict[str, list[TrialRow]] = {}
    for row in rows:
        runs.setdefault(row.run_id, []).append(row)
    parts = []
    for run_id, members in sorted(runs.items()):
        full = {r.provenance.git_commit or "unknown" for r in members}
        commits = sorted(c.split("+")[0][:12] + ("+dirty" if c.endswith("+dirty") else "") for c in full)
        parts.append(f"run {run_id} ({len(members)} trials, commit {', '.join(commits)})")
    mixed = versions.mixed(r.plugin_versions for r in rows)
    warning = f" Mixes plugin versions: {'; '.join(mixed)}." if mixed else ""
    return f"Generated by `{command}` from " + "; ".join(parts) + "." + warning
