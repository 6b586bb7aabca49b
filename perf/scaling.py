"""What Ray costs per trial, and how the grid's wall time scales with concurrent trials.

The suite (default: suites/smoke.yaml) runs once per `--concurrency` value through the real
engine (`pe_bench.api.run_suite`, one Ray session for all of them), each time with a fresh
store and encoder cache so every trial really trains. Definitions, per trial:

- work: the sum of the row's stage timings (`time_<stage>_s`: data, attack, defense,
  pre-training, evaluation), i.e. what the trial costs without Ray;
- Tune wall: on the driver, from Tune's `on_trial_start` (the trial's worker process is up)
  to the trial's row arriving (`RunSummary.trial_seconds`);
- per-trial overhead = 1 - sum(work) / sum(Tune wall): torch import and thread set-up in the
  fresh worker, plugin imports, row transport and Tune's bookkeeping.

And per grid: wall (`Engine.run` alone; `ray.init` is timed once, separately), speed-up against
the first concurrency value, start-up per trial = (wall x concurrency - sum(Tune wall)) /
trials, the slot time spent outside started trials (worker process start-up and imports,
scheduling gaps, idle slots), and grid overhead = 1 - (sum(work) / concurrency) / wall: all of
Ray's cost as a share of the grid's wall time. Ray is given
max(concurrency) x the suite's CPUs per trial, so each value is really reached (on fewer cores
that oversubscribes, which the grid overhead then shows).

Usage: .venv/bin/python perf/scaling.py [--suite suites/smoke.yaml] [--concurrency 1 2]
       [--out scaling.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

try:
    from perf import _common as common
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    import _common as common  # type: ignore[no-redef]

from pe_bench.api import run_suite, validate_suite
from pe_bench.store.results import scan


def suite_copy(path: Path, folder: Path, concurrency: int, trials: int | None) -> Path:
    """The suite with `max_concurrent` set (and, for the warm-up, a single seed)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["max_concurrent"] = concurrency
    if trials is not None:
        data["seeds"] = data["seeds"][:1]
        data["attacks"] = data["attacks"][:trials]
    out = folder / f"c{concurrency}-{trials or 'all'}.yaml"
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


def work_seconds(row: dict[str, Any]) -> float:
    """Stage timings of a row, summed (every `time_*_s` column but the total)."""
    return sum(v for k, v in row.items()
               if k.startswith("time_") and k.endswith("_s") and k != "time_total_s" and v is not None)


def measure(suite: Path, folder: Path, concurrency: int, data_dir: str | None) -> dict[str, Any]:
    """One run of the grid in a fresh store (and cache) at this concurrency."""
    store = folder / f"store-c{concurrency}"
    start = time.perf_counter()
    plan, summary = run_suite(suite, store=store, data_dir=data_dir, show_progress=False,
                              run_id=f"c{concurrency}")
    wall = time.perf_counter() - start
    if summary.errors:
        raise SystemExit(f"concurrency {concurrency}: {summary.errors} trials failed: "
                         f"{summary.error_messages[0]}")
    rows = scan(store, plan.suite.name).to_pylist()
    trials = [{"trial_key": r["trial_key"], "work_s": work_seconds(r), "time_total_s": r["time_total_s"],
               "tune_s": summary.trial_seconds.get(r["trial_key"]), "cache_hits": r["cache_hits"]}
              for r in rows]
    return {"concurrency": concurrency, "trials": len(trials), "wall_s": wall,
            "run_trials_s": summary.seconds, "per_trial": trials}


def summarise(result: dict[str, Any], first: dict[str, Any]) -> dict[str, Any]:
    """Totals and ratios of one measured run (see the module docstring)."""
    per = result["per_trial"]
    work = sum(t["work_s"] for t in per)
    tune = sum(t["tune_s"] for t in per if t["tune_s"] is not None)
    c, wall = result["concurrency"], result["run_trials_s"]
    return {**{k: v for k, v in result.items() if k != "per_trial"},
            "work_s": work, "tune_trial_s": tune,
            "mean_work_s": statistics.fmean(t["work_s"] for t in per),
            "mean_tune_s": tune / len(per),
            "startup_s": (wall * c - tune) / len(per),
            "trial_overhead": 1 - work / tune if tune else None,
            "grid_overhead": 1 - (work / c) / wall,
            "speedup": first["run_trials_s"] / wall}


def print_rows(rows: Sequence[dict[str, Any]], ray_init_s: float) -> None:
    columns = ["concurrency", "trials", "grid wall s", "speed-up", "work s", "work s/trial",
               "Tune s/trial", "trial ovh", "start-up s/trial", "grid ovh"]
    table = [[str(r["concurrency"]), str(r["trials"]), common.fmt(r["run_trials_s"], 1),
              f"{r['speedup']:.2f}x", common.fmt(r["work_s"], 1), common.fmt(r["mean_work_s"], 2),
              common.fmt(r["mean_tune_s"], 2),
              "-" if r["trial_overhead"] is None else f"{r['trial_overhead']:.0%}",
              common.fmt(r["startup_s"], 2), f"{r['grid_overhead']:.0%}"] for r in rows]
    common.print_table(f"Ray scaling (ray.init {ray_init_s:.1f} s, not in the walls)", columns, table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=str(common.REPO / "suites" / "smoke.yaml"))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2],
                        help="max_concurrent values to measure, in order (default: 1 2)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the untimed one-trial run that warms Ray and the data cache")
    parser.add_argument("--data-dir", default=None, help="datasets folder (default: pe-bench's own)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: a local one)")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1:
        parser.error("--concurrency values must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from pe_bench.engines.ray_tune import start_ray

    suite = Path(args.suite)
    cpus = validate_suite(suite).suite.resources.cpu
    start = time.perf_counter()
    start_ray(args.address, max(args.concurrency) * cpus)
    ray_init_s = time.perf_counter() - start
    results = []
    with tempfile.TemporaryDirectory(prefix="pe-bench-scaling-") as tmp:
        folder = Path(tmp)
        if args.warmup:
            measure(suite_copy(suite, folder, 1, 1), folder / "warmup", 1, args.data_dir)
        for c in args.concurrency:
            results.append(measure(suite_copy(suite, folder, c, None), folder, c, args.data_dir))
    rows = [summarise(r, results[0]) for r in results]
    print_rows(rows, ray_init_s)
    env = {**common.environment(torch.device("cpu"), torch.get_num_threads()), "ray_init_s": ray_init_s}
    common.write_json(args.out, {"benchmark": "scaling", "environment": env,
                                 "config": {k: v for k, v in vars(args).items() if k != "out"},
                                 "rows": rows, "runs": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
