"""Compare two results stores row by row: every measured number of every ok trial must match.

For refactors that must not move a number (a new store layout, a reorganised engine): run the
same suites before and after into two stores with separate encoder caches, then

    python ops/compare_stores.py BEFORE_STORE AFTER_STORE [--suite NAME ...]

Rows are matched by suite and trial key, or, where the key changed (a spec field added), by
suite and the trial's labels (dataset, encoder, attack, defense with their params, seed).
Compared: every column both stores have, nested task and target metrics included, except
timings, CPU seconds, throughput, cache hits and provenance (they describe the run, not the
result). Prints one line per difference and a summary; exits 1 on any difference or unmatched
row, 0 otherwise. Reads Parquet directly (no pe-bench import), so both sides can be any version.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

RUN_ONLY = {"run_id", "started_at", "finished_at", "node_id", "hostname", "git_commit", "torch_version",
            "ray_version", "python_version", "pe_bench_version", "cache_hits", "train_images_per_s",
            "plugin_versions", "spec_json", "trial_key", "cell_key", "traceback"}
RUN_ONLY_SUFFIXES = ("_s", "_cpu_s")
LABELS = ("dataset", "encoder", "encoder_params", "attack", "attack_params", "defense", "defense_params", "seed")


def rows(store: Path, suites: set[str]) -> list[dict[str, Any]]:
    found = []
    for path in sorted(store.rglob("*.parquet")):
        if path.name.startswith("."):
            continue
        for row in pq.read_table(path).to_pylist():
            if row.get("status") == "ok" and (not suites or row.get("suite") in suites):
                found.append(row)
    return found


def _ignored(key: str) -> bool:
    return key in RUN_ONLY or key.startswith("time_") or key.endswith(RUN_ONLY_SUFFIXES)


def differences(a: Any, b: Any, where: str) -> Iterable[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) & set(b)):
            if not _ignored(key):
                yield from differences(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} vs {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from differences(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif a != b:
        yield f"{where}: {a!r} vs {b!r}"


def index(found: list[dict[str, Any]]) -> tuple[dict[tuple[Any, ...], dict[str, Any]], dict[tuple[Any, ...], dict[str, Any]]]:
    by_key = {(r["suite"], r["trial_key"]): r for r in found}
    by_label = {(r["suite"], *(r.get(k) for k in LABELS)): r for r in found}
    return by_key, by_label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--suite", action="append", default=[])
    args = parser.parse_args(argv)
    before, after = rows(args.before, set(args.suite)), rows(args.after, set(args.suite))
    keyed, labelled = index(after)
    problems, matched = [], 0
    for row in before:
        other = keyed.get((row["suite"], row["trial_key"])) or labelled.get(
            (row["suite"], *(row.get(k) for k in LABELS)))
        name = f"{row['suite']} {row['dataset']} {row['attack']} {row['defense']} seed {row['seed']}"
        if other is None:
            problems.append(f"{name}: no matching row in {args.after}")
            continue
        matched += 1
        problems += [f"{name}: {d}" for d in differences(row, other, "row")]
    extra = len(after) - matched
    print("\n".join(problems))
    print(f"{len(before)} ok rows before, {len(after)} after, {matched} matched, "
          f"{len(problems)} differences or unmatched, {extra} rows only after")
    return 1 if problems or extra else 0


if __name__ == "__main__":
    sys.exit(main())
