"""The results store: one validated Parquet file per trial row, hive-partitioned by suite/run.

`<store>/suite=<name>/run=<run_id>/<trial_key>-<nonce>.parquet`. Unique file names and atomic
renames let several writers share a store; a file that cannot be read is skipped with a
warning. The schema version is in each file's metadata; the row model and the schema derived
from it are in pe_bench.store.schema.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import uuid
import warnings
from collections.abc import Mapping, Sequence
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
from pe_bench.plugins.registry import ATTACKS
from pe_bench.store.schema import SCHEMA, SCHEMA_VERSION, TrialRow, conform, flatten, parse_row
from pe_bench.config.grid import attack_family
from pe_bench.config.spec import TrialSpec

__all__ = ["SCHEMA", "SCHEMA_VERSION", "append", "build_row", "conform", "failed_trials", "latest_ok",
           "new_run_id", "provenance", "row_from_json", "row_to_json", "scan", "validate_row"]

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


def provenance() -> dict[str, str | None]:
    """Versions and the git commit of the checkout pe-bench runs from (when it is one).
    `ray_version` is None here: the Ray engine fills it in, as only its trials use Ray."""
    commit = git_commit()
    return {"pe_bench_version": __version__, "torch_version": package_version("torch"),
            "ray_version": None, "python_version": platform.python_version(),
            "git_commit": commit}


def selection_label(params: Mapping[str, Any]) -> str | None:
    """The `targets` column: the selection rule, marked `+probe-data` when the attacker used
    the probe's own training images rather than its held-out split (the stronger setting)."""
    rule = params.get("selection")
    return f"{rule}+probe-data" if rule and params.get("attacker_data") == "probe-train" else rule


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
        "status": "ok" if error is None else "error", "error": error, "traceback": traceback,
        "dataset": spec.dataset, "seed": spec.seed,
        "encoder": spec.encoder.name, "encoder_params": json.dumps(spec.encoder.params, sort_keys=True),
        "attack": spec.attack.name, "attack_params": json.dumps(params, sort_keys=True),
        "family": attack_family(spec.attack.name, params),
        "defense": spec.defense.name, "defense_params": json.dumps(spec.defense.params, sort_keys=True),
        "selection": selection_label(params), "poison_rate": params.get("poison_rate"),
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


def latest_ok(table: pa.Table) -> list[dict[str, Any]]:
    """One row per trial_key: its latest `ok` row (resumed and repeated runs collapse)."""
    best: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        if row["status"] != "ok":
            continue
        key = row["trial_key"]
        if key not in best or row["finished_at"] > best[key]["finished_at"]:
            best[key] = row
    return list(best.values())


def no_ok_rows(store: str | Path, suite: str | None = None) -> PeBenchError:
    """The one error every reader of a store raises when nothing ok matches."""
    return PeBenchError(f"no ok rows in store {str(store)!r}" + (f" for suite {suite!r}" if suite else ""))


def ok_rows(store: str | Path, suite: str | None = None, run: str | None = None) -> list[dict[str, Any]]:
    """The store's latest ok rows (one suite / run when given); `no_ok_rows` when there are none."""
    rows = latest_ok(scan(Path(store), suite, run))
    if not rows:
        raise no_ok_rows(store, suite)
    return rows


def failed_trials(table: pa.Table) -> list[dict[str, Any]]:
    """The latest error row of each trial that has no ok row: the trials a leaderboard line
    counts as failed (an error later retried successfully is history, not a failure)."""
    ok = {r["trial_key"] for r in table.select(["trial_key", "status"]).to_pylist() if r["status"] == "ok"}
    latest: dict[str, dict[str, Any]] = {}
    for row in table.filter(pc.equal(table["status"], "error")).to_pylist():
        key = row["trial_key"]
        if key not in ok and (key not in latest or row["finished_at"] > latest[key]["finished_at"]):
            latest[key] = row
    return list(latest.values())


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


def source_note(rows: Sequence[Mapping[str, Any]], command: str = "pe-bench leaderboard --format md") -> str:
    """Which runs and code the rows came from, for the head of a generated table: every run id
    with its trial count and the git commit(s) its rows record."""
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        runs.setdefault(str(row["run_id"]), []).append(row)
    parts = []
    for run_id, members in sorted(runs.items()):
        full = {str(r.get("git_commit") or "unknown") for r in members}
        commits = sorted(c.split("+")[0][:12] + ("+dirty" if c.endswith("+dirty") else "") for c in full)
        parts.append(f"run {run_id} ({len(members)} trials, commit {', '.join(commits)})")
    return f"Generated by `{command}` from " + "; ".join(parts) + "."
