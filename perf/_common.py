"""Helpers shared by the benchmark scripts: process set-up, data, encoder selection, output."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from pe_bench.datasets.loading import ImageArray, load_dataset, resolve_data_dir
from pe_bench.encoders.backbones import BACKBONES
from pe_bench.encoders.base import EncoderMethod
from pe_bench.errors import PluginError
from pe_bench.plugins.registry import ENCODERS

REPO = Path(__file__).resolve().parent.parent
IMAGE_ONLY = ("image",)


def names(text: str | None) -> list[str] | None:
    """`a,b` or `a b` -> ["a", "b"]; None or empty -> None (= all registered)."""
    if not text:
        return None
    return [n for n in text.replace(",", " ").split() if n]


def add_common_args(parser: argparse.ArgumentParser, backbones_default: str | None,
                    width_help: str = "default: each backbone's own",
                    backbones_help: str | None = None) -> None:
    parser.add_argument("--encoders", default=None,
                        help="comma-separated encoder names (default: every registered image-only encoder)")
    default_text = backbones_help or backbones_default or "every registered backbone"
    parser.add_argument("--backbones", default=backbones_default,
                        help=f"comma-separated backbone names (default: {default_text})")
    parser.add_argument("--width", type=int, default=None,
                        help=f"backbone width for backbones that take one ({width_help})")
    parser.add_argument("--dataset", default="cifar10",
                        help="a registered dataset, or 'random' for uniform noise images "
                             "(default: %(default)s)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="dataset resolution parameter (default: the dataset's own)")
    parser.add_argument("--data-dir", default=None,
                        help="datasets folder (default: $PE_BENCH_DATA, ~/.cache/pe-bench/data, "
                             "then ../shared/data next to the repository)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch/BLAS threads (default: torch's current setting)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")


def setup_process(threads: int | None) -> int:
    """Thread counts and glibc malloc thresholds exactly as a pe-bench trial sets them."""
    from pe_bench.engines.trial import tune_process

    threads = threads or torch.get_num_threads()
    tune_process(threads)
    return threads


def pick_device(requested: str) -> torch.device:
    from pe_bench.worker.train import pick_device as train_pick_device

    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    return train_pick_device(requested)


def data_dir_for(dataset: str, explicit: str | None) -> Path:
    """--data-dir, else pe-bench's own default, else ../shared/data (the Makefile's default)
    when the default lacks the dataset's folder."""
    chosen = resolve_data_dir(explicit)
    if explicit is None and not (chosen / dataset).exists():
        shared = (REPO.parent / "shared" / "data").resolve()
        if (shared / dataset).exists():
            return shared
    return chosen


def load_split(dataset: str, split: str, resolution: int | None, data_dir: str | None,
               random_size: int, seed: int) -> ImageArray:
    """A split of a registered dataset, or `random`: uniform uint8 noise (3 channels, 10 labels)."""
    if dataset == "random":
        rng = np.random.default_rng(seed + (split == "test"))
        res = resolution or 32
        images = rng.integers(0, 256, (random_size, 3, res, res), dtype=np.uint8)
        labels = rng.integers(0, 10, random_size).astype(np.int64)
        return ImageArray(images, labels, tuple(str(i) for i in range(10)))
    params = {} if resolution is None else {"resolution": resolution}
    return load_dataset(dataset, split, params, data_dir_for(dataset, data_dir))


def take(images: np.ndarray, n: int) -> np.ndarray:
    """The first `n` images, cycling through the array if it holds fewer."""
    if len(images) >= n:
        return images[:n]
    return images[np.arange(n) % len(images)]


def image_encoders(requested: Sequence[str] | None,
                   allow_text: bool = False) -> list[tuple[str, type[EncoderMethod]]]:
    """Registered (or requested) encoder classes that train on images alone (or, with
    `allow_text`, also image–caption ones); others are reported as skipped."""
    out = []
    for name in requested or ENCODERS.names():
        try:
            cls = ENCODERS.get(name)
        except PluginError as exc:
            if requested:
                raise SystemExit(f"encoder {name!r}: {exc}") from exc
            print(f"skipped encoder {name!r}: {exc}")
            continue
        modalities = tuple(getattr(cls, "modalities", IMAGE_ONLY))
        if modalities != IMAGE_ONLY and not allow_text:
            print(f"skipped encoder {name!r}: it trains on {'+'.join(modalities)}, "
                  "these benchmarks feed images only")
            continue
        out.append((name, cls))
    return out


def backbone_names(requested: Sequence[str] | None) -> list[str]:
    chosen = list(requested or BACKBONES)
    unknown = [b for b in chosen if b not in BACKBONES]
    if unknown:
        raise SystemExit(f"unknown backbone(s) {unknown}; registered: {sorted(BACKBONES)}")
    return chosen


def build_model(cls: type[EncoderMethod], backbone: str, width: int | None, in_channels: int,
                seed: int) -> EncoderMethod | str:
    """The encoder at a seeded initialisation, or a one-line reason why this combination
    cannot be built (a backbone the encoder's parameters reject, a width it cannot take)."""
    params: dict[str, Any] = {"backbone": backbone}
    if width is not None:
        params["width"] = width
    try:
        validated = cls.Params.model_validate(params)
        torch.manual_seed(seed)
        return cls(validated, in_channels=in_channels)
    except (ValidationError, ValueError) as exc:
        return " ".join(str(exc).split())[:200]


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    env = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "device": str(device),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write `payload` whole or not at all (a temporary file renamed into place), so a script
    killed while writing leaves the previous version, never half a file."""
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, target)
        print(f"wrote {path}")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(120, 14 * len(columns))).print(table)


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
