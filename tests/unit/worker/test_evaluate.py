"""ASR / accuracy bookkeeping from known predictions, and a probe on separable features."""

from __future__ import annotations

import numpy as np
import pytest

from pe_bench.attacks.base import TargetPair, Task
from pe_bench.plugins.types import ImageArray
from pe_bench.worker.evaluate import (
    ProbeOutput,
    accuracy,
    linear_probe,
    overall,
    target_stats,
    task_metrics,
)
from pe_bench.store.metrics import TaskMetrics
from pe_bench.config.spec import EvalSpec
from tests.helpers import toy_task


def _output(proba: list[list[float]]) -> ProbeOutput:
    p = np.array(proba, dtype=float)
    return ProbeOutput(p.argmax(1), p)


def test_target_stats_counts_hits_probabilities_and_ranks() -> None:
    out = _output([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    pairs = [TargetPair("t", 0, 1, 2), TargetPair("t", 1, 0, 2), TargetPair("t", 2, 0, 2)]
    s = target_stats(out, pairs)
    assert s["hit"].tolist() == [False, True, False]
    assert s["p"].tolist() == pytest.approx([0.1, 0.6, 0.3])
    assert s["rank"].tolist() == [3, 1, 2]


def test_accuracy_excludes_targets() -> None:
    out = _output([[1, 0], [1, 0], [0, 1], [0, 1]])
    labels = np.array([0, 1, 1, 1])
    assert accuracy(out, labels, []) == pytest.approx(0.75)
    assert accuracy(out, labels, [1]) == pytest.approx(1.0)


def test_task_and_overall_metrics_from_known_predictions() -> None:
    task = toy_task(n_classes=2, per_class=4)  # test split: labels [0, 0, 1, 1]
    clean = _output([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    poisoned = _output([[0.3, 0.7], [0.8, 0.2], [0.1, 0.9], [0.6, 0.4]])
    pairs = [TargetPair("toy", 0, 0, 1), TargetPair("toy", 3, 1, 0)]
    m = task_metrics(task, clean, poisoned, pairs)
    assert m.n_test == 2 and m.ca == 1.0 and m.pa == 1.0  # targets excluded
    assert (m.successes, m.asr, m.baseline_asr) == (2, 1.0, 0.0)
    assert m.p_target == pytest.approx((0.7 + 0.6) / 2)
    assert m.p_target_clean == pytest.approx((0.1 + 0.2) / 2)
    first_pair = m.model_dump()["targets"][:1]
    other = TaskMetrics.model_validate({**m.model_dump(), "task": "b", "ca": 0.5, "pa": 0.25,
                                        "n_targets": 1, "successes": 1, "targets": first_pair})
    total = overall([m, other])
    assert total.ca == pytest.approx(0.75) and total.pa == pytest.approx(0.625)
    assert total.n_targets == 3 and total.successes == 3 and total.asr == 1.0


def test_no_targets_gives_null_attack_metrics() -> None:
    task = toy_task(n_classes=2, per_class=4)
    out = _output([[0.9, 0.1]] * 2 + [[0.1, 0.9]] * 2)
    m = task_metrics(task, out, out, [])
    assert m.asr is None and m.p_target is None and m.ca == 1.0


def test_linear_probe_separates_separable_features() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 5)) + 5 * np.eye(3, 5)[y]
    out = linear_probe(x, y, x, 4, EvalSpec())
    assert (out.pred == y).mean() > 0.95
    assert out.proba.shape == (90, 4) and np.allclose(out.proba[:, 3], 0)  # unseen class: p = 0


def test_mlp_probe_separates_separable_features_deterministically() -> None:
    from pe_bench.worker.evaluate import mlp_probe

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 5)) + 5 * np.eye(3, 5)[y]
    spec = EvalSpec(probe="mlp", mlp_epochs=30)
    out = mlp_probe(x, y, x, 3, spec)
    assert (out.pred == y).mean() > 0.95 and np.allclose(out.proba.sum(1), 1)
    assert np.array_equal(mlp_probe(x, y, x, 3, spec).proba, out.proba)


def test_overall_rates_pool_every_pair_not_the_task_means() -> None:
    """Tasks with 4 and 1 target pairs: pooled ASR 2/5, not the mean of 1/4 and 1/1."""
    from tests.rows import task

    total = overall([task("a", [True, False, False, False], ca=0.9), task("b", [True], ca=0.5)])
    assert (total.n_targets, total.successes) == (5, 2)
    assert total.asr == pytest.approx(2 / 5)
    assert total.p_target == pytest.approx((0.6 + 3 * 0.2 + 0.6) / 5)
    assert total.ca == pytest.approx(0.7)  # accuracies: the unweighted mean over tasks


def _one_hot(pred: list[int], n_classes: int = 2) -> ProbeOutput:
    return ProbeOutput(np.array(pred), np.eye(n_classes)[pred])


