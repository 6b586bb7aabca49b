"""Precision: evaluation features are float32 on every device and under any caller's autocast
(probes and detectors read them, so they must not depend on where the encoder runs); the training
step runs in bf16 only where the recipe asks for it and the hardware runs it natively."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pe_bench.config.spec import TrainSpec
from pe_bench.encoders.simclr import SimCLR
from pe_bench.worker.train import encode, pretrain, training_precision
from tests.unit.worker.test_pipeline import spec


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


def test_the_training_precision_follows_the_recipe_and_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 only where `amp` asks for it and the CPU runs bf16 natively; `amp: false` forces fp32."""
    assert training_precision(TrainSpec(amp=False, device="cpu")) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert training_precision(TrainSpec(device="cpu")) == "fp32"  # emulated bf16 is slower
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert training_precision(TrainSpec(device="cpu")) == "bf16"
    assert training_precision(TrainSpec(amp=False, device="cpu")) == "fp32"


def test_the_step_runs_in_the_precision_it_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same recipe trained in bf16 and in fp32 gives different weights (so the precision
    belongs in the encoder's key), and each run reports the precision it used."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    images = _images(32)
    results, weights = [], []
    for amp in (True, False):
        model = _model()
        results.append(pretrain(model, images, (), TrainSpec(epochs=1, batch_size=16, amp=amp, device="cpu"), 0))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert [r.precision for r in results] == ["bf16", "fp32"]
    assert not torch.equal(weights[0], weights[1])


def test_the_encoder_key_names_the_precision() -> None:
    trial = spec("simclr", "none")
    assert trial.pretrain_key(None, precision="bf16") != trial.pretrain_key(None, precision="fp32")
