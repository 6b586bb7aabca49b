"""Detection metrics against slow reference formulas (ties included), and the two detectors by
effect: `knn-density` ranks planted poisons of its intended kind first, `decree` scores a
planted-backdoor encoder above a clean one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pe_bench.attacks.base import PoisonSet
from pe_bench.defenses.base import PretrainData, RepairContext
from pe_bench.store.detection import auprc, auroc, image_detection, operating_point
from pe_bench.plugins.registry import DEFENSES


def slow_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Every (positive, negative) pair: 1 if the positive scores higher, 1/2 on a tie."""
    pos, neg = scores[positive], scores[~positive]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    return sum(wins) / len(wins)


def slow_auprc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision by its definition: over each distinct threshold t (descending), the
    precision of {score >= t} times the recall it adds."""
    total, recall_before = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        chosen = scores >= t
        recall = (chosen & positive).sum() / positive.sum()
        total += (chosen & positive).sum() / chosen.sum() * (recall - recall_before)
        recall_before = recall
    return float(total)


@pytest.mark.parametrize("seed", range(40))
def test_auroc_and_auprc_match_their_definitions_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 25))
    scores = rng.integers(0, 4, n).astype(float)  # few values: many ties
    positive = rng.random(n) < 0.4
    positive[:2] = [True, False]
    assert auroc(scores, positive) == pytest.approx(slow_auroc(scores, positive))
    assert auprc(scores, positive) == pytest.approx(slow_auprc(scores, positive))


def test_degenerate_inputs() -> None:
    assert auroc(np.ones(3), np.ones(3, bool)) is None and auprc(np.ones(3), np.zeros(3, bool)) is None
    assert auroc(np.array([2.0, 1.0]), np.array([True, False])) == 1.0
    with pytest.raises(ValueError, match="finite"):
        auroc(np.array([np.nan, 1.0]), np.array([True, False]))


def test_operating_point() -> None:
    flagged = np.array([1, 1, 0, 1, 0, 0], bool)
    positive = np.array([1, 0, 1, 1, 0, 0], bool)
    got = operating_point(flagged, positive)
    assert got["tpr"] == pytest.approx(2 / 3) and got["fpr"] == pytest.approx(1 / 3)
    assert got["precision"] == pytest.approx(2 / 3) and got["f1"] == pytest.approx(2 / 3)
    nothing = operating_point(np.zeros(6, bool), positive)
    assert nothing["precision"] is None and nothing["tpr"] == 0.0 and nothing["f1"] is None
    got = image_detection(np.arange(6.0), np.array([4, 5]), n_clean=4, n_total=6)
    assert got == {"poison_auroc": 1.0, "poison_auprc": 1.0, "poison_recall_fpr1": 1.0,
                   "poison_recall_fpr5": 1.0, "poison_fpr": 0.0, "poison_f1": 1.0}


# -- knn-density: planted poisons of its intended kind -------------------------------------------
def random_features(images: np.ndarray) -> np.ndarray:
    """A random-init small encoder's features (no training), as `score_trained` receives."""
    import torch

    from pe_bench.plugins.registry import ENCODERS
    from pe_bench.worker.train import encode

    torch.manual_seed(0)
    model = ENCODERS.get("simclr").from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8})
    return encode(model, images)


def control(scores: np.ndarray, positive: np.ndarray) -> float:
    """AUROC of the same scores shuffled: what chance gives."""
    return float(np.mean([auroc(np.random.default_rng(s).permutation(scores), positive)
                          for s in range(20)]))


def knn_auroc(data: PretrainData, **params: object) -> tuple[float, float]:
    defense = DEFENSES.get("knn-density").from_dict(params)
    kept, removed, scores = defense.filter(data, 0, random_features)
    positive = np.arange(data.size) >= len(data.clean)
    assert len(removed) == round(defense.params.remove_fraction * data.size)
    return auroc(scores, positive), control(scores, positive)


def test_knn_density_finds_isolated_poisons_the_papers_kind() -> None:
    """Clean images in four tight groups; six lone images of other content (fewer than k):
    their neighbourhoods are sparse."""
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, (4, 3, 1, 1))
    clean = np.clip(np.repeat(protos, 40, 0) + rng.integers(-8, 9, (160, 3, 16, 16)), 0, 255).astype(np.uint8)
    lone = rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    got, chance = knn_auroc(PretrainData(clean, PoisonSet((lone,))), k=16)
    assert got > 0.9 and got > chance + 0.3


def test_knn_density_dense_finds_repeated_copies() -> None:
    """Diverse clean images and 20 near-identical copies of one image: with `direction: dense`
    the copies come first; the paper's `sparse` ranks them last."""
    rng = np.random.default_rng(1)
    clean = rng.integers(0, 256, (150, 3, 16, 16), dtype=np.uint8)
    target = rng.integers(0, 256, (1, 3, 16, 16))
    copies = np.clip(target + rng.integers(-3, 4, (20, 3, 16, 16)), 0, 255).astype(np.uint8)
    data = PretrainData(clean, PoisonSet((copies,)))
    dense, chance = knn_auroc(data, k=5, direction="dense")
    assert dense > 0.9 and dense > chance + 0.3
    assert knn_auroc(data, k=5)[0] < 0.5


# -- decree: a planted-backdoor encoder scores above a clean one ---------------------------------
def tiny_encoder(seed: int):  # noqa: ANN201  (a torch module)
    import torch

    class Tiny(torch.nn.Module):
        feature_dim = 8

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 8, 3, padding=1))

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean((2, 3))

    torch.manual_seed(seed)
    return Tiny()


def stamp(images: np.ndarray) -> np.ndarray:
    out = images.copy()
    out[:, :, -3:, -3:] = 255
    out[:, 1, -3:, -3:] = 0
    return out


def backdoored(images: np.ndarray):  # noqa: ANN201
    """Trained so that clean features stay those of its initialisation and any stamped image
    maps to one fixed embedding: the backdoor a poisoned pre-training plants."""
    import torch

    from pe_bench.plugins.tensors import normalize, to_float

    model, reference = tiny_encoder(0), tiny_encoder(0)
    x = normalize(to_float(torch.tensor(images)))
    xt = normalize(to_float(torch.tensor(stamp(images))))
    with torch.no_grad():
        keep = reference.features(x)
    target = torch.full((8,), 2.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(x), (32,), generator=gen)
        kept = (model.features(x[idx]) - keep[idx]).pow(2).mean()
        loss = kept + (model.features(xt[idx]) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_decree_scores_a_planted_backdoor_above_a_clean_encoder() -> None:
    rng = np.random.default_rng(0)
    images = np.repeat(np.repeat(rng.integers(0, 256, (128, 3, 4, 4), dtype=np.uint8), 4, 2), 4, 3)
    decree = DEFENSES.get("decree").from_dict({"steps": 150, "clean_images": 64, "batch_size": 32})
    clean = decree.score_encoder(tiny_encoder(0), RepairContext(0, images, None))
    planted = decree.score_encoder(backdoored(images), RepairContext(0, images, None))
    assert planted > clean
    # the inverted trigger of the planted encoder is less than half the clean one's (PL1 0.10
    # vs 0.23 here); whether 0.10 falls under the 0.1 default is a matter of float rounding on
    # this toy (it did on one CPU and not on another), so the rule is checked as a rule
    assert 1 - planted < (1 - clean) / 2
    assert decree.flag_encoder(clean) is False
    for score in (planted, clean):
        assert decree.flag_encoder(score) is (1 - score < decree.params.threshold)
