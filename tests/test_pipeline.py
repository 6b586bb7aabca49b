"""One trial without Ray: data -> attack -> twin + poisoned encoders -> evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pe_bench.pipeline import run_trial
from pe_bench.spec import EvalSpec, PluginRef, PretrainSpec, TaskSpec, TrainSpec, TrialSpec

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
    assert first["n_pretrain"] == 256 and first["n_poisons"] == 26 and first["n_targets"] == 2
    assert first["cache_hits"] == 0 and first["tasks"][0]["n_test"] == 98
    again = run_trial(spec("simclr", "duplicate", poison_rate=0.1, targets_per_task=2),
                      Path("unused"), tmp_path)
    assert again["cache_hits"] == 1  # the clean twin came from the cache
    assert again["ca"] == first["ca"] and again["p_target_clean"] == first["p_target_clean"]
    assert set(first["timings"]) >= {"data", "attack", "pretrain_clean", "pretrain_poisoned", "evaluate"}


@pytest.mark.parametrize("probe", ["linear", "zero-shot"])
def test_clip_trial_evaluates_by_probe_or_zero_shot(tmp_path: Path, probe: str) -> None:
    out = run_trial(spec("clip", "none", probe=probe), Path("unused"), tmp_path)
    assert out["n_poisons"] == 0 and 0.0 <= out["ca"] <= 1.0 and out["pa"] == out["ca"]


def test_union_pre_training_set(tmp_path: Path) -> None:
    base = spec("simclr", "none")
    union = base.model_copy(update={"pretrain": base.pretrain.model_copy(update={
        "also": (PluginRef(name="digits", params={"resolution": 16, "channels": 3}),)})})
    assert union.trial_key != base.trial_key
    out = run_trial(union, Path("unused"), tmp_path)
    assert out["n_pretrain"] == 2 * 256


def test_union_of_mismatched_shapes_is_a_clear_error(tmp_path: Path) -> None:
    from pe_bench.errors import DataError

    base = spec("simclr", "none")
    bad = base.model_copy(update={"pretrain": base.pretrain.model_copy(update={
        "also": (PluginRef(name="digits", params={"resolution": 8}),)})})
    with pytest.raises(DataError, match="differ in image shape"):
        run_trial(bad, Path("unused"), tmp_path)
