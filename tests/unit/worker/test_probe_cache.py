"""Classifier outputs cached by (encoder, task) (issue #25, point 5): a trial whose clean twin
another trial already evaluated reads its probes from the cache, and its row is identical to
one computed from scratch; a trial whose twin is being trained elsewhere trains its poisoned
encoder first, with the same numbers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from pe_bench.attacks.base import Task
from pe_bench.config.spec import EvalSpec, TrialSpec
from pe_bench.datasets.base import ImageArray
from pe_bench.store.metrics import TrialMetrics
from pe_bench.worker import cache as cache_module
from pe_bench.worker.cache import ArtifactCache
from pe_bench.worker.evaluate import ProbeOutput, linear_probe
from pe_bench.worker.pipeline import run_trial
from pe_bench.worker.probe_cache import cached, probe_identity
from pe_bench.worker.train import training_precision
from tests.unit.worker.test_pipeline import spec

TARGETED = {"poison_rate": 0.1, "targets_per_task": 2}
RUN_ONLY = {"timings", "cache_hits", "train_images_per_s"}


def _measured(value: object) -> object:
    """What ops/compare_stores.py compares: no timings, CPU seconds, throughput or cache hits."""
    if isinstance(value, dict):
        return {k: _measured(v) for k, v in value.items() if k not in RUN_ONLY and not k.endswith("_s")}
    if isinstance(value, list | tuple):
        return [_measured(v) for v in value]
    return value


def _numbers(metrics: TrialMetrics) -> object:
    return _measured(metrics.model_dump())


def _run(trial: TrialSpec, cache: Path, logs: list[str] | None = None) -> TrialMetrics:
    return run_trial(trial, Path("unused"), cache, (logs if logs is not None else []).append)


def _from_cache(logs: list[str]) -> int:
    line = next(m for m in logs if m.startswith("classifier outputs:"))
    return int(line.split()[2])


def test_a_twin_evaluated_by_another_trial_is_read_back_with_identical_numbers(tmp_path: Path) -> None:
    first, second = spec("simclr", "poisoned-encoder", **TARGETED), spec("simclr", "duplicate", **TARGETED)
    assert first.pretrain_key(None) == second.pretrain_key(None)  # one twin
    _run(first, tmp_path / "shared")
    logs: list[str] = []
    hit = _run(second, tmp_path / "shared", logs)
    assert _from_cache(logs) == 1  # the twin's probe on the one task; the poisoned encoder is new
    alone_logs: list[str] = []
    alone = _run(second, tmp_path / "fresh", alone_logs)
    assert _from_cache(alone_logs) == 0
    assert _numbers(hit) == _numbers(alone)


def _task(rng: np.random.Generator, n_test: int = 20) -> Task:
    classes = ("a", "b", "c")
    train = ImageArray(rng.integers(0, 256, (40, 1, 4, 4), dtype=np.uint8), np.arange(40) % 3, classes)
    test = ImageArray(rng.integers(0, 256, (n_test, 1, 4, 4), dtype=np.uint8), np.arange(n_test) % 3, classes)
    return Task("t", train, test, None)


def test_cached_outputs_are_the_computed_arrays_and_content_decides_the_key(tmp_path: Path) -> None:
    evaluation = EvalSpec(max_iter=50)
    calls: list[str] = []

    def classify(task: Task) -> ProbeOutput:
        calls.append(task.name)
        flat = lambda a: a.reshape(len(a), -1).astype(np.float64)  # noqa: E731
        return linear_probe(flat(task.train.images), task.train.labels, flat(task.test.images), 3, evaluation)

    tally: Counter[str] = Counter()
    memo = cached(classify, ArtifactCache(tmp_path), probe_identity("enc", evaluation, "cpu"), tally)
    task = _task(np.random.default_rng(0))
    fresh, again = memo(task), memo(Task("renamed", task.train, task.test, None))
    direct = classify(task)
    assert tally == {"computed": 1, "hit": 1} and calls == ["t", "t"]
    for out in (fresh, again):
        assert out.pred.dtype == direct.pred.dtype and out.proba.dtype == direct.proba.dtype
        assert np.array_equal(out.pred, direct.pred) and np.array_equal(out.proba, direct.proba)
    longer = _task(np.random.default_rng(0), n_test=21)  # e.g. a triggered input appended
    memo(longer)
    other = cached(classify, ArtifactCache(tmp_path), probe_identity("other", evaluation, "cpu"), tally)
    other(task)
    assert tally == {"computed": 3, "hit": 1}


def test_a_trial_trains_its_poisoned_encoder_while_its_twin_is_trained_elsewhere(tmp_path: Path) -> None:
    trial = spec("simclr", "poisoned-encoder", **TARGETED)
    lock = tmp_path / "busy" / "encoders" / f"{trial.pretrain_key(None, precision=training_precision(trial.train))}.lock"
    held = cache_module.acquire(lock)  # another trial is training the twin
    logs: list[str] = []
    out: list[TrialMetrics] = []
    runner = threading.Thread(target=lambda: out.append(_run(trial, tmp_path / "busy", logs)))
    runner.start()
    deadline = time.monotonic() + 120
    poisoned = tmp_path / "busy" / "encoders" / f"{trial.pretrain_key(trial.poison_id(), precision=training_precision(trial.train))}.json"
    while not poisoned.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert poisoned.exists() and runner.is_alive()  # the poisoned encoder is done, the twin awaited
    assert held is not None
    cache_module.release(held)  # that trial died: this one trains the twin itself
    runner.join(120)
    order = [m for m in logs if m.startswith("training")]
    assert len(order) == 2 and order[0].startswith("training poisoned encoder")
    assert order[1].startswith("training clean twin")
    assert _numbers(out[0]) == _numbers(_run(trial, tmp_path / "calm"))
