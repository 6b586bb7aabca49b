"""One trial: plain JSON in (spec, locations, run id), one row out. Every engine calls
`execute` (the Ray engine inside a Tune trial, the in-process engine directly); nothing here
imports Ray, and torch is imported only when a trial runs.

Plugins are resolved here, in the worker, by name; a suite's unpackaged plugin modules are
imported first. Any exception, and metrics that fail validation, become an error row with a
one-line message and the full traceback, so a failing cell never vanishes and the other cells go on.
"""

from __future__ import annotations

import ctypes
import json
import os
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pe_bench.store.metrics import TrialMetrics
    from pe_bench.config.spec import TrialSpec

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 1 << 30


def tune_process(cpus: float) -> None:
    """Thread counts to the trial's CPU share, and keep glibc from handing freed buffers back
    to the OS after every step (that cost ~1/3 of a CPU training step here)."""
    import torch

    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
    except OSError:  # not glibc: nothing to tune
        pass
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def require_device(spec: TrialSpec) -> None:
    """Raise DeviceError when the recipe asks for `cuda` and this process sees no CUDA device:
    one line before any data is read, not torch's error mid-trial (`auto` would instead train
    on the CPU for days). A Ray trial that asks for no GPU sees none (pe_bench.engines.ray_tune)."""
    if spec.train.device != "cuda":
        return
    import torch

    from pe_bench.errors import DeviceError

    if not torch.cuda.is_available():
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES") == ""
        why = ("CUDA_VISIBLE_DEVICES is empty: the suite's resources ask for no GPU" if hidden
               else "no CUDA device found")
        raise DeviceError(f"train.device is 'cuda' but this machine has none ({why}); run it where a "
                          "GPU is, or set train.device to auto or cpu")


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, plus where it was raised (a validation error: the model,
    each offending field and why, and the line that validated, not pydantic's own)."""
    import pydantic

    from pe_bench.store.schema import describe

    frames: list[traceback.FrameSummary] = list(traceback.extract_tb(exc.__traceback__))
    text = str(exc)
    if isinstance(exc, pydantic.ValidationError):
        text = describe(exc)
        library = str(Path(pydantic.__file__).parent)
        frames = [f for f in frames if not f.filename.startswith(library)]
    message = " ".join(text.split()) or type(exc).__name__
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {message}{where}"


def _node_id(config: dict[str, Any]) -> str | None:
    """The cluster node this trial runs on, as its engine put it in the config (None when
    the engine has no nodes, e.g. in-process)."""
    node = config.get("node_id")
    return None if node is None else str(node)


def execute(config: dict[str, Any]) -> dict[str, Any]:
    """Run one trial from its plain config; returns its row (ok or error), validated here in
    the worker, as a plain JSON-able record in the store's columns. Metrics that fail
    validation (a NaN, a rate outside [0, 1]) make an error row naming the field."""
    from pe_bench.worker.pipeline import run_trial
    from pe_bench.plugins.registry import plugin_versions
    from pe_bench.config.spec import TrialSpec
    from pe_bench.config.suite import import_plugin_modules

    spec = TrialSpec.model_validate_json(config["spec"])
    started = datetime.now(UTC)
    tune_process(config.get("cpus", 1))
    versions: str | None = None
    try:
        require_device(spec)
        import_plugin_modules(spec.plugins)
        versions = json.dumps(plugin_versions(spec.plugins_used()), sort_keys=True)
        # the cache location stays a string: Path() would fold a URI's "//"
        metrics = run_trial(spec, Path(config["data_dir"]), config["cache_dir"])
        return _row(config, spec, started, metrics, node_id=_node_id(config), plugin_versions=versions)
    except Exception as exc:  # recorded as an error row; the suite goes on
        return _row(config, spec, started, None, error=one_line(exc), plugin_versions=versions,
                    traceback="".join(traceback.format_exception(exc)))


def _row(config: dict[str, Any], spec: TrialSpec, started: datetime, metrics: TrialMetrics | None,
         **extra: Any) -> dict[str, Any]:
    """The row, with the torch version this worker really runs (the driver's provenance comes
    from package metadata, which lacks the build label, e.g. +cu130)."""
    import torch

    from pe_bench.store.results import build_row

    prov = {**config["provenance"], "torch_version": torch.__version__}
    return build_row(spec, config["run_id"], prov, started, metrics, **extra)

