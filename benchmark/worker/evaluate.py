"""Downstream evaluation: probes on frozen features; CA, PA, ASR, baseline ASR, p(target).

For each task a probe is trained on the task's clean labelled train split (the images the
attacker's split leaves), once on the clean encoder's features and once on the poisoned (or
defended) encoder's. Every target input is excluded from the accuracy of both, in its own task
and in every other task whose test split holds the same image (recognised by its pixels: e.g.
`cifar10` and `cifar10-coarse` share test images under different labels). Overall CA/PA are the
unweighted mean over tasks; overall ASR and p(target) pool every target pair of every task.

A backdoor attack's triggered test inputs (`TriggeredTest`) are appended to the task's test
split for prediction only: each probe is trained exactly as without them (same train split,
same features), predicts the test split and the triggered inputs, and its accuracy still reads
the test split alone. ASR counts the triggered inputs assigned to the target class, on this
encoder, the clean twin and the undefended encoder alike (the same inputs for all three).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from pe_bench.attacks.base import TargetPair, Task, TriggeredTest
from pe_bench.datasets.loading import image_digests
from pe_bench.datasets.base import ImageArray
from pe_bench.store.metrics import TRIGGER_HITS, Metrics, TargetOutcome, TaskMetrics, pair_means, trigger_rates
from pe_bench.config.spec import EvalSpec

Encode = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ProbeOutput:
    """Test-split predictions and class probabilities of one probe; `votes` is the share of an
    ensemble's members predicting each class (None for a single classifier)."""

    pred: np.ndarray
    proba: np.ndarray
    votes: np.ndarray | None = None


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 n_classes: int, spec: EvalSpec) -> ProbeOutput:
    """Multinomial logistic regression on standardised features."""
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(C=spec.C, max_iter=spec.max_iter)
    clf.fit(scaler.transform(train_x), train_y)
    proba_seen = clf.predict_proba(scaler.transform(test_x))
    proba = np.zeros((len(test_x), n_classes), dtype=np.float64)
    proba[:, clf.classes_] = proba_seen  # classes absent from train get probability 0
    return ProbeOutput(proba.argmax(1), proba)


def mlp_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, n_classes: int,
              spec: EvalSpec, seed: int = 0) -> ProbeOutput:
    """The MLP downstream classifier of the authors' related BadEncoder code: features ->
    512 -> 256 -> C, ReLU and dropout 0.5 after each hidden layer, Adam, cross entropy, on
    standardised features; seeded, so the same features give the same classifier."""
    import torch
    from torch import nn

    scaler = StandardScaler().fit(train_x)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(train_x.shape[1], 512), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, n_classes))
    x = torch.tensor(scaler.transform(train_x), dtype=torch.float32)
    y = torch.tensor(train_y, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=spec.mlp_lr)
    for _ in range(spec.mlp_epochs):
        for idx in torch.randperm(len(x), generator=gen).split(spec.mlp_batch_size):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = net(torch.tensor(scaler.transform(test_x), dtype=torch.float32))
    proba = torch.softmax(logits, dim=1).numpy().astype(np.float64)
    return ProbeOutput(proba.argmax(1), proba)


def probe(encode: Encode, task: Task, spec: EvalSpec) -> ProbeOutput:
    """The suite's downstream classifier trained on the task's clean labelled train split."""
    fit = mlp_probe if spec.probe == "mlp" else linear_probe
    return fit(encode(task.train.images), task.train.labels, encode(task.test.images),
               len(task.test.classes), spec)


def zero_shot(encode: Encode, proba: Callable[[np.ndarray, tuple[str, ...]], np.ndarray],
              task: Task) -> ProbeOutput:
    """No training data: class probabilities from class-name prompts (image–text encoders)."""
    p = proba(encode(task.test.images), task.test.classes)
    return ProbeOutput(p.argmax(1), p)


Classify = Callable[[Task], ProbeOutput]


