"""Representation quality after a short pre-training, against the same network untrained.

For each encoder (default: every registered one; clip trains on templated captions of the
pre-training images) and backbone (default: small-cnn), this pre-trains on the first
`--pretrain-size` images of the dataset's train split with `pe_bench.worker.train.pretrain` (the
benchmark's own loop: each method's optimiser defaults, batched augmentation) and reports,
for the trained encoder and for the *same architecture at the same random initialisation*
(what the training started from):

- kNN accuracy: k nearest neighbours (default k=20) by cosine similarity between frozen
  features (`pe_bench.worker.train.encode`) of the test images and of the labelled train prefix;
  majority vote, ties broken by the summed similarity;
- linear-probe accuracy: `pe_bench.worker.evaluate.linear_probe` (standardised features, multinomial
  logistic regression) with the default `pe_bench.config.spec.EvalSpec()`, as every suite uses.

Labelled data: the first `--train-size` train images and the first `--test-size` test
images. The pre-training prefix and the probe's train prefix overlap (the encoder never sees
labels). Defaults: CIFAR-10, 5,000 pre-training images, 20 epochs, batch 256, small CNN at
width 8 (pe-bench's CPU suites' setting; `--width` overrides it for every backbone, other
backbones default to their own width), probes on 5,000 / 2,000 images: about 5 minutes for
simclr + moco on 2 CPU cores.

Usage: .venv/bin/python perf/quality.py [--encoders simclr] [--epochs 20] [--out q.json]
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

try:
    from perf import _common as common
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    import _common as common  # type: ignore[no-redef]

from pe_bench.worker.cached_training import caption_tokens
from pe_bench.plugins.types import ImageArray
from pe_bench.encoders.base import EncoderMethod
from pe_bench.worker.evaluate import linear_probe
from pe_bench.config.spec import EvalSpec, TrainSpec
from pe_bench.worker.train import encode, pretrain

# Backbone widths when --width is not given: the small CNN at the width of pe-bench's CPU suites
# (suites/quick.yaml), so the default run fits in about 5 minutes on 2 cores; others: their own.
DEFAULT_WIDTHS = {"small-cnn": 8}


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int, n_classes: int, chunk: int = 1024) -> float:
    """Accuracy of a k-NN classifier on cosine similarity (majority vote; ties go to the class
    with the larger summed similarity)."""
    train = F.normalize(torch.tensor(train_x, dtype=torch.float32), dim=1)
    test = F.normalize(torch.tensor(test_x, dtype=torch.float32), dim=1)
    labels = torch.tensor(train_y, dtype=torch.int64)
    k = min(k, len(train))
    pred = []
    for start in range(0, len(test), chunk):
        sim, idx = (test[start:start + chunk] @ train.T).topk(k, dim=1)
        nearest = labels[idx]
        votes = torch.zeros(len(idx), n_classes).scatter_add_(1, nearest, torch.ones_like(sim))
        summed = torch.zeros(len(idx), n_classes).scatter_add_(1, nearest, sim)
        pred.append((votes + summed / (2 * k + 1)).argmax(1))  # |summed| <= k: only breaks ties
    return float((torch.cat(pred).numpy() == test_y).mean()) if pred else float("nan")


def evaluate_encoder(model: EncoderMethod, train: ImageArray, test: ImageArray, k: int,
                     spec: EvalSpec) -> dict[str, Any]:
    start = time.perf_counter()
    train_x, test_x = encode(model, train.images), encode(model, test.images)
    n_classes = len(train.classes)
    knn = knn_accuracy(train_x, train.labels, test_x, test.labels, k, n_classes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = linear_probe(train_x, train.labels, test_x, n_classes, spec)
    converged = not any("converge" in str(w.message).lower() for w in caught)
    return {"knn_acc": knn, "linear_acc": float((out.pred == test.labels).mean()),
            "probe_converged": converged, "eval_seconds": time.perf_counter() - start}


def run_one(name: str, cls: type[EncoderMethod], backbone: str, pre: ImageArray, train: ImageArray,
            test: ImageArray, args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    width = args.width if args.width is not None else DEFAULT_WIDTHS.get(backbone)
    model = common.build_model(cls, backbone, width, pre.images.shape[1], args.seed)
    if isinstance(model, str):
        print(f"skipped {name} x {backbone}: {model}")
        return []
    base = {"encoder": name, "backbone": backbone, "width": width, "device": str(device),
            "pretrain_images": len(pre), "epochs": args.epochs, "batch_size": args.batch_size,
            "train_size": len(train), "test_size": len(test), "k": args.k, "seed": args.seed}
    spec = EvalSpec()
    fmt = torch.channels_last
    untrained = copy.deepcopy(model).to(device=device, memory_format=fmt)
    rows = [{**base, "init": "random", **evaluate_encoder(untrained, train, test, args.k, spec)}]
    recipe = TrainSpec(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=device.type,
                       amp=not args.fp32)
    print(f"pre-training {name} x {backbone}: {len(pre)} images, {args.epochs} epochs ...", flush=True)
    # image–text methods get templated captions of the pre-training images (pe_bench.plugins.captions)
    texts = caption_tokens(model, pre, args.seed)
    result = pretrain(model, pre.images, (), recipe, args.seed, texts=texts)
    trained = evaluate_encoder(model, train, test, args.k, spec)
    rows.append({**base, "init": "trained", **trained, "train_seconds": result.seconds,
                 "images_per_second": result.images_per_second, "final_loss": result.final_loss,
                 "precision": result.precision})
    return rows


def _acc(row: dict[str, Any], key: str) -> str:
    """Accuracy to 3 places; `*` marks a probe that stopped at max_iter without converging."""
    return f"{row[key]:.3f}" + ("" if key != "linear_acc" or row["probe_converged"] else "*")


def print_rows(rows: Sequence[dict[str, Any]]) -> None:
    columns = ["encoder", "backbone", "kNN random", "kNN trained", "linear random", "linear trained",
               "train s", "img/s", "final loss"]
    table = []
    for rand, done in zip(rows[::2], rows[1::2], strict=True):
        table.append([done["encoder"], done["backbone"], _acc(rand, "knn_acc"), _acc(done, "knn_acc"),
                      _acc(rand, "linear_acc"), _acc(done, "linear_acc"),
                      common.fmt(done["train_seconds"], 1), common.fmt(done["images_per_second"]),
                      f"{done['final_loss']:.3f}"])
    common.print_table("representation quality: random init vs pre-trained (accuracy on the test prefix)",
                       columns, table)
    if any(not r["probe_converged"] for r in rows):
        print("* the logistic-regression probe hit EvalSpec.max_iter before converging")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(parser, backbones_default="small-cnn",
                           width_help="default: 8 for small-cnn, each other backbone's own")
    parser.add_argument("--pretrain-size", type=int, default=5000,
                        help="unlabelled train prefix (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=20, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=256, help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=None, help="default: each method's own")
    parser.add_argument("--train-size", type=int, default=5000,
                        help="labelled train prefix for the probes (default: %(default)s)")
    parser.add_argument("--test-size", type=int, default=2000,
                        help="test prefix the accuracies are on (default: %(default)s)")
    parser.add_argument("--fp32", action="store_true",
                        help="train in fp32 even where the hardware runs bf16 (recipe amp: false)")
    parser.add_argument("--k", type=int, default=20, help="kNN neighbours (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = common.setup_process(args.threads)
    device = common.pick_device(args.device)
    size = max(args.pretrain_size, args.train_size)
    full_train = common.load_split(args.dataset, "train", args.resolution, args.data_dir, size, args.seed)
    full_test = common.load_split(args.dataset, "test", args.resolution, args.data_dir, args.test_size,
                                  args.seed)
    pre = full_train.subset(slice(0, args.pretrain_size))
    train, test = full_train.subset(slice(0, args.train_size)), full_test.subset(slice(0, args.test_size))
    if len(pre) < args.batch_size:
        raise SystemExit(f"{len(pre)} pre-training images: fewer than one batch of {args.batch_size}")
    encoders = common.image_encoders(common.names(args.encoders), allow_text=True)
    backbones = common.backbone_names(common.names(args.backbones))
    print(f"device {device}, {threads} threads; {args.dataset} {tuple(pre.images.shape[1:])}: pre-train on "
          f"{len(pre)} images x {args.epochs} epochs, probes on {len(train)} train / {len(test)} test")
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for name, cls in encoders:
        for backbone in backbones:
            rows.extend(run_one(name, cls, backbone, pre, train, test, args, device))
    print_rows(rows)
    print(f"total {time.perf_counter() - start:.0f} s")
    config = {k: v for k, v in vars(args).items() if k != "out"}
    common.write_json(args.out, {"benchmark": "quality", "environment": common.environment(device, threads),
                                 "config": config, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
