"""Smoke tests of the benchmark scripts (perf/): tiny settings, rows well formed.

Speeds are not asserted: these only check that each script runs end to end and writes rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perf import quality, throughput

# One thread, as tests/conftest.py sets for every test (the scripts call tune_process).
TINY = ["--encoders", "simclr", "--backbones", "small-cnn", "--width", "4", "--dataset", "random",
        "--resolution", "8", "--device", "cpu", "--threads", "1"]


def _rows(path: Path) -> list[dict]:
    payload = json.loads(path.read_text())
    assert payload["rows"], payload
    return payload["rows"]


def test_throughput_rows(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    argv = [*TINY, "--batch-size", "8", "--steps", "2", "--warmup", "1", "--reference", "v1", "v2",
            "--repeats", "2", "--out", str(out)]
    assert throughput.main(argv) == 0
    rows = _rows(out)
    assert [r["reference"] for r in rows] == ["v1", "v2"]
    for r in rows:
        assert "error" not in r, r
        assert (r["encoder"], r["backbone"], r["device"]) == ("simclr", "small-cnn", "cpu")
        assert r["batch_size"] == 8
        for key in ("pebench_img_s", "reference_img_s", "model_only_img_s", "ratio"):
            assert r[key] > 0 and np.isfinite(r[key]), (key, r[key])
        assert r["pebench_peak_mib"] is None  # GPU memory is reported on CUDA only
        assert len(r["rounds"]) == 2 and r["ratio_min"] <= r["ratio"] <= r["ratio_max"], r
        per_round = sorted(x["pebench"] / x[r["reference"]] for x in r["rounds"])
        assert r["ratio"] == pytest.approx(sum(per_round) / 2)  # the median of two rounds


def test_quality_rows(tmp_path: Path) -> None:
    out = tmp_path / "quality.json"
    argv = [*TINY, "--pretrain-size", "32", "--train-size", "40", "--test-size", "20", "--epochs", "1",
            "--batch-size", "16", "--k", "5", "--out", str(out)]
    assert quality.main(argv) == 0
    rows = _rows(out)
    assert [r["init"] for r in rows] == ["random", "trained"]
    for r in rows:
        assert 0.0 <= r["knn_acc"] <= 1.0 and 0.0 <= r["linear_acc"] <= 1.0, r
    assert rows[1]["images_per_second"] > 0 and np.isfinite(rows[1]["final_loss"])


def test_knn_accuracy_separable_and_tie_break() -> None:
    train_x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    train_y = np.array([0, 0, 1, 1])
    test_x, test_y = np.array([[1.0, 0.05], [0.05, 1.0]]), np.array([0, 1])
    assert quality.knn_accuracy(train_x, train_y, test_x, test_y, k=2, n_classes=2) == 1.0
    # k = 4: two votes each; the summed similarity decides
    assert quality.knn_accuracy(train_x, train_y, test_x, test_y, k=4, n_classes=2) == 1.0


def test_skips_encoders_that_need_text(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from perf import _common

    class TextEncoder:
        modalities = ("image", "text")

    class Registry:
        def names(self) -> list[str]:
            return ["img", "txt"]

        def get(self, name: str) -> type:
            return {"img": quality.EncoderMethod, "txt": TextEncoder}[name]

    monkeypatch.setattr(_common, "ENCODERS", Registry())
    chosen = _common.image_encoders(None)
    assert [name for name, _ in chosen] == ["img"]
    assert "skipped encoder 'txt'" in capsys.readouterr().out


def test_device_check_rehearsal_on_cpu(tmp_path: Path) -> None:
    """ops/gpu_check.sh end to end at toy scale on CPU, as its header describes:
    the throughput table, the suite in-process (cut short, then resumed), rows and a
    leaderboard in $OUT."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    out, store = tmp_path / "out", tmp_path / "store"
    env = {**os.environ, "PY": sys.executable, "SITE": "", "DEVICE": "cpu", "WORKERS": "0",
           "OUT": str(out), "STORE": str(store), "SUITE": "suites/smoke.yaml",
           "TP_ARGS": " ".join(TINY[:10] + ["--steps", "1", "--batch-size", "8", "--warmup", "0"]),
           "OMP_NUM_THREADS": "1"}
    script = ["bash", "ops/gpu_check.sh"]
    first = subprocess.run(script, cwd=root, env={**env, "SUITE_SECONDS": "120"},
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert _rows(out / "throughput.json")[0]["device"] == "cpu"
    assert "suite exit status 0" in (out / "suite.txt").read_text()
    assert "| none |" in (out / "leaderboard.md").read_text()
    assert list((out / "store").glob("suite=smoke/run=*/*.parquet"))
    again = subprocess.run(script, cwd=root, env={**env, "RESUME": "1"}, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 ok, 0 failed, 6 already done" in (out / "suite.txt").read_text()