def test_each_task_scores_and_excludes_its_own_target_pairs_only() -> None:
    from pe_bench.worker.evaluate import evaluate

    a, b = toy_task("a", n_classes=2, per_class=4), toy_task("b", n_classes=2, per_class=4)
    tasks = [a, Task("b", b.train, ImageArray(255 - b.test.images, b.test.labels, b.test.classes))]
    # test labels of both: [0, 0, 1, 1], different images; a's target is its image 0, b's its 3
    pairs = [TargetPair("a", 0, 0, 1), TargetPair("b", 3, 1, 0)]
    clean = {"a": [0, 0, 1, 1], "b": [0, 0, 1, 1]}
    # poisoned: each task's own target flipped to its target class; a also errs on its image 3
    # (b's target index), which must count against a's accuracy
    poisoned = {"a": [1, 0, 1, 0], "b": [0, 0, 1, 0]}
    total, per_task = evaluate(tasks, lambda t: _one_hot(clean[t.name]),
                               lambda t: _one_hot(poisoned[t.name]), pairs)
    a, b = per_task
    assert [t.index for t in a.targets] == [0] and [t.index for t in b.targets] == [3]
    assert (a.n_targets, a.successes, b.n_targets, b.successes) == (1, 1, 1, 1)
    assert a.n_test == b.n_test == 3
    assert a.pa == pytest.approx(2 / 3) and b.pa == 1.0 and a.ca == b.ca == 1.0
    assert (total.n_targets, total.successes, total.asr) == (2, 2, 1.0)


def test_a_target_is_excluded_from_every_task_that_shares_its_test_image() -> None:
    """`cifar10` and `cifar10-coarse` share test images under other labels: a target chosen in
    one task must not count in the other's accuracy either (recognised by its pixels)."""
    from pe_bench.worker.evaluate import evaluate

    fine = toy_task("fine", n_classes=2, per_class=4)  # test labels [0, 0, 1, 1]
    coarse = Task("coarse", fine.train, ImageArray(fine.test.images, np.zeros(4, np.int64), ("all",)))
    other = toy_task("other", n_classes=2, per_class=4)
    other = Task("other", other.train, ImageArray(255 - other.test.images, other.test.labels,
                                                  other.test.classes))
    pairs = [TargetPair("fine", 1, 0, 1)]
    # every probe errs on image 1 only (the fine task's target, shared with coarse)
    preds = {"fine": [0, 1, 1, 1], "coarse": [0, 1, 0, 0], "other": [0, 1, 1, 1]}
    _, (f, c, o) = evaluate([fine, coarse, other], lambda t: _one_hot(preds[t.name]), None, pairs)
    assert (f.n_test, f.ca, c.n_test, c.ca) == (3, 1.0, 3, 1.0)  # excluded from both tasks
    assert (o.n_test, o.ca) == (4, 0.75)  # a task without that image keeps all of its own
    assert c.n_targets == 0 and f.n_targets == 1


def test_vote_follows_the_majority_not_the_first_member() -> None:
    from pe_bench.worker.evaluate import vote

    odd = _one_hot([1, 1, 0])
    agree = [_one_hot([0, 1, 1]), _one_hot([0, 1, 1])]
    assert vote([odd, *agree]).pred.tolist() == [0, 1, 1]
    assert vote([*agree, odd]).pred.tolist() == [0, 1, 1]


def test_ensemble_p_target_is_the_mean_member_probability_and_the_vote_share_its_own_field() -> None:
    """Two members barely predict the target class, one is sure it is not: the vote says target
    (2/3), while p(target) is the members' mean probability, comparable with the twin's."""
    from pe_bench.worker.evaluate import vote

    members = [_output([[0.45, 0.55], [0.9, 0.1]]), _output([[0.45, 0.55], [0.9, 0.1]]),
               _output([[0.95, 0.05], [0.9, 0.1]])]
    voted = vote(members)
    assert voted.pred.tolist() == [1, 0]
    assert np.allclose(voted.proba, np.mean([m.proba for m in members], axis=0))
    pairs = [TargetPair("toy", 0, 0, 1)]
    s = target_stats(voted, pairs)
    assert s["hit"].tolist() == [True] and s["p"][0] == pytest.approx(1.15 / 3)
    assert s["p_vote"][0] == pytest.approx(2 / 3) and s["rank"][0] == 2
    assert target_stats(members[0], pairs)["p_vote"].tolist() == [None]


def test_vote_share_reaches_the_metrics_of_an_ensemble_only() -> None:
    from pe_bench.worker.evaluate import vote

    task = toy_task()
    pairs = [TargetPair("toy", 0, 0, 1), TargetPair("toy", 3, 0, 2)]
    n, c = len(task.test), len(task.test.classes)
    proba = np.full((n, c), 1.0 / c)
    single = ProbeOutput(proba.argmax(1), proba)
    hit = proba.copy()
    hit[0] = np.eye(c)[1]
    ensemble = vote([ProbeOutput(hit.argmax(1), hit), single, ProbeOutput(hit.argmax(1), hit)])
    alone = task_metrics(task, single, single, pairs)
    assert alone.p_target_vote is None and all(t.p_vote is None for t in alone.targets)
    voted = task_metrics(task, single, ensemble, pairs, undefended=single)
    assert [t.p_vote for t in voted.targets] == pytest.approx([2 / 3, 0.0])
    assert voted.p_target_vote == pytest.approx(1 / 3)
    assert voted.targets[0].p == pytest.approx((2 + 1 / c) / 3)
