"""Each built-in defense's own effect, and the data types defenses exchange (the contract
tests over every registered defense are in tests/unit/plugins/test_contracts.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pe_bench.attacks.base import PoisonSet
from pe_bench.defenses.base import PretrainData
from pe_bench.plugins.registry import DEFENSES
from pe_bench.config.spec import TrainSpec
from pe_bench.testing import check_defense, tiny_data


def test_contract_catches_a_nondeterministic_filter() -> None:
    from pe_bench.defenses.base import Defense

    class Flaky(Defense):
        def sanitize(self, data, seed):
            ids = np.random.default_rng().choice(data.size, 3, replace=False)
            return data.without(ids), ids

    with pytest.raises(AssertionError, match="deterministic"):
        check_defense(Flaky)


def test_without_keeps_original_ids_across_groups() -> None:
    data = tiny_data()
    n = len(data.clean)
    kept = data.without(np.array([0, 5, n, n + 6]))  # two clean, first of each poison group
    assert kept.size == data.size - 4
    assert 0 not in kept.clean_ids and 5 not in kept.clean_ids
    assert list(kept.poison_ids[:2]) == [1, 2] and 6 not in kept.poison_ids
    assert [len(g) for g in kept.poisons.groups] == [5, 3]


def test_early_stop_and_conservative_crop_change_only_the_recipe() -> None:
    base = TrainSpec(epochs=120, crop_min_scale=0.08)
    assert DEFENSES.get("early-stop").from_dict({"fraction": 0.25}).configure_training(base).epochs == 30
    crop = DEFENSES.get("conservative-crop").from_dict({"min_scale": 0.6, "mode": "localized"})
    recipe = crop.configure_training(base)
    assert (recipe.crop_min_scale, recipe.crop_mode, recipe.epochs) == (0.6, "localized", 120)


@pytest.mark.parametrize(("params", "scale", "mode"), [
    ({"mode": "localized"}, 0.08, "localized"),  # localized alone keeps the suite's scale
    ({}, 0.5, "independent"),  # the larger scale is independent mode's remedy
    ({"mode": "localized", "min_scale": 0.3}, 0.3, "localized"),  # both, when asked
    ({"min_scale": 0.05}, 0.08, "independent"),  # never weaker than the suite's
])
def test_conservative_crop_applies_each_remedy_as_stated(params, scale, mode) -> None:
    crop = DEFENSES.get("conservative-crop").from_dict(params)
    recipe = crop.configure_training(TrainSpec(crop_min_scale=0.08))
    assert (recipe.crop_min_scale, recipe.crop_mode, recipe.crop_margin) == (scale, mode, 0.2)


def test_engine_validates_the_recipe_a_defense_returns() -> None:
    """A third-party hook that skips validation (`model_copy`) is caught before training."""
    from pe_bench.worker.defend import configured_recipe
    from pe_bench.defenses.base import Defense
    from pe_bench.errors import PluginError

    class ZeroEpochs(Defense):
        def configure_training(self, train: TrainSpec) -> TrainSpec:
            return train.model_copy(update={"epochs": 0})

    with pytest.raises(PluginError, match="invalid recipe: train.epochs: Input should be greater"):
        configured_recipe(ZeroEpochs(), TrainSpec())
    assert configured_recipe(DEFENSES.get("early-stop")(), TrainSpec(epochs=10)).epochs == 5


def test_partitions_are_disjoint_exhaustive_and_by_content() -> None:
    data = tiny_data()
    parts = DEFENSES.get("partition-ensemble").from_dict({"k": 4}).partition(data)
    clean = np.concatenate([p.clean_ids for p in parts])
    assert sorted(clean) == list(range(len(data.clean)))
    assert sum(p.poisons.size for p in parts) == data.poisons.size
    copies = [p for p in parts if any(np.array_equal(g, np.repeat(data.clean[:1], len(g), 0))
                                      for g in p.poisons.groups)]
    assert len(copies) == 1  # identical images land in one partition


def test_clean_images_are_seeded_and_counted() -> None:
    from pe_bench.defenses.base import RepairContext

    pool = tiny_data().clean
    a, b = RepairContext(3, pool, None), RepairContext(3, pool, None)
    assert np.array_equal(a.clean_images(10), b.clean_images(10)) and a.clean_used == 10
    with pytest.raises(Exception, match="only 48"):
        a.clean_images(49)


def test_empty_poison_set_round_trips() -> None:
    data = PretrainData(tiny_data().clean, PoisonSet())
    assert data.without(np.array([1])).size == data.size - 1


def test_filter_scores_divide_by_the_right_counts() -> None:
    """Recall = poisons removed / poisons; precision = poisons removed / all removed."""
    from pe_bench.worker.defend import filter_scores

    data = tiny_data()  # 48 clean images (ids 0..47) + 10 injected (ids 48..57)
    removed = np.array([0, 1, 2, 48, 49])  # 3 clean, 2 poisons
    scores = filter_scores(data, removed)
    assert scores["n_removed"] == 5 and scores["clean_removed"] == 3
    assert scores["poison_recall"] == pytest.approx(2 / 10)
    assert scores["poison_precision"] == pytest.approx(2 / 5)


def _trainer(tmp_path, seed: int = 3):
    from pe_bench.worker.cache import ArtifactCache
    from pe_bench.worker.cached_training import Trainer
    from pe_bench.plugins.types import ImageArray
    from pe_bench.config.spec import PluginRef
    from pe_bench.testing.defenses import tiny_spec

    clean = tiny_data().clean
    pre = ImageArray(clean, np.zeros(len(clean), np.int64), ("x",))
    return Trainer(tiny_spec(PluginRef(name="none"), seed=seed), pre, ArtifactCache(tmp_path), lambda _: None)


def _same_weights(a, b) -> bool:
    import torch

    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def test_the_distilled_student_is_initialised_apart_from_the_teacher(tmp_path) -> None:
    """The student distillation trains starts from weights of its own (a seed derived from the
    trial's), not from the teacher's initialisation; reproducibly so."""
    import copy

    from pe_bench.defenses.base import RepairContext

    trainer = _trainer(tmp_path)
    teacher_init = trainer.fresh_encoder()
    students = []

    class Recording:  # the trainer, recording each student as distillation receives it
        def __getattr__(self, name):
            return getattr(trainer, name)

        def distill(self, student, teacher, images, epochs, batch_size=None):
            students.append(copy.deepcopy(student))
            return trainer.distill(student, teacher, images, epochs, batch_size)

    ctx = RepairContext(3, tiny_data().clean, Recording())
    fresh_a, fresh_b = ctx.fresh_encoder(), ctx.fresh_encoder()
    assert _same_weights(fresh_a, fresh_b) and not _same_weights(fresh_a, teacher_init)
    defense = DEFENSES.get("clean-finetune").from_dict({"mode": "distill", "clean_images": 16,
                                                        "epochs": 1, "batch_size": 8})
    defense.repair(trainer.fresh_encoder(), ctx)
    (student,) = students
    assert not _same_weights(student, teacher_init) and _same_weights(student, fresh_a)


def test_repairs_count_their_optimiser_steps_with_their_own_batch_size(tmp_path) -> None:
    from pe_bench.defenses.base import RepairContext

    trainer = _trainer(tmp_path)
    pool = tiny_data().clean  # 48 images
    for mode in ("finetune", "distill"):
        ctx = RepairContext(3, pool, trainer)
        defense = DEFENSES.get("clean-finetune").from_dict({"mode": mode, "clean_images": 40,
                                                            "epochs": 3, "batch_size": 8})
        defense.repair(trainer.fresh_encoder(), ctx)
        assert ctx.steps == 3 * (40 // 8) and ctx.clean_used == 40


def test_clean_finetune_never_takes_one_step_per_epoch() -> None:
    from pe_bench.errors import PeBenchError

    cls = DEFENSES.get("clean-finetune")
    assert round(500 / cls.from_dict({}).params.batch_size) >= 5  # the default: several steps
    with pytest.raises((ValueError, PeBenchError), match="batch_size 400 gives 500 .* at most 333"):
        cls.from_dict({"batch_size": 400})
    assert cls.from_dict({"clean_images": 96, "batch_size": 64}).params.batch_size == 64  # 1.5: 2 steps
