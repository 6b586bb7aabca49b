"""NT-Xent against a slow, loop-based reference written from the SimCLR paper's definition."""

from __future__ import annotations

import math

import pytest
import torch

from pe_bench.encoders.losses import clip_loss, info_nce, nt_xent


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


def slow_info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    """Per query: -log exp(q.k+/t) / (exp(q.k+/t) + sum over queue exp(q.n/t)), unit vectors."""

    def unit(v: torch.Tensor) -> torch.Tensor:
        return v.double() / v.double().norm()

    total = 0.0
    for i in range(len(q)):
        qi = unit(q[i])
        pos = math.exp(float(qi @ unit(k[i])) / t)
        neg = sum(math.exp(float(qi @ unit(n)) / t) for n in queue)
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def slow_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: float) -> float:
    """Mean of image->text and text->image cross entropies over scaled cosine similarities."""
    n = len(img)
    a, b = img.double(), txt.double()
    sim = [[scale * float(a[i] @ b[j] / (a[i].norm() * b[j].norm())) for j in range(n)] for i in range(n)]
    i2t = sum(-math.log(math.exp(sim[i][i]) / sum(math.exp(sim[i][j]) for j in range(n))) for i in range(n))
    t2i = sum(-math.log(math.exp(sim[j][j]) / sum(math.exp(sim[i][j]) for i in range(n))) for j in range(n))
    return (i2t + t2i) / (2 * n)


@pytest.mark.parametrize("n,d,queue_len", [(2, 3, 1), (4, 8, 16), (8, 16, 64)])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_info_nce_matches_reference(n: int, d: int, queue_len: int, temperature: float) -> None:
    g = torch.Generator().manual_seed(n + d + queue_len)
    q, k = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    queue = torch.randn(queue_len, d, generator=g)
    got = float(info_nce(q, k, queue, temperature))
    assert got == pytest.approx(slow_info_nce(q, k, queue, temperature), rel=1e-4)
    got_bf16 = float(info_nce(q.bfloat16(), k.bfloat16(), queue.bfloat16(), temperature))
    assert got_bf16 == pytest.approx(slow_info_nce(q.bfloat16().float(), k.bfloat16().float(),
                                                   queue.bfloat16().float(), temperature), rel=1e-3)


def test_info_nce_gradients_reach_only_queries() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 8, generator=g, requires_grad=True)
    k = torch.randn(6, 8, generator=g, requires_grad=True)
    queue = torch.randn(32, 8, generator=g)
    opt = torch.optim.SGD([q], lr=0.5)
    first = float(info_nce(q, k, queue, 0.2).detach())
    for _ in range(50):
        opt.zero_grad()
        loss = info_nce(q, k, queue, 0.2)
        loss.backward()
        assert k.grad is None  # keys come from the momentum encoder: no gradient
        opt.step()
    assert float(info_nce(q, k, queue, 0.2).detach()) < first - 0.5


@pytest.mark.parametrize("n,d", [(2, 4), (5, 8), (12, 32)])
@pytest.mark.parametrize("scale", [1.0, 1 / 0.07, 50.0])
def test_clip_loss_matches_reference(n: int, d: int, scale: float) -> None:
    g = torch.Generator().manual_seed(n * d)
    img, txt = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert float(clip_loss(img, txt, scale)) == pytest.approx(slow_clip_loss(img, txt, scale), rel=1e-4)
    assert float(clip_loss(img, txt, torch.tensor(scale))) == pytest.approx(
        slow_clip_loss(img, txt, scale), rel=1e-4)
    got_bf16 = float(clip_loss(img.bfloat16(), txt.bfloat16(), scale))
    assert got_bf16 == pytest.approx(slow_clip_loss(img.bfloat16().float(), txt.bfloat16().float(), scale),
                                     rel=2e-3)


def test_clip_loss_gradient_descent_and_learnable_scale() -> None:
    g = torch.Generator().manual_seed(2)
    img = torch.randn(8, 16, generator=g, requires_grad=True)
    txt = torch.randn(8, 16, generator=g, requires_grad=True)
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)
    opt = torch.optim.SGD([img, txt, log_scale], lr=0.2)
    first = float(clip_loss(img, txt, log_scale.exp()).detach())
    for _ in range(60):
        opt.zero_grad()
        clip_loss(img, txt, log_scale.exp()).backward()
        opt.step()
    assert float(clip_loss(img, txt, log_scale.exp()).detach()) < first - 0.5
    assert log_scale.grad is not None
