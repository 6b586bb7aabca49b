"""Device-independent randomness: a trial's batches and augmentations do not depend on the
device that trains it (pe_bench.worker.plan)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pe_bench.worker.train as train
from pe_bench.config.spec import TrainSpec
from pe_bench.encoders.simclr import SimCLR
from pe_bench.worker.plan import Step, epoch_plan, generators, pack, poison_picks, unpack


class _Stop(Exception):
    """Ends a run once its first epoch's draws are recorded (a meta device cannot train)."""


def _images(n: int, h: int = 8, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8)


def _first_epoch_draws(monkeypatch, device: torch.device, recipe: TrainSpec
                       ) -> tuple[list[Step], list[torch.Generator]]:
    """(the first epoch's draws as they were about to be moved to `device`, every
    torch.Generator made) of a `pretrain` call whose device resolves to `device`."""
    made, recorded = [], []

    class Generator(torch.Generator):  # a real generator that is counted when made
        def __init__(self, *args, **kwargs) -> None:  # torch.Generator is built in __new__
            made.append(self)

    def moving(plan, target):
        assert target == device
        recorded.append(plan)
        raise _Stop

    monkeypatch.setattr(torch, "Generator", Generator)
    monkeypatch.setattr(train, "pick_device", lambda requested: device)
    monkeypatch.setattr(train, "plan_to_device", moving)
    torch.manual_seed(0)
    model = SimCLR.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8})
    poisons = (_images(5, 8, 16, seed=1), _images(3, seed=2))
    with pytest.raises(_Stop):
        train.pretrain(model, _images(48), poisons, recipe, seed=3)
    monkeypatch.undo()
    return recorded[0], made


@pytest.mark.parametrize("crop_mode", ["independent", "localized"])
def test_batches_and_augmentations_do_not_depend_on_the_device(monkeypatch, crop_mode: str) -> None:
    """A second device type cannot run here, so the CPU path is compared with the path `pretrain`
    takes for a non-CPU device, the meta device (shapes, no values: it cannot train, so the
    run stops where the first epoch's draws are handed to the device). The test fails if any
    generator the loop makes is not a CPU one (torch cannot even make a meta generator, and a
    CUDA one gives other streams), if a draw is made on the device or depends on it (the
    handed-over draws would be meta tensors or other numbers), or if the draws are no longer
    made before the step (nothing would be handed over)."""
    recipe = TrainSpec(epochs=1, batch_size=16, crop_mode=crop_mode)
    on_cpu, cpu_gens = _first_epoch_draws(monkeypatch, torch.device("cpu"), recipe)
    on_meta, meta_gens = _first_epoch_draws(monkeypatch, torch.device("meta"), recipe)
    assert len(meta_gens) == len(cpu_gens) >= 4
    assert {g.device.type for g in cpu_gens + meta_gens} == {"cpu"}
    assert len(on_cpu) == len(on_meta) == 3 and any(step.poisons for step in on_meta)
    for a, b in zip(on_cpu, on_meta, strict=True):
        assert [group for group, _, _ in a.poisons] == [group for group, _, _ in b.poisons]
        for x, y in zip(a.tensors(), b.tensors(), strict=True):
            assert y.device.type == "cpu" and torch.equal(x, y)


def test_an_epoch_plan_draws_what_the_step_by_step_loop_drew() -> None:
    """The epoch's draws, made at its start, are the numbers the loop used to draw step by step
    (each stream in the order the steps consume it): the CPU encoders do not move."""
    from pe_bench.worker.augment import draw_pair
    from pe_bench.worker.plan import epoch_batches

    recipe, steps = TrainSpec(), 3
    plan = epoch_plan((40, 3, 8, 8), [(5, 3, 8, 16)], steps, recipe, generators(7))
    gens = generators(7)
    picks = poison_picks([5], steps, gens["poison_order"])
    for step, idx in zip(plan, epoch_batches(40, steps, gens["order"]), strict=True):
        assert torch.equal(step.clean, idx)
        assert torch.equal(step.views, draw_pair(len(idx), 3, 8, 8, recipe, gens["aug"]))
    for step, chosen in zip(plan, picks, strict=True):
        for (group, rows, views), (want_group, want_rows) in zip(step.poisons, chosen, strict=True):
            assert group == want_group and torch.equal(rows, want_rows)
            assert torch.equal(views, draw_pair(len(rows), 3, 8, 16, recipe, gens["poison_aug"]))


def test_packing_for_the_one_copy_keeps_every_tensor() -> None:
    """What `ship` moves to a device in one copy comes back as the same tensors (dtypes,
    shapes, values, empty ones included)."""
    tensors = [torch.arange(5), torch.rand(3, 7), torch.zeros(0, 4), torch.tensor([True, False, True]),
               torch.arange(6, dtype=torch.int32).view(2, 3)]
    buffer, offsets = pack(tensors)
    back = unpack(buffer, offsets, tensors)
    assert all(o % 8 == 0 for o in offsets)
    for a, b in zip(tensors, back, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
