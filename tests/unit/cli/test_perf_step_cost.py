"""perf/step_cost.py --quick end to end: the printed tables have their rows, the FLOP count is
positive and the same with and without bf16 autocast, and the shares add up.

Speeds are not asserted (a shared CPU): only that every number is there and consistent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from perf import step_cost

CONFIGS = ["fp32", "fp32-nchw", "bf16"]  # --quick skips torch.compile


def test_step_cost_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "step_cost.json"
    assert step_cost.main(["--quick", "--dataset", "random", "--widths", "8", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for title in ("GEMM peak", "training step", "where a step's time goes", "inside the model"):
        assert title in printed, title
    cells = [[c.strip() for c in line.split("│")] for line in printed.splitlines() if "│" in line]
    assert [c[1] for c in cells[:2]] == ["fp32", "bf16"]  # the GEMM table's rows
    for name in CONFIGS:  # one row per configuration in each of the three per-config tables
        assert [c[1:3] for c in cells].count(["8", name]) == 3, name

    payload = json.loads(out.read_text())
    for dtype in ("fp32", "bf16"):
        peak = payload["gemm_peak_gflops"][dtype]
        assert 0 < peak["min"] <= peak["median"] <= peak["max"], (dtype, peak)
    rows = {r["config"]: r for r in payload["rows"]}
    assert sorted(rows) == sorted(CONFIGS)
    flops = rows["fp32"]["flops_per_step"]
    assert flops > 0
    assert rows["bf16"]["flops_per_step"] == flops == rows["fp32-nchw"]["flops_per_step"]
    assert rows["fp32"]["ratio_vs_fp32"]["median"] == 1.0
    for r in rows.values():
        assert r["img_s"]["median"] > 0 and r["gflops_step"] > 0 and r["pct_bf16_peak"] > 0, r
        assert math.isclose(sum(r["phase_share"].values()), 1.0)
        assert math.isclose(sum(r["profile_share"].values()), 1.0)
        assert r["profile_ms"]["conv"] > 0 and r["profile_ms"]["batch_norm"] > 0, r["profile_ms"]


@pytest.mark.parametrize(("op", "kind"), [
    ("aten::mkldnn_convolution", "conv"), ("aten::convolution_backward", "conv"),
    ("aten::native_batch_norm_backward", "batch_norm"), ("aten::threshold_backward", "relu"),
    ("aten::relu_", "relu"), ("aten::clamp_min_", "relu"), ("aten::addmm", "matmul"),
    ("aten::_to_copy", "copy/cast"), ("aten::_log_softmax", "other"),
    ("autograd::engine::evaluate_function: ReluBackward0", "other"), ("Optimizer.step#Adam.step", None),
])
def test_category(op: str, kind: str | None) -> None:
    assert step_cost.category(op) == kind


def test_flops_are_one_batch_of_the_model() -> None:
    """The harness counts one step of `batch_size` images (two views each), however many
    images are resident: the same count as the model's forward+backward on such a batch."""
    args = step_cost.parse_args(["--quick", "--widths", "8"])
    images = np.zeros((4 * args.batch_size, 3, 32, 32), dtype=np.uint8)  # four batches resident
    harness = step_cost.build_all(args, images)[8, "fp32"]
    views = torch.zeros(args.batch_size, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        harness.model.training_loss(views, views).backward()
    assert step_cost.count_flops(harness) == counter.get_total_flops() > 0
    assert len(harness.plan(2)) == 2 and all(len(s.clean) == args.batch_size for s in harness.plan(2))
