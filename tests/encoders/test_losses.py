"""NT-Xent against a slow, loop-based reference written from the SimCLR paper's definition."""

from __future__ import annotations

import math

import pytest
import torch

from pe_bench.encoders.losses import nt_xent


def slow_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """l(i, j) = -log exp(sim(i,j)/t) / sum_{k != i} exp(sim(i,k)/t), averaged over all 2N anchors."""
    views = [v.double() for v in torch.cat([z1, z2])]
    n2 = len(views)
    half = n2 // 2

    def sim(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(a @ b / (a.norm() * b.norm()))

    total = 0.0
    for i in range(n2):
        j = i + half if i < half else i - half
        denom = sum(math.exp(sim(views[i], views[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim(views[i], views[j]) / t) / denom)
    return total / n2


@pytest.mark.parametrize("n,d", [(2, 3), (5, 8), (16, 32)])
@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
def test_matches_reference_float32(n: int, d: int, temperature: float) -> None:
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(nt_xent(z1, z2, temperature)) == pytest.approx(slow_nt_xent(z1, z2, temperature), rel=1e-4)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_matches_reference_bfloat16(temperature: float) -> None:
    g = torch.Generator().manual_seed(7)
    z1, z2 = torch.randn(8, 16, generator=g).bfloat16(), torch.randn(8, 16, generator=g).bfloat16()
    got = nt_xent(z1, z2, temperature)
    assert got.dtype == torch.float32  # computed in float32 whatever the input
    assert float(got) == pytest.approx(slow_nt_xent(z1.float(), z2.float(), temperature), rel=1e-3)


def test_symmetric_and_scale_invariant() -> None:
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert float(nt_xent(z1, z2, 0.5)) == pytest.approx(float(nt_xent(z2, z1, 0.5)), rel=1e-6)
    assert float(nt_xent(3 * z1, z2, 0.5)) == pytest.approx(float(nt_xent(z1, z2, 0.5)), rel=1e-5)


def test_perfect_alignment_beats_random() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    assert float(nt_xent(z, z, 0.1)) < float(nt_xent(z, torch.randn(8, 16, generator=g), 0.1))


def test_gradient_descent_reduces_loss() -> None:
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(10, 8, generator=g, requires_grad=True)
    z2 = torch.randn(10, 8, generator=g, requires_grad=True)
    opt = torch.optim.SGD([z1, z2], lr=0.5)
    first = float(nt_xent(z1, z2, 0.5).detach())
    for _ in range(50):
        opt.zero_grad()
        nt_xent(z1, z2, 0.5).backward()
        opt.step()
    assert float(nt_xent(z1, z2, 0.5).detach()) < first - 0.5


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        nt_xent(torch.zeros(3, 4), torch.zeros(2, 4), 0.5)
