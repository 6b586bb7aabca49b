"""Suite files: the repo's suites validate; every malformed suite is one line naming file and key.

Malformed suites live in tests/fixtures/suites/bad/, one file per mistake; the first lines say
what the error must name:
    # expect-key: attacks[1].params.poison_rate     (empty: an error about the whole file)
    # expect-msg: less than or equal to 1           (a fragment of the message)
test_cli.py runs the same files through the command line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pe_bench.api import validate_suite
from pe_bench.errors import SuiteError
from pe_bench.config.grid import expand
from pe_bench.config.spec import TrainSpec, resolve_recipe
from pe_bench.config.suite import Suite, load_suite
from tests.bad_suites import BAD_SUITES, FIXTURES, expectation

REPO = Path(__file__).resolve().parents[3]
MINIMAL = FIXTURES / "minimal.yaml"
REPO_SUITES = sorted((REPO / "suites").glob("*.yaml"))


def bad_suite_params() -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in BAD_SUITES]


def check_one_line(message: str, file: str, key: str, fragment: str) -> None:
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message
    assert file in message, message
    if key:
        assert f"{file}: {key}: " in message, message
    assert fragment in message, message


def write_variant(tmp_path: Path, change: Any, name: str = "variant.yaml") -> Path:
    """A copy of the minimal suite with `change(data)` applied."""
    data = yaml.safe_load(MINIMAL.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# -- valid suites ----------------------------------------------------------------------------
def test_repo_has_suites() -> None:
    assert any(p.name == "smoke.yaml" for p in REPO_SUITES)


@pytest.mark.parametrize("path", REPO_SUITES, ids=lambda p: p.stem)
def test_repo_suite_validates(path: Path) -> None:
    plan = validate_suite(path)
    assert len(plan.grid.trials) >= 1
    assert plan.suite.name == path.stem
    assert len({t.trial_key for t in plan.grid.trials}) == len(plan.grid.trials)


def test_smoke_has_six_trials() -> None:
    plan = validate_suite(REPO / "suites" / "smoke.yaml")
    assert len(plan.grid.trials) == 6
    assert [t.attack.name for t in plan.grid.trials[:2]] == ["none", "none"]  # clean twins first
    assert plan.grid.pretrain_runs() == 2


def test_string_shorthand_and_default_params() -> None:
    suite = load_suite(MINIMAL)
    none, poisoned = suite.attacks
    assert none.name == "none" and none.params == {}
    assert poisoned.name == "poisoned-encoder"
    assert poisoned.params["poison_rate"] == 0.05  # given
    for default in ("targets_per_task", "references", "selection", "layouts", "canvas"):
        assert default in poisoned.params  # filled in
    assert [e.name for e in suite.encoders] == ["simclr"]
    assert "temperature" in suite.encoders[0].params
    assert [d.name for d in suite.defenses] == ["none"]  # the default defense axis
    pretrain = suite.datasets[0].pretrain.dataset
    assert pretrain.params["resolution"] == 16 and "channels" in pretrain.params


def test_shorthand_equals_explicit_form(tmp_path: Path) -> None:
    def explicit(data: dict[str, Any]) -> None:
        data["attacks"][0] = {"name": "none", "params": {}}
        data["encoders"] = [{"name": "simclr"}]

    explicit_path = write_variant(tmp_path, explicit)
    assert [t.trial_key for t in validate_suite(explicit_path).grid.trials] == [
        t.trial_key for t in validate_suite(MINIMAL).grid.trials
    ]


def test_from_yaml_is_load_suite() -> None:
    assert Suite.from_yaml(MINIMAL) == load_suite(MINIMAL)


def test_dataset_train_override_is_applied(tmp_path: Path) -> None:
    def override(data: dict[str, Any]) -> None:
        data["datasets"][0]["train"] = {"epochs": 3}

    trials = validate_suite(write_variant(tmp_path, override)).grid.trials
    assert {(t.train.epochs, t.train.batch_size) for t in trials} == {(3, 32)}


# -- malformed suites ------------------------------------------------------------------------
def test_there_are_enough_bad_suites() -> None:
    assert len(BAD_SUITES) >= 12


@pytest.mark.parametrize("path", bad_suite_params())
def test_bad_suite_is_one_line_naming_file_and_key(path: Path) -> None:
    key, fragment = expectation(path)
    with pytest.raises(SuiteError) as err:
        validate_suite(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    check_one_line(str(err.value), str(path), key, fragment)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SuiteError) as err:
        validate_suite(path)
    check_one_line(str(err.value), str(path), "", "no such suite file")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as err:
        validate_suite(tmp_path)
    check_one_line(str(err.value), str(tmp_path), "", "cannot read")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SuiteError) as err:
        validate_suite(path)
    check_one_line(str(err.value), str(path), "", "")


def test_plugin_module_with_multi_line_import_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pe_bench_test_broken_plugin.py").write_text(
        "raise RuntimeError('first line\\nsecond line')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_variant(tmp_path, lambda d: d.update(plugins=["pe_bench_test_broken_plugin"]))
    with pytest.raises(SuiteError) as err:
        validate_suite(path)
    check_one_line(str(err.value), str(path), "plugins[0]", "first line")


def test_several_errors_are_counted_on_one_line(tmp_path: Path) -> None:
    def break_twice(data: dict[str, Any]) -> None:
        data["train"] = {"epochs": 0, "lr": -1}

    path = write_variant(tmp_path, break_twice)
    with pytest.raises(SuiteError) as err:
        validate_suite(path)
    check_one_line(str(err.value), str(path), "train.epochs", "(and 1 more)")


# -- trial keys ------------------------------------------------------------------------------
def keys(path: Path) -> list[str]:
    return [t.trial_key for t in expand(load_suite(path)).trials]


def test_trial_keys_are_deterministic() -> None:
    first, second = keys(MINIMAL), keys(MINIMAL)
    assert first == second
    assert len(set(first)) == len(first) == 2
    assert all(re.fullmatch(r"[0-9a-f]{16}", k) for k in first)


def test_changing_a_param_changes_the_keys(tmp_path: Path) -> None:
    def rate(data: dict[str, Any]) -> None:
        data["attacks"][1]["params"]["poison_rate"] = 0.1

    def epochs(data: dict[str, Any]) -> None:
        data["train"]["epochs"] = 2

    base = keys(MINIMAL)
    changed_rate = keys(write_variant(tmp_path, rate, "rate.yaml"))
    assert changed_rate[0] == base[0]  # the `none` cell does not depend on the attack's params
    assert changed_rate[1] != base[1]
    assert set(keys(write_variant(tmp_path, epochs, "epochs.yaml"))).isdisjoint(base)


def test_default_written_out_gives_the_same_keys(tmp_path: Path) -> None:
    def explicit_default(data: dict[str, Any]) -> None:
        data["attacks"][1]["params"]["targets_per_task"] = 5  # TargetedParams' default
        data["train"]["lr"] = 1e-3  # TrainSpec's default

    assert keys(write_variant(tmp_path, explicit_default)) == keys(MINIMAL)


def test_suite_name_and_description_do_not_enter_the_key(tmp_path: Path) -> None:
    def rename(data: dict[str, Any]) -> None:
        data["name"] = "another-name"
        data["description"] = "same work"

    renamed = write_variant(tmp_path, rename)
    assert load_suite(renamed).name == "another-name"
    assert keys(renamed) == keys(MINIMAL)


def test_seed_changes_trial_key_but_not_cell_key(tmp_path: Path) -> None:
    trials = validate_suite(write_variant(tmp_path, lambda d: d.update(seeds=[0, 1]))).grid.trials
    by_attack: dict[str, list[Any]] = {}
    for t in trials:
        by_attack.setdefault(t.attack.name, []).append(t)
    for same_cell in by_attack.values():
        assert len({t.trial_key for t in same_cell}) == 2
        assert len({t.cell_key for t in same_cell}) == 1


def test_a_setting_may_bring_its_own_seeds(tmp_path: Path) -> None:
    """A setting's `seeds` replace the suite's for that setting only; the trials of a seed are
    the same (same keys) whichever list named it."""
    def two_settings(d: dict[str, Any]) -> None:
        d["seeds"] = [0, 1]
        d["datasets"] = [d["datasets"][0], {**d["datasets"][0], "name": "more", "seeds": [0, 1, 2, 3]}]
    grid = validate_suite(write_variant(tmp_path, two_settings)).grid
    seeds: dict[str, set[int]] = {}
    for t in grid.trials:
        seeds.setdefault(t.dataset, set()).add(t.seed)
    first = yaml.safe_load(MINIMAL.read_text(encoding="utf-8"))["datasets"][0]["name"]
    assert seeds == {first: {0, 1}, "more": {0, 1, 2, 3}}
    plain = validate_suite(write_variant(tmp_path, lambda d: d.update(seeds=[0, 1]), "plain.yaml")).grid
    assert {t.trial_key for t in plain.trials} <= {t.trial_key for t in grid.trials}


def test_each_encoder_brings_its_optimiser_unless_the_suite_sets_one(tmp_path: Path) -> None:
    def trains(extra: str) -> dict[str, tuple]:
        path = tmp_path / "opt.yaml"
        path.write_text(MINIMAL.read_text(encoding="utf-8").replace(
            "encoders: [simclr]", "encoders: [simclr, moco, clip]").replace(
            "train: {epochs: 1, batch_size: 32}", "train: {epochs: 1, batch_size: 32" + extra + "}"))
        grid = expand(load_suite(path))
        return {t.encoder.name: (t.train.optimizer, t.train.lr, t.train.weight_decay) for t in grid.trials}

    assert trains("") == {"simclr": ("adam", 1e-3, 1e-6), "moco": ("sgd", 0.06, 5e-4),
                          "clip": ("adamw", 5e-4, 0.2)}
    assert trains(", lr: 0.01")["moco"] == ("sgd", 0.01, 5e-4)


def test_union_pretraining_datasets_are_validated(tmp_path: Path) -> None:
    good = write_variant(tmp_path, lambda d: d["datasets"][0]["pretrain"].update(
        also=[{"name": "digits", "params": {"resolution": 16}}]), "good.yaml")
    (trial, *_) = expand(load_suite(good)).trials
    assert [r.name for r in trial.pretrain.refs()] == ["digits", "digits"]
    bad = write_variant(tmp_path, lambda d: d["datasets"][0]["pretrain"].update(also=["digitz"]), "bad.yaml")
    with pytest.raises(SuiteError) as err:
        load_suite(bad)
    check_one_line(str(err.value), str(bad), "datasets[0].pretrain.also[0].name", "did you mean 'digits'")


# -- the training recipe ---------------------------------------------------------------------
def test_recipe_precedence_suite_then_setting_then_method_defaults() -> None:
    suite = TrainSpec(epochs=5, lr=0.3)
    recipe = resolve_recipe(suite, {"epochs": 2, "weight_decay": 0.0},
                            {"optimizer": "sgd", "lr": 0.06, "weight_decay": 5e-4})
    # the setting overrides the suite; the method fills only what both left unset
    assert (recipe.epochs, recipe.optimizer, recipe.lr, recipe.weight_decay) == (2, "sgd", 0.3, 0.0)
    assert suite.epochs == 5 and suite.optimizer is None  # pure: its inputs are unchanged


@pytest.mark.parametrize(("changes", "defaults", "key"), [
    ({"epochs": 0}, {}, "epochs"),
    ({"epochz": 1}, {}, "epochz"),
    ({}, {"lr": -1.0}, "lr"),
    ({}, {"momentum": 0.9}, "momentum"),
])
def test_recipe_is_validated_whatever_its_source(changes: dict[str, Any], defaults: dict[str, Any],
                                                 key: str) -> None:
    with pytest.raises(ValidationError) as err:
        resolve_recipe(TrainSpec(), changes, defaults)
    assert err.value.errors()[0]["loc"] == (key,)


def test_replace_validates_where_model_copy_does_not() -> None:
    recipe = TrainSpec(epochs=10)
    assert recipe.replace(epochs=3) == TrainSpec(epochs=3) and recipe.epochs == 10
    assert recipe.model_copy(update={"epochs": 0}).epochs == 0  # what replace exists to prevent
    with pytest.raises(ValidationError):
        recipe.replace(epochs=0)
    with pytest.raises(ValidationError):
        recipe.replace(crop_mode="tight")


# -- --set overrides -------------------------------------------------------------------------
def test_overrides_change_the_suite_before_validation() -> None:
    base = load_suite(REPO / "suites" / "full.yaml")
    suite = load_suite(REPO / "suites" / "full.yaml", [
        "seeds=[0]", "train.epochs=2", "datasets.0.pretrain.max_images=200",
        "encoders.1.params={backbone: small-cnn}", "resources={cpu: 1}"])
    assert suite.seeds == (0,) and suite.train.epochs == 2 and suite.train.batch_size == 512
    assert suite.datasets[0].pretrain.max_images == 200 and suite.datasets[1].pretrain.max_images is None
    assert suite.encoders[1].params["backbone"] == "small-cnn"
    assert suite.encoders[0] == base.encoders[0]
    assert (suite.resources.cpu, suite.resources.gpu) == (1, 0)  # a replaced subtree takes defaults


def test_override_of_a_yaml_alias_changes_only_that_place() -> None:
    """full.yaml's two dataset settings share their task list through a YAML anchor."""
    suite = load_suite(REPO / "suites" / "full.yaml", ["datasets.0.tasks.0.train_size=100"])
    assert suite.datasets[0].tasks[0].train_size == 100
    assert suite.datasets[1].tasks[0].train_size is None