def target_stats(out: ProbeOutput, pairs: Sequence[TargetPair]) -> dict[str, np.ndarray]:
    """Per pair: hit (pred == y_i), p(y_i | x_i), the rank of y_i (1 = top) and, for an
    ensemble, the share of members voting y_i (else None per pair)."""
    idx = np.array([p.index for p in pairs], dtype=np.int64)
    tgt = np.array([p.target_class for p in pairs], dtype=np.int64)
    proba = out.proba[idx]
    p_t = proba[np.arange(len(pairs)), tgt] if len(pairs) else np.zeros(0)
    rank = (proba > p_t[:, None]).sum(1) + 1 if len(pairs) else np.zeros(0, np.int64)
    votes = (np.full(len(pairs), None) if out.votes is None
             else out.votes[idx, tgt] if len(pairs) else np.zeros(0))
    return {"hit": out.pred[idx] == tgt, "p": p_t, "rank": rank, "p_vote": votes}


def accuracy(out: ProbeOutput, labels: np.ndarray, exclude: Sequence[int]) -> float:
    keep = np.ones(len(labels), dtype=bool)
    keep[list(exclude)] = False
    return float((out.pred[keep] == labels[keep]).mean())


def vote(outputs: Sequence[ProbeOutput]) -> ProbeOutput:
    """Majority vote of several classifiers (a partition ensemble); ties go to the class with
    the higher mean probability. `proba` is the members' mean probability, so an ensemble's
    p(target) reads like a single encoder's (its clean twin's); `votes` is the vote share."""
    if len(outputs) == 1:
        return outputs[0]
    n, c = outputs[0].proba.shape
    votes = np.zeros((n, c))
    for out in outputs:
        votes[np.arange(n), out.pred] += 1
    mean_p = np.mean([out.proba for out in outputs], axis=0)
    pred = (votes + 1e-6 * mean_p).argmax(1)
    return ProbeOutput(pred, mean_p, votes / len(outputs))


@dataclass(frozen=True)
class TriggeredOutputs:
    """A backdoor's triggered test inputs of one task and what each encoder's classifier
    predicted for them (clean twin, this encoder, the undefended poisoned encoder)."""

    test: TriggeredTest
    clean: ProbeOutput
    poisoned: ProbeOutput
    undefended: ProbeOutput

    def counts(self) -> dict[str, int]:
        outs = (self.poisoned, self.clean, self.undefended)
        hits = {name: int((out.pred == self.test.target_class).sum()) for name, out in zip(TRIGGER_HITS, outs,
                                                                                         strict=True)}
        return {"n_triggered": len(self.test.index), **hits}


def with_triggered(task: Task, triggered: TriggeredTest) -> Task:
    """The task with the triggered inputs appended to its test split (labels: their true ones)."""
    test = task.test
    images = np.concatenate([test.images, triggered.images])
    labels = np.concatenate([test.labels, test.labels[triggered.index]])
    return Task(task.name, task.train, ImageArray(images, labels, test.classes), task.attacker)


def split(out: ProbeOutput, n: int) -> tuple[ProbeOutput, ProbeOutput]:
    """A probe's output on `with_triggered`'s test split: (the test split's, the triggered inputs')."""
    votes = (None, None) if out.votes is None else (out.votes[:n], out.votes[n:])
    return (ProbeOutput(out.pred[:n], out.proba[:n], votes[0]),
            ProbeOutput(out.pred[n:], out.proba[n:], votes[1]))


