"""The cost of one CPU pre-training step: GEMM peaks, img/s and GFLOP/s per configuration,
and where a step's time goes (issue #22, "a cheaper training step on this CPU").

The step is pe-bench's own SimCLR pre-training step (small-cnn, batch 256, 32x32, two views,
Adam), run by a one-batch-per-step harness instead of `pretrain` so that its phases can be
timed: the harness uses the loop's own pieces, in `pretrain`'s order -- `plan.epoch_plan` (an
epoch's draws, on the loop's CPU generators), `train._Resident.step` (the two view batches,
rendered by `augment.render_pair`, in the recipe's memory format), `train._optimise` (autocast,
`training_loss`, zero_grad, backward, Adam step, `after_step`) and the cosine schedule's lr
setter. Phase boundaries come from a wrapper around the step function (end of the forward and
loss) and the optimiser's step pre/post hooks, so `_optimise` itself is what runs. Not run:
`before_training`/`before_epoch` (no-ops for SimCLR), checkpoints, the per-epoch loss read-back.

Printed:
1. GEMM peaks: a 2048x2048 `torch.matmul` in fp32 and bf16, GFLOP/s (best of 3 per round).
2. Per width x configuration -- `fp32` (channels_last, what `pretrain` runs on a CPU),
   `fp32-nchw`, `bf16` (`torch.autocast("cpu", torch.bfloat16)` around the forward and loss,
   i.e. `_optimise(amp=True)`; the losses compute in fp32 inside) and, unless `--no-compile`,
   `fp32-compile` (`torch.compile(model.training_loss)`, as `recipe.compile` does; its compile
   seconds = the first step's) -- img/s (one image = two views), model FLOPs per step (counted
   once by `torch.utils.flop_counter.FlopCounterMode` over `_optimise`: convolutions and
   matmuls, forward and backward), GFLOP/s over the whole step and over forward+backward
   alone, % of the fp32 and bf16 GEMM peaks (of the whole step's GFLOP/s), and the ratio of
   img/s to `fp32` (median of per-round ratios, with its range).
3. Where a step's time goes, per configuration: draws (the epoch's plan, amortised per step),
   views (rendering), forward (+loss), backward (+zero_grad), optimiser (Adam, `after_step`).
4. Inside the model (forward+backward on fixed views, `torch.profiler`, self CPU time by op):
   convolution, batch norm, ReLU (relu/threshold_backward), matmul (head and loss), copies and
   dtype casts, everything else (loss element-wise ops, autograd bookkeeping).

Every configuration is measured in each of `--rounds` interleaved rounds (and the GEMM peaks
too), one intra-op thread; the table shows medians and [min-max] ranges over rounds.

Usage: .venv/bin/python perf/step_cost.py [--widths 8,16] [--batch-size 256] [--steps 8]
       [--rounds 5] [--no-compile] [--dataset cifar10|random] [--json out.json] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

try:
    from perf import _common as common
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    import _common as common  # type: ignore[no-redef]

from pe_bench.config.spec import TrainSpec
from pe_bench.errors import PeBenchError
from pe_bench.plugins.registry import ENCODERS

try:
    from perf._step_harness import (BASELINE, CATEGORIES, CONFIGS, GEMM_N, PHASES, Harness, build_harness,
                                      category, count_flops, gemm_gflops, profile_model)
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    from _step_harness import (BASELINE, CATEGORIES, CONFIGS, GEMM_N, PHASES,  # type: ignore[no-redef]
                               Harness, build_harness, category, count_flops, gemm_gflops,
                               profile_model)

__all__ = ["category", "count_flops", "main", "parse_args"]


def build_all(args: argparse.Namespace, images: np.ndarray) -> dict[tuple[int, str], Harness]:
    """A harness per width x configuration, all from the same seeded initial model per width."""
    cls = ENCODERS.get("simclr")
    recipe = TrainSpec(epochs=1, batch_size=args.batch_size, device="cpu")
    out = {}
    for width in args.widths:
        base = common.build_model(cls, "small-cnn", width, images.shape[1], args.seed)
        if isinstance(base, str):
            raise SystemExit(f"small-cnn width {width}: {base}")
        for config in args.configs:
            out[width, config.name] = build_harness(base, images, recipe, config, args.seed)
    return out


def warm_up(harnesses: dict[tuple[int, str], Harness], steps: int) -> dict[tuple[int, str], float]:
    """`steps` untimed steps of each harness; returns each one's first-step seconds (for a
    compiled step function: its compile time, forward and backward graphs)."""
    first = {}
    for key, h in harnesses.items():
        first[key] = h.run(1)["total"]
        if steps > 1:
            h.run(steps - 1)
    return first


def measure_rounds(harnesses: dict[tuple[int, str], Harness], args: argparse.Namespace
                   ) -> list[dict[Any, Any]]:
    """Per round: the GEMM peaks, then `args.steps` steps of every harness, in an order
    rotated by one each round (so no configuration always follows the same one)."""
    keys = list(harnesses)
    rounds = []
    for r in range(args.rounds):
        found: dict[Any, Any] = {"gemm_fp32": gemm_gflops(torch.float32, args.gemm_n),
                                 "gemm_bf16": gemm_gflops(torch.bfloat16, args.gemm_n)}
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            found[key] = harnesses[key].run(args.steps)
        rounds.append(found)
        print(f"round {r + 1}/{args.rounds}: GEMM fp32 {found['gemm_fp32']:.0f}, "
              f"bf16 {found['gemm_bf16']:.0f} GFLOP/s", flush=True)
    return rounds


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": float(statistics.median(values)), "min": min(values), "max": max(values)}


def summarise(key: tuple[int, str], rounds: list[dict[Any, Any]], flops: int,
              peaks: dict[str, dict[str, float]], args: argparse.Namespace) -> dict[str, Any]:
    """One width x configuration's row: medians over rounds, ranges, ratios to `fp32`."""
    width, name = key
    images = args.batch_size * args.steps
    totals = [r[key]["total"] for r in rounds]
    img_s = _spread([images / t for t in totals])
    ratio = _spread([r[width, BASELINE]["total"] / r[key]["total"] for r in rounds])
    phases = {p: 1e3 * statistics.median(r[key][p] for r in rounds) / args.steps for p in PHASES}
    step_s = args.batch_size / img_s["median"]
    model_s = (phases["forward"] + phases["backward"]) / 1e3
    gflops = flops / step_s / 1e9
    return {"width": width, "config": name, "flops_per_step": flops, "img_s": img_s,
            "step_ms": 1e3 * step_s, "gflops_step": gflops, "gflops_fwd_bwd": flops / model_s / 1e9,
            "pct_fp32_peak": 100 * gflops / peaks["fp32"]["median"],
            "pct_bf16_peak": 100 * gflops / peaks["bf16"]["median"],
            "ratio_vs_fp32": ratio, "phase_ms": phases,
            "phase_share": {p: v / sum(phases.values()) for p, v in phases.items()}}


