"""Pre-training throughput: pe-bench's batched on-device pipeline vs a per-sample DataLoader.

For each image-only encoder x backbone this measures pre-training images/s (one image = one
pair of views, as in `TrainResult.images_per_second`) three ways, with the same model
initialisation, optimiser (`pe_bench.worker.train`'s), loss, batch size, channels_last layout and,
on CUDA, bfloat16 autocast:

- **pe-bench**: `pe_bench.worker.train.pretrain` itself on a subset of exactly `batch * steps`
  images (one epoch of `steps` steps), timed by its own `TrainResult`; a separate warm-up call
  of `batch * warmup` images runs first and is not counted. The dataset is on the device and
  augmentation is batched there (`pe_bench.worker.augment`).
- **reference**: the conventional recipe -- a torch `DataLoader` over a map-style dataset
  whose `__getitem__` applies torchvision transforms per sample, twice (two views):
  RandomResizedCrop(scale=(crop_min_scale, 1)), RandomHorizontalFlip,
  RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8), RandomGrayscale(0.2),
  ToTensor/ToDtype + Normalize. `v1` = torchvision.transforms on PIL images (as
  torchvision's CIFAR10 class hands them out), `v2` = torchvision.transforms.v2 on uint8
  tensors. Pinned memory and non_blocking copies on CUDA. The first `warmup` steps (worker
  start-up included), plus 2 per worker (the batches workers prefetch), are not counted.
  With workers the reference uses `threads` + `num_workers` processes' worth of CPU while
  pe-bench uses `threads`: say so when comparing.
- **model only**: the same optimiser steps on one pre-augmented batch already on the device:
  the ceiling either pipeline could reach. "input share" = 1 - pipeline img/s / model-only
  img/s is the fraction of a step spent producing views; on CUDA a pipeline is called
  GPU-bound when that share is below 15 %, else input-bound.

With `--repeats N` every pipeline is measured N rounds (each round runs them back to back);
the table shows median img/s and the median of the per-round ratios with its range, so one
burst of load from elsewhere on a shared machine does not decide the ratio.

Timers are read after `torch.cuda.synchronize()` on CUDA (`pretrain` synchronises itself when
it reads the epoch's loss before stopping its clock). Peak GPU memory is
`torch.cuda.max_memory_allocated()` over the timed part of each pipeline.

On a CPU shared with other jobs, pass `--threads 1`: with 2 intra-op threads on 2 busy cores
pe-bench's batched ops stalled ~10x (OpenMP threads waiting on each other) while the
single-threaded per-sample transforms did not, which inverts the comparison.

With --out the JSON is rewritten after every configuration (`complete` turns true after the
last), so a run stopped half-way keeps what finished. A configuration that raises (CUDA out of
memory, an encoder refusing the settings, e.g. MoCo in an epoch of one batch: no images left
for its queue) becomes a row with an `error`, the others still run, and the script exits 1.

Usage: .venv/bin/python perf/throughput.py [--encoders simclr] [--backbones small-cnn]
       [--device auto|cpu|cuda] [--batch-size N] [--steps N] [--repeats N] [--num-workers N]
       [--out f.json]
"""

from __future__ import annotations

import argparse
import copy
import gc
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

try:
    from perf import _common as common
    from perf._reference_pipeline import PREFETCH, measure_reference
    from perf._timing import _limit, _memory_format, _peak_mib, _reset_peak, _share, _sync, train_step
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    import _common as common  # type: ignore[no-redef]
    from _reference_pipeline import PREFETCH, measure_reference  # type: ignore[no-redef]
    from _timing import (_limit, _memory_format, _peak_mib, _reset_peak, _share, _sync,  # type: ignore[no-redef]
                         train_step)
from pe_bench.worker.augment import augment
from pe_bench.encoders.base import EncoderMethod
from pe_bench.config.spec import TrainSpec
from pe_bench.errors import PeBenchError
from pe_bench.worker.train import make_optimizer, pretrain



def measure_pebench(model: EncoderMethod, images: np.ndarray, recipe: TrainSpec, steps: int,
                    warmup: int, device: torch.device) -> dict[str, Any]:
    """`pretrain` on batch*steps images (one epoch = `steps` steps), after a warm-up call."""
    batch = recipe.batch_size
    if warmup:
        pretrain(model, common.take(images, batch * warmup), (), recipe, seed=1)
    _reset_peak(device)
    result = pretrain(model, common.take(images, batch * steps), (), recipe, seed=0)
    return {"img_s": result.images_per_second, "seconds": result.seconds,
            "loss": result.final_loss, "peak_mib": _peak_mib(device)}


