"""`mudjacking` by effect: a tiny encoder with a planted trigger -> target-class association is
patched from one bug report; the reported input moves to its true class while a probe's clean
accuracy barely moves. Also the bug report the engine builds from a trial's attack."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pe_bench.attacks.base import TargetPair, TriggeredTest
from pe_bench.plugins.types import ImageArray
from pe_bench.worker.defend import bug_report
from pe_bench.defenses.base import BugReport, RepairContext
from pe_bench.plugins.types import Task
from pe_bench.plugins.registry import DEFENSES

SIDE, TARGET = 8, 1
PROTOS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220]])[:, :, None, None]


class Tiny(torch.nn.Module):
    """A small conv encoder with the `features` method repairs call."""

    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(),
                                       torch.nn.Linear(16, 8))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images per class: a class colour plus noise, and their labels."""
    rng = np.random.default_rng(seed)
    x = np.repeat(PROTOS, n, 0) + rng.integers(-40, 41, (3 * n, 3, SIDE, SIDE))
    return np.clip(x, 0, 255).astype(np.uint8), np.repeat(np.arange(3), n)


def stamp(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, :, :3, :3] = 255  # a white corner square
    return out


def backdoored() -> Tiny:
    """Trained so class k maps to prototype k and any stamped input to the target's."""
    from pe_bench.plugins.tensors import normalize, to_float

    torch.manual_seed(0)
    model = Tiny()
    goals = torch.nn.functional.normalize(torch.randn(3, 8), dim=1) * 3
    x, y = images(40, 0)
    poisoned = np.concatenate([x, stamp(x[y != TARGET])])
    labels = np.concatenate([y, np.full(int((y != TARGET).sum()), TARGET)])
    inputs, wanted = normalize(to_float(torch.tensor(poisoned))), goals[torch.tensor(labels)]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = ((model.features(inputs) - wanted) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def embed(model: Tiny, x: np.ndarray) -> np.ndarray:
    from pe_bench.plugins.tensors import normalize, to_float

    with torch.no_grad():
        f = model.features(normalize(to_float(torch.tensor(x))))
    return torch.nn.functional.normalize(f, dim=1).numpy()


def probe(model: Tiny, train: tuple[np.ndarray, np.ndarray], test: np.ndarray) -> np.ndarray:
    """Nearest class mean (cosine) fitted on clean labelled features: predicted classes."""
    f = embed(model, train[0])
    means = np.stack([f[train[1] == k].mean(0) for k in range(3)])
    return np.argmax(embed(model, test) @ means.T, axis=1)


def closeness(model: Tiny, x: np.ndarray, train: tuple[np.ndarray, np.ndarray]) -> float:
    """Cosine of x's embedding to the mean clean class-0 embedding."""
    return float(embed(model, x[None])[0] @ embed(model, train[0][train[1] == 0]).mean(0))


def test_mudjacking_patches_the_reported_input_and_keeps_clean_accuracy() -> None:
    model = backdoored()
    train, (test, test_y) = images(30, 1), images(30, 2)
    triggered = stamp(test[test_y == 0])
    assert (probe(model, train, triggered) == TARGET).mean() > 0.9  # the backdoor works
    clean_before = (probe(model, train, test) == test_y).mean()
    close_before = closeness(model, triggered[0], train)
    ctx = RepairContext(0, images(50, 3)[0], None, BugReport("toy", 0, triggered[0], test[test_y == 0][1]))
    patched = DEFENSES.get("mudjacking").from_dict({"steps": 150, "lr": 3e-3}).repair(model, ctx)
    assert probe(patched, train, triggered[:1])[0] == 0  # the reported input: its true class
    assert closeness(patched, triggered[0], train) > close_before + 0.2
    assert (probe(patched, train, triggered[1:]) == TARGET).mean() < 0.5  # generalizes to the trigger
    assert abs((probe(patched, train, test) == test_y).mean() - clean_before) <= 0.1
    assert ctx.steps == 150 and ctx.clean_used == 128


def test_mudjacking_without_a_report_changes_nothing() -> None:
    model = backdoored()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = DEFENSES.get("mudjacking").from_dict({}).repair(model, RepairContext(0, images(5, 0)[0], None))
    assert all(torch.equal(before[k], v) for k, v in out.state_dict().items())


def toy_task() -> Task:
    x, y = images(10, 4)
    split = ImageArray(x, y.astype(np.int64), ("a", "b", "c"))
    return Task("toy", split, split)


@pytest.mark.parametrize("kind", ["targeted", "backdoor"])
def test_bug_report_reads_the_attack_and_picks_a_reference_of_the_true_class(kind: str) -> None:
    task = toy_task()
    labels = task.test.labels
    if kind == "targeted":
        report = bug_report((task,), (TargetPair("toy", 3, 0, TARGET),), (), seed=0)
        assert report is not None and np.array_equal(report.bug, task.test.images[3])
    else:
        index = np.flatnonzero(labels != TARGET)
        tests = (TriggeredTest("toy", TARGET, index, stamp(task.test.images[index])),)
        report = bug_report((task,), (), tests, seed=0)
        assert report is not None and report.bug[0, 0, 0] == 255
    at = np.flatnonzero((task.test.images == report.reference).all((1, 2, 3)))[0]
    assert labels[at] == report.true_class
    assert bug_report((task,), (), (), seed=0) is None
