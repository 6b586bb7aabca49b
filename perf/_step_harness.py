"""The one-batch step harness perf/step_cost.py measures: pe-bench's own pre-training step
pieces in `pretrain`'s order with phase marks, the FLOP count, the profiler's op categories and
the GEMM peak (see perf/step_cost.py for what is printed)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pe_bench.config.spec import TrainSpec
from pe_bench.encoders.base import EncoderMethod
from pe_bench.worker.plan import Step, epoch_plan, generators
from pe_bench.worker.train import _optimise, _Resident, _scheduled, make_optimizer, to_device

GEMM_N = 2048
PHASES = ("draws", "views", "forward", "backward", "optimiser")
CATEGORIES = ("conv", "batch_norm", "relu", "matmul", "copy/cast", "other")
BASELINE = "fp32"
SCHEDULE_STEPS = 100_000  # the cosine schedule's length: the lr barely moves while timing


@dataclass(frozen=True)
class Config:
    name: str
    channels_last: bool
    amp: bool
    compiled: bool = False


CONFIGS = (Config("fp32", True, False), Config("fp32-nchw", False, False), Config("bf16", True, True),
           Config("fp32-compile", True, False, compiled=True))


# -- GEMM peaks ------------------------------------------------------------------------------------
def gemm_gflops(dtype: torch.dtype, n: int = GEMM_N, reps: int = 3) -> float:
    """The best of `reps` timed n x n x n matmuls in `dtype` (after one untimed), GFLOP/s."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# -- the step harness ------------------------------------------------------------------------------
@dataclass
class Marks:
    """perf_counter readings of the step in progress, set by the step-function wrapper and the
    optimiser hooks."""

    forward_end: float = 0.0
    optimiser_start: float = 0.0


@dataclass
class Harness:
    """One configuration's model, optimiser and resident data: `run(steps)` takes `steps`
    training steps of one epoch over the resident images, as `pretrain` takes them."""

    config: Config
    model: EncoderMethod
    recipe: TrainSpec
    data: _Resident
    opt: torch.optim.Optimizer
    step_fn: Callable[..., torch.Tensor]
    gens: dict[str, torch.Generator]
    set_lr: Callable[[int, int, int], None]
    marks: Marks = field(default_factory=Marks)
    taken: int = 0

    @property
    def fmt(self) -> torch.memory_format:
        return torch.channels_last if self.config.channels_last else torch.contiguous_format

    def plan(self, steps: int) -> list[Step]:
        """An epoch of `steps` full batches over the first batch_size x steps resident images."""
        n = self.recipe.batch_size * steps
        if n > len(self.data.clean):
            raise ValueError(f"{steps} steps need {n} images, {len(self.data.clean)} are resident")
        plan: list[Step] = epoch_plan((n, *self.data.clean.shape[1:]), [], steps, self.recipe, self.gens)
        return plan

    def run(self, steps: int) -> dict[str, float]:
        """Seconds per phase summed over `steps` steps, and `total` (wall time of them all)."""
        out = dict.fromkeys(PHASES, 0.0)
        start = time.perf_counter()
        plan = self.plan(steps)
        out["draws"] = time.perf_counter() - start
        for draws in plan:
            self.set_lr(self.taken, SCHEDULE_STEPS, 0)
            t0 = time.perf_counter()
            views, extra = self.data.step(draws, self.recipe, self.fmt)
            t1 = time.perf_counter()
            _optimise(self.model, self.step_fn, self.opt, views, extra, self.config.amp)
            t2 = time.perf_counter()
            out["views"] += t1 - t0
            out["forward"] += self.marks.forward_end - t1
            out["backward"] += self.marks.optimiser_start - self.marks.forward_end
            out["optimiser"] += t2 - self.marks.optimiser_start
            self.taken += 1
        out["total"] = time.perf_counter() - start
        return out


def build_harness(base: EncoderMethod, images: np.ndarray, recipe: TrainSpec, config: Config,
                  seed: int) -> Harness:
    """A copy of the initial model in the configuration's layout, its own optimiser and
    generators; the step function is `training_loss` (compiled if asked), wrapped to mark the
    end of the forward pass, and the optimiser's hooks mark the start of its step."""
    model = copy.deepcopy(base)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device="cpu", memory_format=fmt).train()
    loss_fn = torch.compile(model.training_loss) if config.compiled else model.training_loss
    marks = Marks()

    def step_fn(*views: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = loss_fn(*views, **extra)
        marks.forward_end = time.perf_counter()
        return loss

    opt = make_optimizer(model, recipe)

    def pre_hook(*_: Any) -> None:
        marks.optimiser_start = time.perf_counter()

    opt.register_step_pre_hook(pre_hook)
    data = _Resident(to_device(images, torch.device("cpu")), ())
    return Harness(config, model, recipe, data, opt, step_fn, generators(seed), _scheduled(opt), marks)


def count_flops(h: Harness) -> int:
    """FLOPs of one training step's model work (`_optimise`: forward, loss, backward, Adam),
    counted by FlopCounterMode (convolutions and matmuls; element-wise ops count 0)."""
    views, extra = h.data.step(h.plan(1)[0], h.recipe, h.fmt)
    with FlopCounterMode(display=False) as counter:
        _optimise(h.model, h.model.training_loss, h.opt, views, extra, h.config.amp)
    return int(counter.get_total_flops())


# -- profile of the model's forward + backward ----------------------------------------------------
def category(op: str) -> str | None:
    """The category of a profiled op's self time; None for labels that are not ops."""
    name = op.removeprefix("aten::")
    if not op.startswith("aten::"):  # labels: the optimiser's (excluded), autograd's (bookkeeping)
        return None if op.startswith("Optimizer.") else "other"
    if "convolution" in name:
        return "conv"
    if "batch_norm" in name:
        return "batch_norm"
    if name.startswith(("relu", "threshold_backward", "clamp_min")):
        return "relu"
    if name in ("mm", "addmm", "bmm", "matmul", "linear", "baddbmm"):
        return "matmul"
    if name in ("copy_", "to", "_to_copy", "contiguous", "clone", "empty_like", "empty_strided"):
        return "copy/cast"
    return "other"


def _in_optimiser_step(event: Any) -> bool:
    """Whether a profiled event ran inside the optimiser's step (its label is an ancestor)."""
    while event is not None:
        if event.name.startswith("Optimizer.step"):
            return True
        event = event.cpu_parent
    return False


def profile_model(h: Harness, steps: int) -> dict[str, float]:
    """Self CPU seconds per step and category of the model's forward and backward (the
    optimiser step's ops excluded), over `steps` steps on one fixed pair of views after one
    unrecorded step, and their sum `total`."""
    views, extra = h.data.step(h.plan(1)[0], h.recipe, h.fmt)
    schedule = torch.profiler.schedule(wait=0, warmup=1, active=steps, repeat=1)  # a first step not recorded
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], schedule=schedule) as prof:
        for _ in range(steps + 1):
            _optimise(h.model, h.model.training_loss, h.opt, views, extra, h.config.amp)
            prof.step()
    out = dict.fromkeys(CATEGORIES, 0.0)
    for event in prof.events():
        kind = category(event.name)
        if kind is None or _in_optimiser_step(event):
            continue
        out[kind] += event.self_cpu_time_total / 1e6 / steps
    out["total"] = sum(out.values())
    return out


# -- the measurement -------------------------------------------------------------------------------
