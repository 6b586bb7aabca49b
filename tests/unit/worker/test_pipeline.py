"""One trial without Ray: data -> attack -> twin + poisoned encoders -> evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pe_bench.worker.pipeline import load_inputs, run_trial
from pe_bench.config.spec import EvalSpec, PluginRef, PretrainSpec, TaskSpec, TrainSpec, TrialSpec

DIGITS = PluginRef(name="digits", params={"resolution": 16})


def spec(encoder: str, attack: str, probe: str = "linear", **attack_params) -> TrialSpec:
    return TrialSpec(
        suite="unit", dataset="digits", seed=0,
        pretrain=PretrainSpec(dataset=DIGITS, max_images=256),
        tasks=(TaskSpec(name="digits", dataset=DIGITS, train_size=300, test_size=100),),
        encoder=PluginRef(name=encoder, params={"width": 4, "proj_dim": 16}),
        attack=PluginRef(name=attack, params=attack_params),
        defense=PluginRef(name="none"),
        train=TrainSpec(epochs=1, batch_size=64, device="cpu"),
        evaluation=EvalSpec(probe=probe, max_iter=200),
    )


def test_poisoned_trial_pairs_with_a_cached_twin(tmp_path: Path) -> None:
    first = run_trial(spec("simclr", "poisoned-encoder", poison_rate=0.1, targets_per_task=2),
                      Path("unused"), tmp_path)
    held_out = len(load_inputs(spec("simclr", "none"), Path("unused"))[1][0].attacker)
    # the attacker split (20% of the task's 300) leaves the 256 pre-training images where it overlaps
    assert 256 - held_out <= first.n_pretrain < 256
    assert first.n_poisons == round(0.1 * first.n_pretrain) and first.n_targets == 2
    assert first.cache_hits == 0 and first.tasks[0].n_test == 98
    again = run_trial(spec("simclr", "duplicate", poison_rate=0.1, targets_per_task=2),
                      Path("unused"), tmp_path)
    assert again.cache_hits == 1  # the clean twin came from the cache
    assert again.ca == first.ca and again.p_target_clean == first.p_target_clean
    stages = ("data", "attack", "pretrain_clean", "pretrain_poisoned", "evaluate")
    assert all(getattr(first.timings, stage) > 0 for stage in stages)


@pytest.mark.parametrize("probe", ["linear", "zero-shot"])
def test_clip_trial_evaluates_by_probe_or_zero_shot(tmp_path: Path, probe: str) -> None:
    out = run_trial(spec("clip", "none", probe=probe), Path("unused"), tmp_path)
    assert out.n_poisons == 0 and 0.0 <= out.ca <= 1.0 and out.pa == out.ca


def test_union_pre_training_set(tmp_path: Path) -> None:
    base = spec("simclr", "none")
    union = base.model_copy(update={"pretrain": base.pretrain.model_copy(update={
        "also": (PluginRef(name="digits", params={"resolution": 16, "channels": 3}),)})})
    assert union.trial_key != base.trial_key
    out = run_trial(union, Path("unused"), tmp_path)
    single = len(load_inputs(base, Path("unused"))[0])
    assert out.n_pretrain == 2 * single  # the same images twice, attacker split removed from both


def test_union_of_mismatched_shapes_is_a_clear_error(tmp_path: Path) -> None:
    from pe_bench.errors import DataError

    base = spec("simclr", "none")
    bad = base.model_copy(update={"pretrain": base.pretrain.model_copy(update={
        "also": (PluginRef(name="digits", params={"resolution": 8}),)})})
    with pytest.raises(DataError, match="differ in image shape"):
        run_trial(bad, Path("unused"), tmp_path)


def test_the_clean_twin_and_the_poisoned_encoder_share_the_trial_seed(tmp_path: Path) -> None:
    """Paired twins: the trainer builds and trains both from the trial seed (same
    initialisation, same clean batches); each equals an encoder built and trained by hand."""
    import torch

    from pe_bench.attacks.base import PoisonSet
    from pe_bench.worker.cache import ArtifactCache
    from pe_bench.worker.cached_training import Trainer
    from pe_bench.plugins.types import ImageArray
    from pe_bench.defenses.base import PretrainData
    from pe_bench.plugins.registry import ENCODERS
    from pe_bench.testing import tiny_data
    from pe_bench.testing.defenses import tiny_spec
    from pe_bench.worker.train import pretrain

    base = tiny_spec(PluginRef(name="none"), seed=3)
    trial = base.model_copy(update={"attack": PluginRef(name="duplicate", params={"poison_rate": 0.2})})
    data = tiny_data()
    pre = ImageArray(data.clean, np.zeros(len(data.clean), np.int64), ("x",))
    trainer = Trainer(trial, pre, ArtifactCache(tmp_path), lambda _: None)
    twin = trainer.encoder(PretrainData(data.clean, PoisonSet()), trial.train, "clean twin")
    poisoned = trainer.encoder(data, trial.train, "poisoned encoder")
    assert twin.key != poisoned.key
    for trained, poisons in ((twin, ()), (poisoned, data.poisons.groups)):
        torch.manual_seed(trial.seed)
        by_hand = ENCODERS.get(trial.encoder.name).from_dict(trial.encoder.params)
        pretrain(by_hand, data.clean, poisons, trial.train, trial.seed)
        expected = by_hand.state_dict()
        for name, value in trained.model.state_dict().items():
            assert torch.equal(value.cpu(), expected[name].cpu()), name


def test_ensemble_members_vote(tmp_path: Path) -> None:
    """Three encoders, the first one useless: the ensemble predicts what the other two agree on."""
    import torch

    from pe_bench.worker.pipeline import classifier
    from tests.helpers import toy_task

    class Stub(torch.nn.Module):
        def __init__(self, useful: bool) -> None:
            super().__init__()
            self.useful, self.feature_dim = useful, 4
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) if self.useful else torch.zeros(len(x), self.feature_dim)

    task = toy_task()
    alone = [classifier([Stub(u)], EvalSpec())(task).pred for u in (False, True)]
    assert not np.array_equal(alone[0], alone[1])
    voted = classifier([Stub(False), Stub(True), Stub(True)], EvalSpec())(task)
    assert np.array_equal(voted.pred, alone[1])


def defended(name: str, encoder: str = "simclr", **params) -> TrialSpec:
    base = spec(encoder, "poisoned-encoder", poison_rate=0.1, targets_per_task=2)
    return base.model_copy(update={"defense": PluginRef(name=name, params=params)})


def test_defenses_share_the_undefended_encoder_and_report_their_costs(tmp_path: Path) -> None:
    plain = run_trial(defended("none"), Path("unused"), tmp_path)
    assert plain.defense.n_encoders == 1 and plain.pa_undefended == plain.pa
    ens = run_trial(defended("partition-ensemble", k=2), Path("unused"), tmp_path)
    assert ens.cache_hits == 2  # twin and undefended encoder were trained by the `none` cell
    assert ens.defense.n_encoders == 2 and ens.defense.defense_hooks == "partition"
    assert ens.asr_undefended == plain.asr and ens.pa_undefended == plain.pa
    assert ens.tasks[0].targets[0].p_undefended == plain.tasks[0].targets[0].p
    assert plain.defense.repair_steps is None and ens.defense.repair_steps is None
    repaired = run_trial(defended("clean-finetune", clean_images=64, epochs=1, mode="distill",
                                  batch_size=32), Path("unused"), tmp_path)
    assert repaired.defense.clean_used == 64 and repaired.cache_hits == 2
    assert repaired.defense.repair_steps == 1 * (64 // 32)
    # costs are the defense's own work: CPU seconds of its hooks, training vs the undefended's
    assert (plain.defense.defense_cpu_s, plain.defense.extra_steps, plain.defense.extra_images) == (0, 0, 0)
    assert repaired.defense.defense_cpu_s > 0 and repaired.defense.extra_train_cpu_s == 0
    assert (repaired.defense.extra_steps, repaired.defense.extra_images) == (2, 64)
    again = run_trial(defended("clean-finetune", clean_images=64, epochs=1, mode="distill",
                               batch_size=32), Path("unused"), tmp_path)
    assert again.cache_hits == 3 and again.defense == repaired.defense  # the cost recorded at build
    assert ens.defense.extra_images == 0  # two halves of the set: the same images, once each
    assert ens.defense.extra_steps > 0 and ens.defense.extra_train_cpu_s is not None
    short = run_trial(defended("early-stop", fraction=0.5), Path("unused"), tmp_path)
    assert short.defense.defense_hooks == "configure_training"
    assert short.defense.poison_recall is None  # not a filter


def test_repair_leaves_the_undefended_encoder_alone(tmp_path: Path) -> None:
    """Fine-tuning works on a copy: the same trial still evaluates the undefended encoder."""
    plain = run_trial(defended("none"), Path("unused"), tmp_path)
    tuned = run_trial(defended("clean-finetune", clean_images=64, epochs=2, mode="finetune",
                               batch_size=32), Path("unused"), tmp_path)
    assert tuned.defense.repair_steps == 2 * (64 // 32)
    assert tuned.pa_undefended == plain.pa and tuned.asr_undefended == plain.asr
    assert tuned.p_target_undefended == plain.p_target
    assert tuned.p_target != plain.p_target  # and the repair did change the encoder


def test_a_filter_is_scored_against_the_planted_poisons(tmp_path: Path) -> None:
    from pe_bench.defenses.base import Defense
    from pe_bench.plugins.registry import DEFENSES

    class DropInjected(Defense):  # an oracle filter: removes every injected image
        calls = 0

        def sanitize(self, data, seed):
            DropInjected.calls += 1
            sizes = np.cumsum([0] + [len(a) for a in data.images()])
            removed = np.arange(sizes[1], sizes[-1])
            return data.without(removed), removed

    DEFENSES.add("oracle-filter", DropInjected, "tests")
    try:
        out = run_trial(defended("oracle-filter"), Path("unused"), tmp_path)
        again = run_trial(defended("oracle-filter"), Path("unused"), tmp_path)
    finally:
        DEFENSES._loaded.pop("oracle-filter")
    d = out.defense
    assert (d.poison_recall, d.poison_precision, d.clean_removed) == (1.0, 1.0, 0)
    assert d.n_removed == out.n_poisons
    assert DropInjected.calls == 1 and again.defense == d  # the filter's result was cached


def test_a_backdoor_trial_counts_triggered_inputs_on_every_encoder(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from pe_bench.store.results import build_row

    attack = {"poison_rate": 0.1, "target_class": 3, "patch_size": 4}
    plain = run_trial(spec("simclr", "ssl-backdoor", **attack), Path("unused"), tmp_path)
    (task,) = plain.tasks
    assert plain.n_targets == 0 and task.targets == () and plain.n_poisons == round(0.1 * plain.n_pretrain)
    others = int((load_inputs(spec("simclr", "none"), Path("unused"))[1][0].test.labels != 3).sum())
    assert plain.n_triggered == task.n_triggered == others < 100  # the test inputs of the other classes
    assert task.n_test == 100  # no target pair excluded: CA / PA read the whole test split
    assert plain.asr == task.triggered_hits / others
    assert plain.baseline_asr == task.triggered_hits_clean / others
    assert plain.asr_undefended == plain.asr
    row = build_row(spec("simclr", "ssl-backdoor", **attack), "r", {}, datetime.now(UTC), plain)
    assert row["family"] == "backdoor" and row["n_triggered"] == others
    ens = run_trial(spec("simclr", "ssl-backdoor", **attack).model_copy(
        update={"defense": PluginRef(name="partition-ensemble", params={"k": 2})}), Path("unused"), tmp_path)
    assert ens.n_triggered == others and ens.triggered_hits_undefended == plain.triggered_hits
    assert ens.baseline_asr == plain.baseline_asr and ens.pa_undefended == plain.pa


def test_image_caption_poisons_run_through_a_clip_trial_in_both_variants(tmp_path: Path) -> None:
    """carlini-terzis's captions reach CLIP's training (a CLIP cell with image-only poisons is
    refused); the targeted variant reads like a targeted row, the backdoor one like a backdoor."""
    from datetime import UTC, datetime

    from pe_bench.store.results import build_row

    clean = run_trial(spec("clip", "none", probe="zero-shot"), Path("unused"), tmp_path)
    targeted = spec("clip", "carlini-terzis", probe="zero-shot", poison_rate=0.05, targets_per_task=2)
    out = run_trial(targeted, Path("unused"), tmp_path)
    assert clean.cache_hits == 0 and out.cache_hits == 1  # the clean twin of the `none` cell
    assert out.n_targets == 2 and out.n_poisons == round(0.05 * out.n_pretrain) and out.n_triggered is None
    assert build_row(targeted, "r", {}, datetime.now(UTC), out)["family"] == "targeted"
    backdoor = spec("clip", "carlini-terzis", probe="zero-shot", variant="backdoor", target_class=1)
    out = run_trial(backdoor, Path("unused"), tmp_path)
    assert out.n_targets == 0 and out.n_triggered is not None and out.n_triggered > 0
    assert build_row(backdoor, "r", {}, datetime.now(UTC), out)["family"] == "backdoor"