# -- output ----------------------------------------------------------------------------------------
def _range(s: dict[str, float], digits: int = 0, unit: str = "") -> str:
    return (f"{s['median']:,.{digits}f}{unit} [{s['min']:,.{digits}f}-{s['max']:,.{digits}f}]")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """`common.print_table`, wide enough for this script's columns not to wrap."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 2 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    Console(width=220).print(table)


def print_tables(peaks: dict[str, dict[str, float]], rows: Sequence[dict[str, Any]], gemm_n: int) -> None:
    print_table(f"GEMM peak ({gemm_n}^3 matmul), GFLOP/s: median [range] over rounds",
                       ["dtype", "GFLOP/s"],
                       [[d, _range(peaks[d])] for d in ("fp32", "bf16")])
    print_table(
        "training step: img/s (1 image = 2 views), model FLOPs counted once, % of GEMM peak",
        ["width", "config", "img/s", "ms/step", "GFLOP/step", "GFLOP/s step", "GFLOP/s fwd+bwd",
         "% fp32 peak", "% bf16 peak", "vs fp32", "compile s"],
        [[str(r["width"]), r["config"], _range(r["img_s"]), f"{r['step_ms']:.0f}",
          f"{r['flops_per_step'] / 1e9:.2f}", f"{r['gflops_step']:.1f}", f"{r['gflops_fwd_bwd']:.1f}",
          f"{r['pct_fp32_peak']:.1f}", f"{r['pct_bf16_peak']:.1f}", _range(r["ratio_vs_fp32"], 2, "x"),
          "-" if r.get("compile_s") is None else f"{r['compile_s']:.0f}"] for r in rows])
    print_table("where a step's time goes: ms per step (share)", ["width", "config", *PHASES],
                       [[str(r["width"]), r["config"],
                         *(f"{r['phase_ms'][p]:.1f} ({r['phase_share'][p]:.0%})" for p in PHASES)]
                        for r in rows])
    profiled = [r for r in rows if "profile_ms" in r]
    print_table("inside the model (forward+backward, torch.profiler self CPU time): ms per step (share)",
                       ["width", "config", *CATEGORIES],
                       [[str(r["width"]), r["config"],
                         *(f"{r['profile_ms'][c]:.1f} ({r['profile_share'][c]:.0%})" for c in CATEGORIES)]
                        for r in profiled])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="8,16", help="small-cnn widths (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--profile-steps", type=int, default=3, help="steps under torch.profiler")
    parser.add_argument("--gemm-n", type=int, default=GEMM_N, help="GEMM size (default: %(default)s)")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile configuration")
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (default) or random")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    parser.add_argument("--quick", action="store_true",
                        help="a short run for a test: batch 32, 2 steps, 2 rounds, 1 warm-up and profiled "
                             "step, 512^3 GEMM, no compile")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.steps, args.rounds, args.warmup = 32, 2, 2, 1
        args.profile_steps, args.gemm_n, args.compile = 1, 512, False
    args.widths = [int(w) for w in args.widths.replace(",", " ").split()]
    args.configs = [c for c in CONFIGS if args.compile or not c.compiled]
    if min(args.batch_size, args.steps, args.rounds, args.warmup, args.profile_steps) < 1:
        raise SystemExit("need --batch-size, --steps, --rounds, --warmup and --profile-steps >= 1")
    return args


def measure(args: argparse.Namespace, images: np.ndarray) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Build, count, warm up, time and profile every width x configuration."""
    harnesses = build_all(args, images)
    flops = {k: count_flops(h) for k, h in harnesses.items() if not h.config.compiled}
    first = warm_up(harnesses, args.warmup)
    rounds = measure_rounds(harnesses, args)
    peaks = {d: _spread([r[f"gemm_{d}"] for r in rounds]) for d in ("fp32", "bf16")}
    rows = []
    for key, h in harnesses.items():
        count = flops.get(key, flops[key[0], BASELINE])  # compiled: the eager fp32 step's count
        row = summarise(key, rounds, count, peaks, args)
        row["compile_s"] = first[key] if h.config.compiled else None
        if not h.config.compiled:
            prof = profile_model(h, args.profile_steps)
            row["profile_ms"] = {c: 1e3 * prof[c] for c in CATEGORIES}
            row["profile_share"] = {c: prof[c] / prof["total"] for c in CATEGORIES}
            row["profile_total_ms"] = 1e3 * prof["total"]
        rows.append(row)
    return peaks, rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = common.setup_process(args.threads)
    need = args.batch_size * max(args.steps, args.warmup)
    try:
        images = common.load_split(args.dataset, "train", None, args.data_dir, need, args.seed).images
    except PeBenchError as exc:
        raise SystemExit(f"error: {exc}") from None
    images = common.take(images, need)
    print(f"SimCLR x small-cnn widths {args.widths}, batch {args.batch_size}, {tuple(images.shape[1:])} "
          f"{args.dataset}, {threads} thread(s), {args.warmup} warm-up + {args.rounds} rounds x "
          f"{args.steps} steps, configs {[c.name for c in args.configs]}", flush=True)
    start = time.perf_counter()
    peaks, rows = measure(args, images)
    print_tables(peaks, rows, args.gemm_n)
    config = {k: v for k, v in vars(args).items() if k not in ("json", "configs")}
    payload = {"benchmark": "step_cost", "environment": common.environment(torch.device("cpu"), threads),
               "config": config, "seconds": time.perf_counter() - start, "gemm_peak_gflops": peaks,
               "rows": rows}
    common.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