def task_metrics(task: Task, clean: ProbeOutput, poisoned: ProbeOutput,
                 pairs: Sequence[TargetPair], undefended: ProbeOutput | None = None,
                 shared: Sequence[int] = (), triggered: TriggeredOutputs | None = None) -> TaskMetrics:
    """One task's metrics: accuracies and, per target pair, the outcome on the clean twin, on
    this (possibly defended) encoder, and on the undefended poisoned encoder; the rates over
    pairs (ASR, p(target)...) are the model's `PairMean` fields. `shared`: test indices that
    are another task's target inputs, excluded from the accuracies like this task's own;
    `triggered`: a backdoor's triggered inputs, whose counts give the rates instead."""
    undefended = poisoned if undefended is None else undefended
    counts = {} if triggered is None else triggered.counts()
    excluded = sorted({p.index for p in pairs} | {int(i) for i in shared})
    c, q, u = (target_stats(o, pairs) for o in (clean, poisoned, undefended))
    targets = tuple(
        TargetOutcome(index=p.index, true_class=p.true_class, target_class=p.target_class,
                      hit=bool(q["hit"][i]), hit_clean=bool(c["hit"][i]),
                      hit_undefended=bool(u["hit"][i]), p=float(q["p"][i]),
                      p_clean=float(c["p"][i]), p_undefended=float(u["p"][i]),
                      p_vote=None if q["p_vote"][i] is None else float(q["p_vote"][i]),
                      rank=int(q["rank"][i]), rank_clean=int(c["rank"][i]))
        for i, p in enumerate(pairs)
    )
    return TaskMetrics(
        task=task.name,
        n_classes=len(task.test.classes),
        n_test=len(task.test) - len(excluded),
        ca=accuracy(clean, task.test.labels, excluded),
        pa=accuracy(poisoned, task.test.labels, excluded),
        pa_undefended=accuracy(undefended, task.test.labels, excluded),
        n_targets=len(pairs),
        successes=int(q["hit"].sum()),
        targets=targets,
        trigger_target=None if triggered is None else triggered.test.target_class,
        **counts,
        **{**pair_means(TaskMetrics, targets), **trigger_rates(counts)},
    )


def overall(tasks: Sequence[TaskMetrics]) -> Metrics:
    """Unweighted mean of CA/PA over tasks; ASR and p(target) pooled over all pairs."""
    pairs = [t for task in tasks for t in task.targets]
    counts = {name: sum(getattr(t, name) for t in tasks if getattr(t, name) is not None)
              for name in ("n_triggered", *TRIGGER_HITS)} if any(t.n_triggered for t in tasks) else {}
    return Metrics(
        ca=float(np.mean([t.ca for t in tasks])),
        pa=float(np.mean([t.pa for t in tasks])),
        pa_undefended=float(np.mean([t.pa_undefended for t in tasks])),
        n_targets=len(pairs),
        successes=sum(t.hit for t in pairs),
        **counts,
        **{**pair_means(Metrics, pairs), **trigger_rates(counts)},
    )


def evaluate(tasks: Sequence[Task], clean: Classify, poisoned: Classify | None,
             pairs: Sequence[TargetPair], undefended: Classify | None = None,
             triggered: Sequence[TriggeredTest] = ()) -> tuple[Metrics, list[TaskMetrics]]:
    """Overall and per-task metrics. `poisoned=None` means the clean encoder itself (no attack,
    no defense); `undefended=None` means `poisoned` is undefended; `triggered`: a backdoor's
    triggered test inputs (at most one set per task)."""
    shared = shared_targets(tasks, pairs)
    by_task = {t.task: t for t in triggered}
    rows = []
    for task in tasks:
        trig = by_task.get(task.name)
        seen = task if trig is None else with_triggered(task, trig)
        clean_out = clean(seen)
        poisoned_out = clean_out if poisoned is None else poisoned(seen)
        undefended_out = poisoned_out if undefended is None else undefended(seen)
        outs = [clean_out, poisoned_out, undefended_out]
        extra = None
        if trig is not None:
            heads, tails = zip(*(split(o, len(task.test)) for o in outs), strict=True)
            outs, extra = list(heads), TriggeredOutputs(trig, *tails)
        rows.append(task_metrics(task, outs[0], outs[1], [p for p in pairs if p.task == task.name],
                                 None if undefended is None else outs[2], shared[task.name], extra))
    return overall(rows), rows


def shared_targets(tasks: Sequence[Task], pairs: Sequence[TargetPair]) -> dict[str, list[int]]:
    """Per task, the test indices whose image is the target input of any pair of any task
    (by pixels, so tasks that share test images under other labels exclude each other's)."""
    by_name = {t.name: t for t in tasks}
    if not pairs:
        return {t.name: [] for t in tasks}
    targets = np.concatenate([image_digests(by_name[p.task].test.images[[p.index]]) for p in pairs])
    return {t.name: np.flatnonzero(np.isin(image_digests(t.test.images), targets)).tolist()
            for t in tasks}