def test_overrides_apply_in_order_and_may_add_keys_the_file_omits() -> None:
    suite = load_suite(MINIMAL, ["train.epochs=4", "train.epochs=6", "evaluation.probe=mlp",
                                 "datasets.0.train={warmup_epochs: 1}"])
    assert suite.train.epochs == 6 and suite.evaluation.probe == "mlp"
    assert expand(suite).trials[0].train.warmup_epochs == 1


@pytest.mark.parametrize(("item", "key", "fragment"), [
    ("train.epochs=0", "--set train.epochs", "greater than or equal to 1 (got 0)"),
    ("train.epochz=1", "--set train.epochz", "Extra inputs are not permitted"),
    ("seeds=[0", "--set seeds", "invalid YAML value '[0'"),
    ("seeds", "--set seeds", "expected KEY.PATH=VALUE"),
    ("train..epochs=1", "--set train..epochs=1", "expected KEY.PATH=VALUE"),
    ("datasets.3.name=x", "--set datasets.3.name",
     "datasets has no item '3': address its 1 item by index 0..0"),
    ("datasets.first.name=x", "--set datasets.first.name", "datasets has no item 'first'"),
    ("seeds.0.x=1", "--set seeds.0.x", "seeds.0 is int 0, not a mapping or a list"),
    ("attacks.1.params.poison_rate=2", "--set attacks.1.params.poison_rate", "less than or equal to 1"),
    ("attacks=[nonee]", "--set attacks", "did you mean 'none'"),
    ("datasets.0.train={epochs: -1}", "--set datasets.0.train", "greater than or equal to 1"),
])
def test_bad_override_is_one_line_naming_it(item: str, key: str, fragment: str) -> None:
    with pytest.raises(SuiteError) as err:
        load_suite(MINIMAL, ["seeds=[0]", item])
    check_one_line(str(err.value), str(MINIMAL), key, fragment)


def test_error_outside_the_overrides_names_the_file_key(tmp_path: Path) -> None:
    bad = write_variant(tmp_path, lambda d: d["train"].update(epochs=0))
    with pytest.raises(SuiteError) as err:
        load_suite(bad, ["seeds=[1]", "train.batch_size=64"])
    check_one_line(str(err.value), str(bad), "train.epochs", "greater than or equal to 1")