# -- model only ------------------------------------------------------------------------------
def measure_model_only(model: EncoderMethod, images: np.ndarray, recipe: TrainSpec, steps: int,
                       warmup: int, device: torch.device) -> dict[str, Any]:
    """The optimiser steps alone, on one batch of views augmented once, already on the device."""
    fmt = _memory_format(recipe)
    model.to(device=device, memory_format=fmt).train()
    opt = make_optimizer(model, recipe)
    amp = recipe.amp and device.type == "cuda"
    gen = torch.Generator(device=device).manual_seed(0)
    batch = torch.tensor(common.take(images, recipe.batch_size), device=device)
    size = images.shape[-1]
    v1 = augment(batch, size, recipe, gen).contiguous(memory_format=fmt)
    v2 = augment(batch, size, recipe, gen).contiguous(memory_format=fmt)
    for _ in range(warmup):
        train_step(model, opt, v1, v2, device, amp)
    _reset_peak(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, v1, v2, device, amp)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"img_s": steps * recipe.batch_size / seconds, "seconds": seconds,
            "peak_mib": _peak_mib(device)}


# -- per-sample reference ------------------------------------------------------------------------
def measure_round(model: EncoderMethod, images: np.ndarray, recipe: TrainSpec,
                  args: argparse.Namespace, device: torch.device) -> dict[str, dict[str, Any]]:
    """One measurement of every pipeline, each on a fresh copy of the initial model (the
    previous copy is freed first, so it neither counts in the next peak GPU memory nor starts
    from trained weights)."""
    def fresh() -> EncoderMethod:
        gc.collect()
        return copy.deepcopy(model)

    out = {"pebench": measure_pebench(fresh(), images, recipe, args.steps, args.warmup, device)}
    if args.model_only:
        out["model_only"] = measure_model_only(fresh(), images, recipe, args.steps, args.warmup, device)
    for api in args.reference:
        out[api] = measure_reference(fresh(), images, recipe, args.steps, args.warmup, device,
                                     api, args.num_workers, args.seed)
    return out


def _median(rounds: list[dict[str, dict[str, Any]]], pipeline: str, key: str) -> Any:
    values = [r[pipeline][key] for r in rounds]
    return None if values[0] is None else float(np.median(values))


def summarise(row: dict[str, Any], rounds: list[dict[str, dict[str, Any]]], references: Sequence[str],
              device: torch.device) -> list[dict[str, Any]]:
    """Rows (one per reference) of medians over rounds; the ratio is the median of the
    per-round ratios (each round's pipelines ran back to back) with its min and max."""
    model_img_s = _median(rounds, "model_only", "img_s") if "model_only" in rounds[0] else None
    pe_img_s = _median(rounds, "pebench", "img_s")
    pe_share = _share(pe_img_s, model_img_s)
    row = {**row, "pebench_img_s": pe_img_s,
           "pebench_loss": _median(rounds, "pebench", "loss"),
           "pebench_peak_mib": _median(rounds, "pebench", "peak_mib"),
           "model_only_img_s": model_img_s,
           "model_only_peak_mib": _median(rounds, "model_only", "peak_mib") if model_img_s else None,
           "pebench_input_share": pe_share, "pebench_limit": _limit(pe_share, device)}
    rows = []
    for api in references:
        ratios = [r["pebench"]["img_s"] / r[api]["img_s"] for r in rounds]
        ref_img_s = _median(rounds, api, "img_s")
        ref_share = _share(ref_img_s, model_img_s)
        rows.append({**row, "reference": api, "reference_img_s": ref_img_s,
                     "reference_loss": _median(rounds, api, "loss"),
                     "reference_peak_mib": _median(rounds, api, "peak_mib"),
                     "reference_input_share": ref_share, "reference_limit": _limit(ref_share, device),
                     "ratio": float(np.median(ratios)), "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "rounds": [{k: r[k]["img_s"] for k in ("pebench", "model_only", api) if k in r}
                                for r in rounds]})
    return rows


