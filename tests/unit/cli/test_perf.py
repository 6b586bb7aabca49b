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


def test_throughput_every_image_encoder(tmp_path: Path) -> None:
    """Every registered image-only encoder (MoCo included: 2 steps leave its queue images
    beyond the batch) measures without an error row."""
    out = tmp_path / "throughput.json"
    argv = [*TINY[2:], "--batch-size", "8", "--steps", "2", "--warmup", "0", "--no-model-only",
            "--out", str(out)]
    assert throughput.main(argv) == 0
    rows = _rows(out)
    assert {r["encoder"] for r in rows} >= {"simclr", "moco"}
    assert all("error" not in r for r in rows), rows


def test_throughput_failed_configuration_recorded_and_fails(tmp_path: Path) -> None:
    """A configuration that raises (here MoCo in a one-batch epoch: no images left for its
    queue) becomes an error row, the others still run, and main() returns 1."""
    out = tmp_path / "throughput.json"
    argv = [*TINY[2:], "--encoders", "moco,simclr", "--batch-size", "8", "--steps", "1",
            "--warmup", "0", "--no-model-only", "--out", str(out)]
    assert throughput.main(argv) == 1
    payload = json.loads(out.read_text())
    by_encoder = {r["encoder"]: r for r in payload["rows"]}
    assert payload["complete"] and "no other images for the queue" in by_encoder["moco"]["error"]
    assert "error" not in by_encoder["simclr"] and by_encoder["simclr"]["pebench_img_s"] > 0


def test_throughput_json_written_after_each_configuration(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed during the second configuration (a time limit, a crash), the JSON keeps the first."""
    out = tmp_path / "throughput.json"
    measure_one = throughput.measure_one

    def killed_on_second(*args: object) -> list[dict]:
        if out.exists():
            raise KeyboardInterrupt
        return measure_one(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(throughput, "measure_one", killed_on_second)
    argv = [*TINY[2:], "--encoders", "simclr,moco", "--batch-size", "8", "--steps", "2",
            "--warmup", "0", "--no-model-only", "--out", str(out)]
    with pytest.raises(KeyboardInterrupt):
        throughput.main(argv)
    payload = json.loads(out.read_text())
    assert not payload["complete"] and [r["encoder"] for r in payload["rows"]] == ["simclr"]
    assert not list(tmp_path.glob(".*.tmp"))
