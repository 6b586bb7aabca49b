"""The contrastive losses stay in float32 under the caller's bf16 autocast (issue #25, point 2).

The training step runs its forward under `torch.autocast(device, torch.bfloat16)` on CUDA; a
loss that only called `.float()` on its inputs would still run the logits' matmul in bfloat16
there. CPU autocast casts the same ops, so these tests reproduce the CUDA path on CPU: each
loss, and one real training step of each encoder method, under
`torch.autocast("cpu", torch.bfloat16)` against the float32 computation outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from pe_bench.config.spec import TrainSpec
from pe_bench.encoders.base import EncoderMethod
from pe_bench.encoders.caption_pool import nearest
from pe_bench.encoders.clip import CLIP
from pe_bench.encoders.losses import clip_loss, info_nce, nt_xent
from pe_bench.encoders.moco import MoCo
from pe_bench.encoders.simclr import SimCLR
from pe_bench.worker.train import _optimise, make_optimizer


def bf16_autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _inputs(seed: int, *shapes: tuple[int, int]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, requires_grad=True) for s in shapes]


LOSSES: dict[str, tuple[Callable[..., torch.Tensor], list[tuple[int, int]], tuple[Any, ...]]] = {
    "nt_xent": (nt_xent, [(32, 64), (32, 64)], (0.5,)),
    "info_nce": (info_nce, [(32, 64), (32, 64), (256, 64)], (0.2,)),  # the 256-key queue
    "clip_loss": (clip_loss, [(32, 64), (32, 64)], (1 / 0.07,)),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_gradients_under_bf16_autocast_equal_float32(name: str) -> None:
    fn, shapes, extra = LOSSES[name]
    ref_in, amp_in = _inputs(1, *shapes), _inputs(1, *shapes)
    ref = fn(*ref_in, *extra)
    ref.backward()
    with bf16_autocast():
        got = fn(*amp_in, *extra)
    got.backward()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=0)
    for a, r in zip(amp_in, ref_in, strict=True):
        if r.grad is not None:  # InfoNCE's keys and queue take none
            torch.testing.assert_close(a.grad, r.grad, rtol=1e-5, atol=1e-8)


def test_logits_are_float32_under_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the fix changes: the logits cross_entropy sees (bfloat16 before it, for all three)."""
    import pe_bench.encoders.losses as losses

    seen: list[torch.dtype] = []
    real = losses.F.cross_entropy

    def recording(logits: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(logits.dtype)
        return real(logits, *args, **kwargs)

    monkeypatch.setattr(losses.F, "cross_entropy", recording)
    q, k, queue = _inputs(2, (8, 16), (8, 16), (64, 16))
    with bf16_autocast():
        info_nce(q, k, queue, 0.2)
        nt_xent(q, k, 0.5)
        clip_loss(q, k, 10.0)
    assert seen == [torch.float32] * 4


def test_caption_matching_is_float32_under_autocast() -> None:
    """RoCLIP's nearest caption: near-ties that a bf16 matmul would break differently."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(256, 32, generator=g)
    pool = torch.cat([base, base + 1e-2 * torch.randn(256, 32, generator=g)])  # near-twins
    queries = pool[256:]  # each nearest to its own row, by less than bf16 resolves
    with bf16_autocast():
        got = nearest(queries, pool)
    assert torch.equal(got, nearest(queries, pool))
    assert torch.equal(got, torch.arange(256, 512))


# one training step of each method: the loss the step computes under autocast, and the gradient
# it sends back into the projections, against the float32 loss of the same projections
METHODS: dict[str, tuple[Callable[[], EncoderMethod], str]] = {
    "simclr": (lambda: SimCLR.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8}), "nt_xent"),
    "moco": (lambda: MoCo.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8,
                                     "queue_size": 256}), "info_nce"),
    "clip": (lambda: CLIP.from_dict({"width": 4, "proj_dim": 16, "text_dim": 16, "text_depth": 1}),
             "clip_loss"),
}


class LossSpy:
    """Wraps an encoder module's loss: keeps each call's inputs (float32 copies), its output
    and the gradients that backward sends into the inputs that take one."""

    def __init__(self, real: Callable[..., torch.Tensor]) -> None:
        self.real = real
        self.calls: list[tuple[list[Any], torch.Tensor, dict[int, torch.Tensor]]] = []

    def __call__(self, *args: Any) -> torch.Tensor:
        copies = [a.detach().float().clone() if isinstance(a, torch.Tensor) else a for a in args]
        grads: dict[int, torch.Tensor] = {}
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor) and a.requires_grad and a.dtype != torch.float32:
                a.register_hook(lambda g, i=i: grads.__setitem__(i, g))
        out = self.real(*args)
        self.calls.append((copies, out, grads))
        return out


@pytest.mark.parametrize("method", METHODS)
def test_training_step_under_bf16_autocast_computes_the_loss_in_float32(
        method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`_optimise` with `amp` on CPU tensors: the backbone runs in bf16 (the projections come
    out bfloat16), the loss of those projections must equal its float32 value outside autocast,
    and the gradient reaching them must be the float32 one rounded to bfloat16."""
    make, loss_name = METHODS[method]
    torch.manual_seed(0)
    model = make()
    module = __import__(type(model).__module__, fromlist=[loss_name])
    spy = LossSpy(getattr(module, loss_name))
    monkeypatch.setattr(module, loss_name, spy)
    g = torch.Generator().manual_seed(0)
    views = (torch.randn(16, 3, 8, 8, generator=g), torch.randn(16, 3, 8, 8, generator=g))
    extra = {"text": torch.randint(1, 50, (16, 6), generator=g)} if method == "clip" else {}
    opt = make_optimizer(model, TrainSpec(device="cpu"))
    loss = _optimise(model, model.training_loss, opt, views, extra, amp=True)
    assert loss.dtype == torch.float32 and spy.calls
    refs = []
    for inputs, out, grads in spy.calls:
        assert grads and all(t.dtype == torch.bfloat16 for t in grads.values())  # bf16 forward
        leaves = [t.requires_grad_() if i in grads else t for i, t in enumerate(inputs)]
        ref = spy.real(*leaves)  # no autocast: float32 throughout
        torch.testing.assert_close(out.detach(), ref.detach(), rtol=1e-6, atol=0)
        refs.append(ref.detach())
        want = torch.autograd.grad(ref / len(spy.calls), [leaves[i] for i in grads])  # MoCo: mean of 2
        for got, expected in zip(grads.values(), want, strict=True):
            torch.testing.assert_close(got, expected.bfloat16(), rtol=1e-6, atol=0)
    assert float(loss) == pytest.approx(float(sum(refs)) / len(refs), rel=1e-6)