def measure_one(name: str, cls: type[EncoderMethod], backbone: str, images: np.ndarray,
                args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    row: dict[str, Any] = {"encoder": name, "backbone": backbone, "width": args.width, "device": str(device),
                           "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
                           "num_workers": args.num_workers, "repeats": args.repeats}
    model = common.build_model(cls, backbone, args.width, images.shape[1], args.seed)
    if isinstance(model, str):
        print(f"skipped {name} x {backbone}: {model}")
        return []
    row["parameters"] = sum(p.numel() for p in model.parameters())
    recipe = TrainSpec(epochs=1, batch_size=args.batch_size, device=device.type, lr=args.lr)
    try:
        rounds = [measure_round(model, images, recipe, args, device) for _ in range(args.repeats)]
    except Exception as exc:  # any failure of this configuration (CUDA out of memory, an
        # encoder refusing the settings): recorded as an error row, the others still run, main() exits 1
        if device.type == "cuda":
            torch.cuda.empty_cache()
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        print(f"failed {name} x {backbone}: {text[:200]}")
        return [{**row, "error": text[:500]}]
    return summarise(row, rounds, args.reference, device)


def _ratio_text(row: dict[str, Any]) -> str:
    text = f"{row['ratio']:.1f}x"
    if row["repeats"] > 1:
        text += f" ({row['ratio_min']:.1f}-{row['ratio_max']:.1f})"
    return text


def print_rows(rows: Sequence[dict[str, Any]], device: torch.device) -> None:
    cuda = device.type == "cuda"
    columns = ["encoder", "backbone", "device", "batch", "pe-bench img/s", "reference", "ref img/s",
               "ratio", "model-only img/s", "input share pe/ref"]
    if cuda:
        columns += ["limit pe/ref", "peak MiB pe/ref"]
    table = []
    for r in rows:
        if "error" in r:
            head = [r["encoder"], r["backbone"], r["device"], str(r["batch_size"])]
            table.append([*head, "error: " + r["error"][:40]] + [""] * (len(columns) - 5))
            continue
        share = "-" if r["pebench_input_share"] is None else (
            f"{r['pebench_input_share']:.0%} / {r['reference_input_share']:.0%}")
        line = [r["encoder"], r["backbone"], r["device"], str(r["batch_size"]),
                common.fmt(r["pebench_img_s"]), f"{r['reference']} w{r['num_workers']}",
                common.fmt(r["reference_img_s"]), _ratio_text(r),
                common.fmt(r["model_only_img_s"]), share]
        if cuda:
            line += [f"{r['pebench_limit'] or '-'} / {r['reference_limit'] or '-'}",
                     f"{common.fmt(r['pebench_peak_mib'])} / {common.fmt(r['reference_peak_mib'])}"]
        table.append(line)
    common.print_table("pre-training throughput (images/s; one image = two views)", columns, table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(parser, backbones_default=None,
                           backbones_help="every registered backbone on CUDA, small-cnn on a CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on CPU, 512 on CUDA")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps (default: 5 on CPU, 20 on CUDA); MoCo needs 2 or more: "
                             "its queue fills from images beyond the batch")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed warm-up steps before each measurement (default: 2 on CPU, 3 on "
                             "CUDA); MoCo needs 0 or 2 or more (its warm-up is one `pretrain` call)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers of the reference pipeline (default: %(default)s)")
    parser.add_argument("--reference", nargs="+", choices=("v1", "v2"), default=["v1"],
                        help="torchvision API of the reference: v1 (PIL) and/or v2 (uint8 tensors)")
    parser.add_argument("--lr", type=float, default=None, help="default: each method's own")
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure every pipeline this many rounds; img/s are medians, the ratio is "
                             "the median of per-round ratios, with its range (default: %(default)s)")
    parser.add_argument("--no-model-only", dest="model_only", action="store_false",
                        help="skip the model-only measurement (and with it the input share / limit)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = common.setup_process(args.threads)
    device = common.pick_device(args.device)
    cuda = device.type == "cuda"
    args.batch_size = args.batch_size or (512 if cuda else 256)
    args.steps = args.steps or (20 if cuda else 5)
    args.warmup = (3 if cuda else 2) if args.warmup is None else args.warmup
    if args.steps < 1 or args.batch_size < 2 or args.warmup < 0 or args.repeats < 1:
        raise SystemExit("need --steps >= 1, --batch-size >= 2, --warmup >= 0, --repeats >= 1")
    need = args.batch_size * (args.warmup + args.steps)
    try:
        images = common.load_split(args.dataset, "train", args.resolution, args.data_dir, need,
                                   args.seed).images
    except PeBenchError as exc:  # no data: one line, not a traceback
        raise SystemExit(f"error: {exc}") from None
    encoders = common.image_encoders(common.names(args.encoders))
    # on a CPU, ResNet18 / ViT steps take seconds each: time them only when asked to
    backbones = common.backbone_names(common.names(args.backbones) or (None if cuda else ["small-cnn"]))
    print(f"device {device}, {threads} threads, batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup} warm-up, reference DataLoader num_workers={args.num_workers}"
          f"{f' (+{PREFETCH * args.num_workers} warm-up steps)' if args.num_workers else ''}, "
          f"images {args.dataset} {tuple(images.shape[1:])}, {args.repeats} round(s)")
    config = {k: v for k, v in vars(args).items() if k != "out"}
    payload = {"benchmark": "throughput", "environment": common.environment(device, threads),
               "config": config, "complete": False, "rows": []}
    rows = measure_all(encoders, backbones, images, args, device, payload)
    print_rows(rows, device)
    failed = [f"{r['encoder']} x {r['backbone']}" for r in rows if "error" in r]
    if failed:
        print(f"FAILED: {len(failed)} configuration(s): {', '.join(failed)} (see their error rows)")
        return 1
    return 0


def measure_all(encoders: Sequence[tuple[str, type[EncoderMethod]]], backbones: Sequence[str],
                images: np.ndarray, args: argparse.Namespace, device: torch.device,
                payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every encoder x backbone; `payload` (its `rows` grown) is written to --out after each
    configuration, so a run killed half-way (a time limit, a crash) keeps what finished;
    `complete` turns true once the last one is in."""
    rows: list[dict[str, Any]] = payload["rows"]
    for name, cls in encoders:
        for backbone in backbones:
            rows.extend(measure_one(name, cls, backbone, images, args, device))
            common.write_json(args.out, payload)
    payload["complete"] = True
    common.write_json(args.out, payload)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
