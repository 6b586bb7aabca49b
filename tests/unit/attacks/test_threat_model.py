"""The attacker's labelled data is held out from the probe's training data (and from clean
pre-training) by default; the stronger setting, where it is the probe's own, is a labelled param."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pe_bench.attacks.base import AttackContext, Task
from pe_bench.attacks.targets import TargetedParams, references, select_targets
from pe_bench.datasets.loading import image_digests
from pe_bench.plugins.types import ImageArray
from pe_bench.worker.pipeline import attacker_split, load_inputs
from pe_bench.plugins.registry import ATTACKS
from pe_bench.store.results import line_label
from pe_bench.config.spec import EvalSpec, PluginRef, PretrainSpec, TaskSpec, TrainSpec, TrialSpec

DIGITS = PluginRef(name="digits", params={"resolution": 16})


def _spec(seed: int = 0, attack: str = "none", **params: object) -> TrialSpec:
    return TrialSpec(
        suite="unit", dataset="digits", seed=seed, pretrain=PretrainSpec(dataset=DIGITS, max_images=256),
        tasks=(TaskSpec(name="digits", dataset=DIGITS, train_size=300, test_size=100),),
        encoder=PluginRef(name="simclr"), attack=PluginRef(name=attack, params=dict(params)),
        defense=PluginRef(name="none"), train=TrainSpec(epochs=1), evaluation=EvalSpec())


def _flat(value: int, labels: list[int]) -> ImageArray:
    """Images of one grey value each (1 x 8 x 8), labels as given, classes 0 and 1."""
    values = np.full(len(labels), value) if np.ndim(value) == 0 else np.asarray(value)
    images = np.broadcast_to(values[:, None, None, None], (len(labels), 1, 8, 8)).astype(np.uint8)
    return ImageArray(images.copy(), np.array(labels, np.int64), ("0", "1"))


def test_the_attacker_split_is_stratified_disjoint_and_complete() -> None:
    labels = np.repeat(np.arange(4), 25)
    images = np.zeros((100, 1, 8, 8), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(100) % 256, np.arange(100) // 256  # index in pixels
    probe, attacker = attacker_split(ImageArray(images, labels, tuple("abcd")), 0.2,
                                     np.random.default_rng(0))
    ids = [set(a.images[:, 0, 0, 0].tolist()) for a in (probe, attacker)]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(range(100))
    assert np.bincount(attacker.labels).tolist() == [5, 5, 5, 5]


def test_by_default_no_reference_or_ranked_image_is_in_the_probe_training_split() -> None:
    """Run on the pipeline's own digits tasks: every reference image and the whole ranking pool
    come from the attacker split, which shares no image (by index) with the probe's split."""
    pre, (task,) = load_inputs(_spec(), Path("unused"))
    assert task.attacker is not None and len(task.attacker) + len(task.train) == 300
    assert 55 <= len(task.attacker) <= 65  # 20%, rounded per class
    probe_ids, attacker_ids = image_digests(task.train.images), image_digests(task.attacker.images)
    assert not np.isin(image_digests(pre.images), attacker_ids).any()  # nor in pre-training
    for rule in ("random", "outlier", "ambiguous"):
        params = TargetedParams(selection=rule, targets_per_task=3, references=5)
        for pair in select_targets(task, params, 0):
            refs = image_digests(references(task, pair, params, 0))
            assert np.isin(refs, attacker_ids).all() and not np.isin(refs, probe_ids).any()


def _trap() -> Task:
    """Test inputs a (class 0, grey 100) and b (class 0, grey 200). Against the attacker's
    images b is the outlier (its nearest other-class image is closer); against the probe's, a."""
    test = _flat(np.array([100, 200] * 5), [0] * 10)
    attacker = _flat(np.array([100, 100, 190, 190]), [0, 0, 1, 1])
    probe = _flat(np.array([200, 200, 110, 110]), [0, 0, 1, 1])
    return Task("trap", probe, test, attacker)


@pytest.mark.parametrize(("knows", "grey", "ref_grey"), [("held-out", 200, 190), ("probe-train", 100, 110)])
def test_the_setting_decides_which_images_rank_and_give_references(knows: str, grey: int,
                                                                    ref_grey: int) -> None:
    task = _trap()
    params = TargetedParams(selection="outlier", targets_per_task=1, shortlist=1, references=2,
                            attacker_data=knows)
    (pair,) = select_targets(task, params, seed=0)
    assert task.test.images[pair.index].max() == grey and pair.target_class == 1
    assert (references(task, pair, params, 0) == ref_grey).all()


def test_the_stronger_setting_is_reachable_by_param_and_labelled_in_the_row() -> None:
    held, strong = ({"selection": "outlier", "attacker_data": k} for k in ("held-out", "probe-train"))
    meta = ATTACKS.metadata("duplicate")  # what the row's `selection` column holds
    assert line_label(meta, held) == "outlier" and line_label(meta, strong) == "outlier+probe-data"
    assert line_label(meta, {}) is None
    task = _trap()
    ctx = AttackContext(np.zeros((200, 1, 8, 8), np.uint8), (task,), 0)
    crafts = [ATTACKS.get("duplicate").from_dict({**p, "targets_per_task": 1, "shortlist": 1}).craft(ctx)
              for p in (held, strong)]
    assert crafts[0].targets != crafts[1].targets


def test_every_attack_and_cell_of_a_seed_shares_the_split_and_seeds_differ() -> None:
    (_, (a,)) = load_inputs(_spec(0), Path("unused"))
    (_, (b,)) = load_inputs(_spec(0, "duplicate"), Path("unused"))
    assert a.attacker is not None and b.attacker is not None
    assert np.array_equal(a.attacker.images, b.attacker.images)
    assert np.array_equal(a.train.images, b.train.images)
    (_, (c,)) = load_inputs(_spec(1), Path("unused"))
    assert c.attacker is not None and not np.array_equal(a.attacker.images, c.attacker.images)


def test_the_split_is_part_of_the_clean_twin_key() -> None:
    base = _spec()
    other = base.model_copy(update={"tasks": (base.tasks[0].model_copy(update={"attacker_split": 0.3}),)})
    assert base.pretrain_key(None) != other.pretrain_key(None)


def test_a_rare_class_still_reaches_the_attacker_and_random_targets_need_references() -> None:
    labels = np.array([0] * 20 + [1] * 2 + [2])
    probe, attacker = attacker_split(ImageArray(np.zeros((23, 1, 8, 8), np.uint8), labels, tuple("abc")),
                                     0.2, np.random.default_rng(0))
    assert np.bincount(attacker.labels, minlength=3).tolist() == [4, 1, 0]  # class 2: one image, kept
    assert np.bincount(probe.labels, minlength=3).tolist() == [16, 1, 1]
    test = ImageArray(np.zeros((40, 1, 8, 8), np.uint8), np.array([0, 1] * 20), tuple("abc"))
    task = Task("rare", probe, test, attacker)
    pairs = select_targets(task, TargetedParams(targets_per_task=20), seed=0)
    assert {p.target_class for p in pairs} == {0, 1}  # never class 2: no reference of it
