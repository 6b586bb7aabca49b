"""The training step makes no host-to-device copy and no host sync (pe_bench.worker.train).

No GPU here, so the step's calls are watched on the CPU instead, with a torch function mode
that sees every torch call the loop makes: a tensor built from host data (`torch.tensor` of
Python numbers: a host-to-device copy when the device is a GPU), a tensor moved to a device
(`.to(device)`, `.cuda()`, `.cpu()`, `.pin_memory()`), and anything that reads a value back to
the host (`.item()`, `float()`, `bool()`, `.tolist()`, a boolean-mask index or `nonzero`, whose
result size lives on the device, `linalg.inv`, which checks its input on the host). On a GPU
each is a copy or a sync; here the loop made 27 per step (simclr, two injected groups: four
tensors of constants and a linalg.inv per view, a mask per injected group; the ViT's position
embedding one more) before the epoch's draws were made up front and the constants cached.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import pe_bench.worker.train as train
from pe_bench.config.spec import TrainSpec
from pe_bench.plugins.registry import ENCODERS

HOST_DATA = {"tensor", "as_tensor", "asarray", "from_numpy"}
SYNCS = {"item", "__float__", "__int__", "__bool__", "__index__", "tolist", "numpy", "nonzero",
         "masked_select", "linalg_inv", "inverse"}
MOVES = {"to", "cuda", "cpu", "pin_memory"}


def _moves(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if name in ("cuda", "cpu", "pin_memory"):
        return True
    targets = [*args[1:], kwargs.get("device")]
    return any(isinstance(t, torch.device | str | torch.Tensor) for t in targets)


def _masked(name: str, args: tuple[Any, ...]) -> bool:
    if name not in ("__getitem__", "__setitem__") or len(args) < 2:
        return False
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)


class _Watch(TorchFunctionMode):
    """Records the flagged calls made while `active`."""

    def __init__(self) -> None:
        super().__init__()
        self.active, self.flagged = False, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.active and (name in HOST_DATA or name in SYNCS or _masked(name, args)
                            or (name in MOVES and _moves(name, args, kwargs))):
            self.flagged.append(name)
        return func(*args, **kwargs)


def _flagged_in_steps(monkeypatch, encoder: dict[str, Any], recipe: TrainSpec) -> list[str]:
    """Flagged calls of a one-epoch `pretrain` from its first step on (the steps, then the
    epoch's one loss read); the epoch's draws and setting up are made before it."""
    watch, real = _Watch(), train._scheduled

    def scheduled(opt: torch.optim.Optimizer):
        set_lr = real(opt)

        def at_step(*args: int) -> None:
            watch.active = True  # the first step starts here
            set_lr(*args)

        return at_step

    monkeypatch.setattr(train, "_scheduled", scheduled)
    torch.manual_seed(0)
    model = ENCODERS.get(encoder.pop("name")).from_dict(encoder)
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (64, 3, 8, 8), dtype=np.uint8)
    poisons = (rng.integers(0, 256, (6, 3, 8, 16), dtype=np.uint8), clean[:3].copy())
    texts = rng.integers(1, 50, (64, 8)) if "text" in model.modalities else None
    poison_texts = tuple(rng.integers(1, 50, (len(p), 8)) for p in poisons) if texts is not None else ()
    with watch:
        train.pretrain(model, clean, poisons, recipe, seed=0, texts=texts, poison_texts=poison_texts)
    return watch.flagged


SMALL = {"width": 4, "proj_hidden_dim": 16, "proj_dim": 8}
ENCODER_CASES = {
    "simclr": {"name": "simclr", **SMALL},
    "simclr-vit": {"name": "simclr", **SMALL, "backbone": "vit-tiny", "width": 8},
    "moco": {"name": "moco", **SMALL, "queue_size": 16},
    "clip": {"name": "clip", **SMALL, "text_dim": 16, "text_depth": 1},
}


@pytest.mark.parametrize("case", sorted(ENCODER_CASES))
@pytest.mark.parametrize("crop_mode", ["independent", "localized"])
def test_no_copy_or_sync_per_training_step(monkeypatch, case: str, crop_mode: str) -> None:
    """An epoch of 4 steps makes no flagged call that an epoch of 2 steps does not: nothing is
    made per step (what remains is made once: the epoch's loss read, a cached constant)."""
    recipe = TrainSpec(epochs=1, device="cpu", optimizer="sgd", crop_mode=crop_mode)
    two = _flagged_in_steps(monkeypatch, dict(ENCODER_CASES[case]), recipe.replace(batch_size=32))
    four = _flagged_in_steps(monkeypatch, dict(ENCODER_CASES[case]), recipe.replace(batch_size=16))
    per_step = Counter(four) - Counter(two)
    assert not per_step, f"per-step host copies or syncs: {dict(per_step)} (2 steps: {two}, 4 steps: {four})"
    assert len(two) <= 2, two
