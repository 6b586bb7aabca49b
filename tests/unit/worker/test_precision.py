"""Evaluation features are float32 on every device and under any caller's autocast (issue #25,
point 2): probes and detectors read them, so they must not depend on where the encoder runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pe_bench.encoders.simclr import SimCLR
from pe_bench.worker.train import encode


def _model() -> SimCLR:
    torch.manual_seed(0)
    return SimCLR.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8})


def _images(n: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)


def test_encode_ignores_a_callers_bf16_autocast() -> None:
    model, images = _model(), _images()
    plain = encode(model, images, batch_size=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = encode(model, images, batch_size=10)
        assert model.features(torch.zeros(1, 3, 8, 8)).dtype == torch.bfloat16  # autocast is on
    assert inside.dtype == np.float32 and np.array_equal(inside, plain)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_encode_on_cuda_gives_the_cpu_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """With TF32 off, CUDA's float32 features match the CPU's to float32 rounding; the bf16
    autocast encode used to run on CUDA is ~1e-3 off."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    model, images = _model(), _images()
    cpu = encode(model, images)
    gpu = encode(model.cuda(), images)
    assert gpu.dtype == np.float32
    assert np.linalg.norm(gpu - cpu) <= 1e-4 * np.linalg.norm(cpu)
