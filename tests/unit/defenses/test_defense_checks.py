"""Detection metrics and the new defenses, each pinned by a case that a plausible slip would
break: F1 is the harmonic mean of precision and recall, encoder AUROC ranks attacked encoders as
the positives, the filters remove exactly the top `remove_fraction` by score, SLOF finds a point
that is sparse for its neighbourhood, and each of mudjacking's three terms does its part."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pe_bench.attacks.base import PoisonSet
from pe_bench.defenses.base import BugReport, PretrainData, RepairContext
from pe_bench.defenses.knn_density import density_scores
from pe_bench.store.detection import encoder_auroc, encoder_flags, operating_point
from pe_bench.store.metrics import DefenseReport
from pe_bench.plugins.registry import DEFENSES
from tests.unit.defenses import test_mudjacking as mj
from tests.unit.defenses import test_patchsearch as ps


# -- detection metrics ------------------------------------------------------------------------------
def test_f1_is_the_harmonic_mean_of_precision_and_recall() -> None:
    flagged = np.array([1, 1, 1, 1, 0, 0], bool)
    positive = np.array([1, 0, 0, 0, 1, 0], bool)
    got = operating_point(flagged, positive)
    assert (got["tpr"], got["precision"]) == (pytest.approx(1 / 2), pytest.approx(1 / 4))
    assert got["fpr"] == pytest.approx(3 / 4)
    assert got["f1"] == pytest.approx(2 * (1 / 2) * (1 / 4) / (1 / 2 + 1 / 4))  # 1/3


def test_encoder_auroc_takes_attacked_encoders_as_the_positives() -> None:
    scored = [{"encoder_score": 0.9, "encoder_score_clean": 0.1, "encoder_flagged": True,
               "encoder_flagged_clean": False},
              {"encoder_score": 0.8, "encoder_score_clean": 0.3, "encoder_flagged": False,
               "encoder_flagged_clean": False},
              {"encoder_score": 0.2, "encoder_score_clean": None, "encoder_flagged": None,
               "encoder_flagged_clean": None}]
    views = [DefenseReport(defense_hooks="score_encoder", n_encoders=1, **s) for s in scored]
    assert encoder_auroc(views) == pytest.approx(5 / 6)  # of 6 pairs, only 0.2 < 0.3 is lost
    assert encoder_auroc(views[:2]) == 1.0
    assert encoder_flags(views) == (1, 2, 0, 2)


# -- filters remove the top remove_fraction ----------------------------------------------------------
def _flat(images: np.ndarray) -> np.ndarray:
    """Centred pixels as features: near copies point the same way, noise images anywhere."""
    return np.asarray(images, dtype=np.float64).reshape(len(images), -1) - 127.5


def _isolated() -> PretrainData:
    """160 clean images in four tight groups and 6 lone noise images (the poisons, ids 160..165)."""
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, (4, 3, 1, 1))
    clean = np.clip(np.repeat(protos, 40, 0) + rng.integers(-8, 9, (160, 3, 8, 8)), 0, 255).astype(np.uint8)
    return PretrainData(clean, PoisonSet((rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8),)))


def _top_scored(scores: np.ndarray, removed: np.ndarray, fraction: float) -> None:
    kept = np.setdiff1d(np.arange(len(scores)), removed)
    assert len(removed) == round(fraction * len(scores))
    assert scores[removed].min() >= scores[kept].max()


@pytest.mark.parametrize("fraction", [0.05, 0.3])
def test_knn_density_removes_the_most_suspicious_fraction(fraction: float) -> None:
    defense = DEFENSES.get("knn-density").from_dict({"k": 16, "remove_fraction": fraction})
    _, removed, scores = defense.filter(_isolated(), 0, _flat)
    assert scores is not None
    _top_scored(scores, removed, fraction)
    assert set(range(160, 166)) <= set(removed.tolist())  # the lone images go first


def test_knn_density_at_the_poison_share_removes_exactly_the_poisons() -> None:
    defense = DEFENSES.get("knn-density").from_dict({"k": 16, "remove_fraction": 6 / 166})
    _, removed, _ = defense.filter(_isolated(), 0, _flat)
    assert removed.tolist() == list(range(160, 166))


def test_slof_finds_a_point_sparse_for_its_neighbourhood_that_k_dist_misses() -> None:
    """A tight cluster, a loose one, and one point just off the tight cluster: its k-distance
    is below the loose cluster's, but relative to its neighbours' it is the largest."""
    rng = np.random.default_rng(0)
    tight = np.array([1.0, 0, 0]) + rng.normal(0, 0.005, (30, 3))
    loose = np.array([0, 1.0, 0]) + rng.normal(0, 0.15, (30, 3))
    lone = np.array([[1.0, 0, 0.08]])
    features = np.concatenate([tight, loose, lone])
    assert int(np.argmax(density_scores(features, 5, "slof"))) == 60
    assert int(np.argmax(density_scores(features, 5, "k-dist"))) != 60


@pytest.mark.parametrize("fraction", [0.05, 0.3])
def test_patchsearch_removes_the_top_scored_fraction(fraction: float) -> None:
    defense = DEFENSES.get("patchsearch").from_dict(
        {"clusters": 4, "test_images": 40, "window": ps.PATCH, "stride": 2, "rounds": 3,
         "remove_fraction": fraction})
    data = ps.dataset(stamp=True)
    _, removed, scores = defense.filter(data, 0, ps.embed)
    assert scores is not None
    _top_scored(scores, removed, fraction)
    poisons = int((removed >= len(data.clean)).sum())
    assert poisons == min(len(removed), 12)  # the 12 stamped poisons go first


# -- mudjacking: each term does its part -------------------------------------------------------------
@pytest.fixture(scope="module")
def planted():  # noqa: ANN201  (a backdoored torch module, its data and bug report)
    model = mj.backdoored()
    train, (test, test_y) = mj.images(30, 1), mj.images(30, 2)
    triggered = mj.stamp(test[test_y == 0])
    report = BugReport("toy", 0, triggered[0], test[test_y == 0][1])
    return model, train, test, triggered, report


def _patched(planted, **params: float):  # noqa: ANN001, ANN202
    model, _, _, _, report = planted
    ctx = RepairContext(0, mj.images(50, 3)[0], None, report)
    return DEFENSES.get("mudjacking").from_dict({"steps": 80, "lr": 3e-3, **params}).repair(
        copy.deepcopy(model), ctx)


def test_the_bug_term_alone_returns_the_reported_input_to_its_true_class(planted) -> None:  # noqa: ANN001
    model, train, _, triggered, _ = planted
    assert mj.probe(model, train, triggered[:1])[0] != 0
    patched = _patched(planted, locality=0.0, generalizability=0.0)
    assert mj.probe(patched, train, triggered[:1])[0] == 0


def test_the_locality_term_keeps_clean_embeddings_closer(planted) -> None:  # noqa: ANN001
    model, _, test, _, _ = planted
    before = mj.embed(model, test)

    def drift(locality: float) -> float:
        after = mj.embed(_patched(planted, locality=locality, generalizability=0.0), test)
        return float(1 - (before * after).sum(1).mean())

    assert drift(1.0) < drift(0.0) / 2


def test_the_generalizability_term_keeps_stamped_inputs_of_other_classes_where_they_were(
        planted) -> None:  # noqa: ANN001
    """The trigger on images of a class the report does not name: with the term, the patched
    encoder embeds them close to where the deployed one embedded them unstamped."""
    model, _, test, _, _ = planted
    _, test_y = mj.images(30, 2)
    others = test[test_y == 2]
    clean = mj.embed(model, others)

    def kept(weight: float) -> float:
        patched = _patched(planted, generalizability=weight)
        return float((mj.embed(patched, mj.stamp(others)) * clean).sum(1).mean())

    assert kept(1.0) > kept(0.0) + 0.05


def test_k_dist_is_the_distance_to_the_kth_other_row() -> None:
    """A row is not its own neighbour: with k = 1 each score is the distance to the nearest
    other row (rows on the unit circle, at angles 0, 0.1 and pi/2)."""
    angles = np.array([0.0, 0.1, np.pi / 2])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    def chord(gaps: list[float]) -> np.ndarray:
        return 2 * np.sin(np.array(gaps) / 2)

    assert np.allclose(density_scores(features, 1, "k-dist"), chord([0.1, 0.1, np.pi / 2 - 0.1]))
    assert np.allclose(density_scores(features, 2, "k-dist"), chord([np.pi / 2, np.pi / 2 - 0.1, np.pi / 2]))
