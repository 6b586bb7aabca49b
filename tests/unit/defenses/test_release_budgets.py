"""The optimising defenses' defaults are the ones their docstrings declare beside the release's
numbers: `decree` reads the release's 1,000 clean images (capped at the pool), `mudjacking`
keeps its smaller, declared budget. A default changed without its declaration fails here."""

from __future__ import annotations

import sys

import numpy as np
import torch

from pe_bench.defenses.base import RepairContext
from pe_bench.plugins.registry import DEFENSES


class Tiny(torch.nn.Module):
    feature_dim = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(),
                                       torch.nn.LazyLinear(4))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def test_decree_reads_the_release_s_1000_clean_images_capped_at_the_pool() -> None:
    decree = DEFENSES.get("decree")
    assert decree.from_dict({}).params.clean_images == 1000
    assert "sample(0.1)" in (sys.modules[decree.__module__].__doc__ or "")
    pool = np.random.default_rng(0).integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    ctx = RepairContext(0, pool, None)
    model = Tiny()
    model.features(torch.zeros(1, 3, 8, 8))  # materialise the lazy layer
    decree.from_dict({"steps": 2, "batch_size": 8}).score_encoder(model, ctx)
    assert ctx.clean_used == 40  # the whole (smaller) pool, not more


def test_mudjacking_keeps_its_declared_budget_beside_the_release_s() -> None:
    mudjacking = DEFENSES.get("mudjacking")
    p = mudjacking.from_dict({}).params
    assert (p.steps, p.lr, p.batch_size, p.clean_images) == (100, 1e-4, 32, 128)
    doc = sys.modules[mudjacking.__module__].__doc__ or ""
    for declared in ("ad8735a", "7,800-39,000", "lr 1e-3", "batches of 256", "`steps` 100"):
        assert declared in doc
