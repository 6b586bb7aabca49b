"""In-run checkpoints of a pre-training, so a preempted build resumes where it stopped.

Every `PE_BENCH_CHECKPOINT_EPOCHS` epochs (default 10; 0 turns it off) the training loop saves
what the rest of the run depends on: the model's state (its buffers too: MoCo's queue and key
encoder), the optimiser's state, every data generator's state and the global torch (and CUDA)
random state, and the epoch reached. The file sits next to the cache entry it will become
(`<cache>/encoders/<key>.ckpt`), written atomically like the entry itself, and is deleted once
the entry is stored. A build of the same key (the same trial retried, or a trial that was
waiting on the key's lock when its builder died) restores it and trains only the remaining
epochs; the final weights are bit-identical to an uninterrupted run's (tests/unit/worker).

The setting is not part of the recipe: it changes when state is saved, never what is trained,
so it stays out of the trial and cache keys. Left out [ours]: a recipe with `caption_matching`
(its caption pool lives outside the model's state) never checkpoints; nor do the short
fine-tunes and distillations of repairs.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from pe_bench.config.spec import TrainSpec
from pe_bench.errors import PeBenchError
from pe_bench.worker.cache import ArtifactCache

ENV = "PE_BENCH_CHECKPOINT_EPOCHS"
DEFAULT_EVERY = 10
SUFFIX = ".ckpt"


def every_from_env() -> int:
    """Epochs between checkpoints from `PE_BENCH_CHECKPOINT_EPOCHS` (0: never)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_EVERY
    if not raw.isdigit():
        raise PeBenchError(f"{ENV}={raw!r}: give a whole number of epochs (0 turns checkpoints off)")
    return int(raw)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


@dataclass(frozen=True)
class Checkpoint:
    """Where one build's checkpoint lives and how often it is written (`every` 0: never)."""

    cache: ArtifactCache | None = None
    kind: str = ""
    key: str = ""
    every: int = 0

    @classmethod
    def for_build(cls, cache: ArtifactCache, kind: str, key: str, recipe: TrainSpec) -> Checkpoint:
        every = 0 if recipe.caption_matching is not None else every_from_env()
        return cls(cache, kind, key, every)

    def after_epoch(self, done: int, epochs: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    gens: dict[str, torch.Generator]) -> None:
        """Save after `done` epochs of `epochs` when due (never after the last: the entry follows)."""
        if self.cache is None or not self.every or done % self.every or done >= epochs:
            return
        state = {"epoch": done, "model": _cpu(model.state_dict()), "optimizer": opt.state_dict(),
                 "generators": {name: g.get_state() for name, g in gens.items()},
                 "rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.cache.write_side(self.kind, self.key, SUFFIX, buffer.getvalue())

    def _read(self) -> dict[str, Any] | None:
        if self.cache is None or not self.every:
            return None
        data = self.cache.read_side(self.kind, self.key, SUFFIX)
        if data is None:
            return None
        try:
            state: dict[str, Any] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            return state
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            warnings.warn(f"pe-bench: ignoring unreadable checkpoint of {self.key}: {exc}", stacklevel=2)
            return None

    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer,
                gens: dict[str, torch.Generator]) -> int:
        """Load a saved checkpoint into the freshly set-up run; the epoch to start from (0 when
        there is none, or one that does not fit this model, which is then left untouched)."""
        state = self._read()
        if state is None or not _fits(state, model, gens):
            return 0
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        for name, gen in gens.items():
            gen.set_state(state["generators"][name])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return int(state["epoch"])

    def clear(self) -> None:
        if self.cache is not None:
            self.cache.delete_side(self.kind, self.key, SUFFIX)


def _fits(state: dict[str, Any], model: torch.nn.Module, gens: dict[str, torch.Generator]) -> bool:
    """Whether a checkpoint belongs to this run's model and streams (same keys and shapes)."""
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.get("model", {}).items()}
    if mine != theirs or set(state.get("generators", {})) != set(gens):
        warnings.warn("pe-bench: ignoring a checkpoint that does not fit this model", stacklevel=3)
        return False
    return True


NO_CHECKPOINT = Checkpoint()
