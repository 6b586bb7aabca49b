"""The results store: one validated Parquet file per trial row, hive-partitioned by suite/run.

`<store>/suite=<name>/run=<run_id>/<trial_key>-<nonce>.parquet`. Unique file names and atomic
renames let several writers share a store; a file that cannot be read is skipped with a
warning. The schema version is in each file's metadata. pyarrow is imported only here.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pe_bench import __version__
from pe_bench.spec import TrialSpec

SCHEMA_VERSION = "2"  # 2: defense metrics; version-1 files read with them null
TIMING_STAGES = ("data", "attack", "defense", "pretrain_clean", "pretrain_poisoned", "evaluate")

TARGET = pa.struct([
    ("index", pa.int64()), ("true_class", pa.int64()), ("target_class", pa.int64()),
    ("hit", pa.bool_()), ("hit_clean", pa.bool_()), ("hit_undefended", pa.bool_()),
    ("p", pa.float64()), ("p_clean", pa.float64()), ("p_undefended", pa.float64()),
    ("rank", pa.int64()), ("rank_clean", pa.int64()),
])
METRICS = [("ca", pa.float64()), ("pa", pa.float64()), ("pa_undefended", pa.float64()),
           ("n_targets", pa.int64()), ("successes", pa.int64()), ("asr", pa.float64()),
           ("baseline_asr", pa.float64()), ("asr_undefended", pa.float64()),
           ("p_target", pa.float64()), ("p_target_clean", pa.float64()),
           ("p_target_undefended", pa.float64())]
# what a defense cost and, for filters, caught (see pe_bench.defend)
DEFENSE = [("defense_hooks", pa.string()), ("n_encoders", pa.int64()),
           ("clean_removed", pa.int64()), ("poison_recall", pa.float64()),
           ("poison_precision", pa.float64()), ("clean_used", pa.int64()),
           ("defense_extra_s", pa.float64())]
TASK = pa.struct([("task", pa.string()), ("n_classes", pa.int64()), ("n_test", pa.int64()),
                  *METRICS, ("targets", pa.list_(TARGET))])
SCHEMA = pa.schema([
    ("suite", pa.string()), ("run_id", pa.string()), ("trial_key", pa.string()),
    ("cell_key", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("dataset", pa.string()), ("seed", pa.int64()),
    ("encoder", pa.string()), ("encoder_params", pa.string()),
    ("attack", pa.string()), ("attack_params", pa.string()),
    ("defense", pa.string()), ("defense_params", pa.string()),
    ("selection", pa.string()), ("poison_rate", pa.float64()), ("spec_json", pa.string()),
    ("n_pretrain", pa.int64()), ("n_poisons", pa.int64()), ("n_removed", pa.int64()),
    *METRICS, *DEFENSE, ("tasks", pa.list_(TASK)),
    *[(f"time_{s}_s", pa.float64()) for s in TIMING_STAGES], ("time_total_s", pa.float64()),
    ("cache_hits", pa.int64()), ("train_images_per_s", pa.float64()), ("device", pa.string()),
    ("pe_bench_version", pa.string()), ("torch_version", pa.string()),
    ("ray_version", pa.string()), ("python_version", pa.string()), ("git_commit", pa.string()),
    ("plugin_versions", pa.string()),  # JSON {kind: {name: "distribution version"}}
    ("hostname", pa.string()), ("node_id", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
])
REQUIRED_OK = ("ca", "pa", "n_pretrain", "n_poisons", "time_total_s")


def provenance() -> dict[str, str | None]:
    """Versions and the git commit of the checkout pe-bench runs from (when it is one);
    `ray_version` is None where Ray is not installed (an in-process run)."""
    import torch

    try:
        import ray

        ray_version: str | None = ray.__version__
    except ImportError:
        ray_version = None

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"pe_bench_version": __version__, "torch_version": torch.__version__,
            "ray_version": ray_version, "python_version": platform.python_version(),
            "git_commit": commit}


def build_row(spec: TrialSpec, run_id: str, prov: dict[str, Any], started: datetime,
              metrics: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    """A plain-dict row for `spec`; `metrics=None` with `error` makes an error row."""
    finished = datetime.now(UTC)
    m = metrics or {}
    timings = m.get("timings", {})
    params = spec.attack.params
    row: dict[str, Any] = {
        "suite": spec.suite, "run_id": run_id, "trial_key": spec.trial_key,
        "cell_key": spec.cell_key, "status": "ok" if error is None else "error", "error": error,
        "dataset": spec.dataset, "seed": spec.seed,
        "encoder": spec.encoder.name, "encoder_params": json.dumps(spec.encoder.params, sort_keys=True),
        "attack": spec.attack.name, "attack_params": json.dumps(params, sort_keys=True),
        "defense": spec.defense.name, "defense_params": json.dumps(spec.defense.params, sort_keys=True),
        "selection": params.get("selection"), "poison_rate": params.get("poison_rate"),
        "spec_json": spec.model_dump_json(),
        **{k: m.get(k) for k in ("n_pretrain", "n_poisons", "tasks", "cache_hits", "plugin_versions")},
        **_defense_fields(m.get("defense")),
        **{name: m.get(name) for name, _ in METRICS},
        **{f"time_{s}_s": timings.get(s) for s in TIMING_STAGES},
        "time_total_s": (finished - started).total_seconds(),
        "train_images_per_s": m.get("encoder_info", {}).get("images_per_second"),
        "device": m.get("encoder_info", {}).get("device"),
        "hostname": socket.gethostname(), "node_id": m.get("node_id"),
        "started_at": started, "finished_at": finished,
        **prov,
    }
    return row


def _defense_fields(report: dict[str, Any] | None) -> dict[str, Any]:
    r = report or {}
    return {"n_removed": r.get("n_removed"), "defense_hooks": r.get("hooks"),
            "n_encoders": r.get("n_encoders"), "clean_removed": r.get("clean_removed"),
            "poison_recall": r.get("poison_recall"), "poison_precision": r.get("poison_precision"),
            "clean_used": r.get("clean_used"), "defense_extra_s": r.get("extra_s")}


def validate_row(row: dict[str, Any]) -> pa.Table:
    """One-row table in the store schema; raises ValueError on a malformed row."""
    if row.get("status") not in ("ok", "error"):
        raise ValueError(f"row status must be ok or error, got {row.get('status')!r}")
    if row["status"] == "ok":
        missing = [k for k in REQUIRED_OK if row.get(k) is None]
        if missing:
            raise ValueError(f"ok row {row.get('trial_key')} lacks {', '.join(missing)}")
    unknown = set(row) - set(SCHEMA.names)
    if unknown:
        raise ValueError(f"row has fields outside the schema: {sorted(unknown)}")
    table = pa.Table.from_pylist([row], schema=SCHEMA)
    return table.replace_schema_metadata({"pe_bench_schema": SCHEMA_VERSION})


def append(store: Path, row: dict[str, Any]) -> Path:
    """Validate and write one row; atomic, never overwrites."""
    table = validate_row(row)
    folder = Path(store) / f"suite={row['suite']}" / f"run={row['run_id']}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{row['trial_key']}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = folder / f".{path.name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
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


def conform(table: pa.Table) -> pa.Table:
    """A stored table in the current schema: columns added since it was written are null
    (older rows stay readable), nested structs likewise; then a strict cast."""
    columns = []
    for f in SCHEMA:
        if f.name not in table.column_names:
            columns.append(pa.nulls(len(table), f.type))
        else:
            columns.append(_conform_column(table.column(f.name), f.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _conform_column(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    if col.type == target:
        return col
    rows = col.to_pylist()
    return pa.chunked_array([pa.array(rows, type=target)], type=target)


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


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def row_to_json(row: dict[str, Any]) -> str:
    """A row as JSON (timestamps as ISO strings): how rows travel from workers to the driver."""
    return json.dumps(row, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def row_from_json(text: str) -> dict[str, Any]:
    row = json.loads(text)
    for key in ("started_at", "finished_at"):
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row
