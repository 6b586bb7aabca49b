"""Contract tests over every registered plugin of every kind (installed third-party ones
included), and proof that each contract check catches what it promises to."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet, TargetPair
from pe_bench.datasets.base import Dataset, ImageArray
from pe_bench.encoders.simclr import SimCLR
from pe_bench.errors import DataError
from pe_bench.plugins.registry import ATTACKS, DATASETS, DEFENSES, ENCODERS, REGISTRIES
from pe_bench.testing import (
    check_attack,
    check_dataset,
    check_defense,
    check_encoder,
    check_registered,
    tiny_context,
)


def names(registry: Any) -> list[Any]:
    return [pytest.param(n, id=n) for n in registry.names()]


@pytest.mark.parametrize(("kind", "name"), [pytest.param(k, n, id=f"{k}:{n}")
                                            for k, r in REGISTRIES.items() for n in r.names()])
def test_every_plugin_is_registered_as_it_declares(kind: str, name: str) -> None:
    check_registered(kind, name)


@pytest.mark.parametrize("name", names(ATTACKS))
def test_every_attack_meets_the_contract(name: str) -> None:
    check_attack(ATTACKS.get(name))


@pytest.mark.parametrize("name", names(DEFENSES))
def test_every_defense_meets_the_contract(name: str) -> None:
    check_defense(DEFENSES.get(name))


@pytest.mark.parametrize("name", names(ENCODERS))
def test_every_encoder_meets_the_contract(name: str) -> None:
    check_encoder(ENCODERS.get(name))


@pytest.mark.parametrize("name", names(DATASETS))
def test_every_dataset_meets_the_contract(name: str, isolated: Path) -> None:
    """On the data in $PE_BENCH_DATA (one split is enough for the contract); datasets whose
    files are not there, or that need params naming their files, are checked on fixtures in
    tests/unit/datasets/test_data.py and tests/unit/datasets/test_datasets_extra.py."""
    cls = DATASETS.get(name)
    try:
        cls.Params.model_validate({})
    except ValidationError:
        pytest.skip(f"{name} needs params naming its files; checked on fixtures")
    shared = Path(__file__).resolve().parents[4] / "shared" / "data"
    data_dir = Path(os.environ.get("PE_BENCH_DATA") or shared)
    missing = []
    for split in ("test", "train"):
        try:
            check_dataset(cls, data_dir, splits=(split,))
            return
        except DataError as exc:
            missing.append(str(exc))
    pytest.skip(f"no data for {name}: {missing[-1]}")


# -- each check catches what it promises -------------------------------------------------------
class Copies(Attack):
    """A valid targeted attack: 4 copies of the first test input of each task, seeded."""

    def craft(self, ctx: AttackContext) -> PoisonSet:
        task = ctx.tasks[0]
        label = int(task.test.labels[0])
        pair = TargetPair(task.name, 0, label, (label + 1) % len(task.test.classes))
        return PoisonSet((np.repeat(task.test.images[:1], 4, axis=0),), (pair,))


def test_a_valid_attack_passes() -> None:
    assert check_attack(Copies)["poisons"] == 4


@pytest.mark.parametrize(("craft", "rule"), [
    (lambda self, ctx: PoisonSet((np.random.default_rng().integers(0, 255, (3, 3, 8, 8), dtype=np.uint8),)),
     "deterministic"),
    (lambda self, ctx: (ctx.pretrain.__setitem__(0, 0), PoisonSet())[1], "must not modify"),
    (lambda self, ctx: PoisonSet((np.zeros((2, 3, 8, 8), np.float32),)), "uint8"),
    (lambda self, ctx: PoisonSet((np.zeros((2, 1, 8, 8), np.uint8),)), "channels"),
    (lambda self, ctx: PoisonSet(targets=(TargetPair("toy", 0, 3, 1),)), "true_class"),
    (lambda self, ctx: PoisonSet(targets=(TargetPair("other", 0, 0, 1),)), "naming a task"),
    (lambda self, ctx: [], "PoisonSet"),
], ids=["random", "in-place", "dtype", "channels", "true-class", "task", "type"])
def test_check_attack_names_the_broken_rule(craft: Any, rule: str) -> None:
    broken = type("Broken", (Attack,), {"craft": craft})
    with pytest.raises(AssertionError, match=rule):
        check_attack(broken)


def test_check_attack_holds_the_budget_and_the_declared_modalities() -> None:
    from pe_bench.attacks.targets import TargetedParams

    greedy = type("Greedy", (Copies,), {"Params": TargetedParams, "craft": lambda self, ctx: PoisonSet(
        (np.repeat(ctx.tasks[0].test.images[:1], 40, axis=0),), Copies().craft(ctx).targets)})
    with pytest.raises(AssertionError, match="budget"):
        check_attack(greedy)
    silent = type("Silent", (Copies,), {"modalities": ()})
    with pytest.raises(AssertionError, match="modalities"):
        check_attack(silent)
    assert tiny_context().pretrain.flags.writeable is False


def test_check_encoder_needs_all_state_in_the_state_dict() -> None:
    class Forgetful(SimCLR):
        """Keeps a seeded random projection outside parameters and buffers."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.mix = torch.randn(self.feature_dim, self.feature_dim)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.backbone(x) @ self.mix.to(x.device)

    with pytest.raises(AssertionError, match="state_dict"):
        check_encoder(Forgetful)


def test_check_encoder_rejects_bad_metadata() -> None:
    textless = type("Textless", (SimCLR,), {"modalities": ("text",)})
    with pytest.raises(AssertionError, match="include 'image'"):
        check_encoder(textless)
    odd = type("Odd", (SimCLR,), {"optimizer_defaults": {"optimizer": "adam", "momentum": 0.9}})
    with pytest.raises(AssertionError, match="optimizer_defaults"):
        check_encoder(odd)


class Squares(Dataset):
    """Flat grey squares, two classes; `size` overrides the requested resolution (broken)."""

    size: int | None = None

    def load(self, split: str, data_dir: Path) -> ImageArray:
        p = self.params
        side = self.size or p.resolution
        labels = np.arange(10, dtype=np.int64) % 2
        images = np.repeat((labels * 200).astype(np.uint8)[:, None, None, None], p.channels, 1)
        return ImageArray(np.ascontiguousarray(np.broadcast_to(images, (10, p.channels, side, side))),
                          labels, ("dark", "light"))


def test_check_dataset_passes_a_valid_one_and_catches_a_wrong_resolution(tmp_path: Path) -> None:
    assert check_dataset(Squares, tmp_path)["sizes"] == {"train": 10, "test": 10}
    with pytest.raises(AssertionError, match="as the params ask"):
        check_dataset(type("Fixed", (Squares,), {"size": 32}), tmp_path)
