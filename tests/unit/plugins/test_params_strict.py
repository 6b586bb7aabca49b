"""Plugin params are strict (issue 21, point 6b): no bool or string is taken for a number, and
every rejection names the value it got; YAML's lists still fill tuple fields and ints float
fields, and every plugin's params survive the JSON round trip that carries them to workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, ValidationError

from pe_bench.config.suite import load_suite
from pe_bench.errors import SuiteError
from pe_bench.plugins.registry import REGISTRIES
from pe_bench.plugins.types import PluginParams

SUITE = """\
name: strict
seeds: [0]
datasets:
  - name: digits
    pretrain: {{dataset: digits}}
    tasks: [{{name: digits, dataset: digits}}]
encoders: [simclr]
attacks: [{attack}]
defenses: [{defense}]
"""


def _load(tmp_path: Path, attack: str = "none", defense: str = "none") -> Any:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(attack=attack, defense=defense), encoding="utf-8")
    return load_suite(path)


def _error(tmp_path: Path, **axes: str) -> str:
    with pytest.raises(SuiteError) as err:
        _load(tmp_path, **axes)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("attack", "key", "got"), [
    ('{name: duplicate, params: {poison_rate: "0.1"}}', "attacks[0].params.poison_rate", "(got '0.1')"),
    ("{name: duplicate, params: {poison_rate: false}}", "attacks[0].params.poison_rate", "(got False)"),
    ("{name: duplicate, params: {targets_per_task: true}}", "attacks[0].params.targets_per_task",
     "(got True)"),
    ('{name: duplicate, params: {targets_per_task: "5"}}', "attacks[0].params.targets_per_task", "(got '5')"),
    ("{name: duplicate, params: {targets_per_task: 2.0}}", "attacks[0].params.targets_per_task", "(got 2.0)"),
], ids=["string-rate", "bool-rate", "bool-int", "string-int", "float-int"])
def test_no_coercion_to_numbers(tmp_path: Path, attack: str, key: str, got: str) -> None:
    message = _error(tmp_path, attack=attack)
    assert key in message and got in message, message


def test_a_bool_fraction_of_a_defense_is_rejected(tmp_path: Path) -> None:
    message = _error(tmp_path, defense="{name: knn-density, params: {remove_fraction: false}}")
    assert "defenses[0].params.remove_fraction" in message and "(got False)" in message


@pytest.mark.parametrize(("attack", "key", "got"), [
    ("{name: ssl-backdoor, params: {poison_range: [0.1]}}", "poison_range[1]", "too few items (got [0.1])"),
    ("{name: ssl-backdoor, params: {poison_range: [0.1, 0.2, 0.3]}}", "poison_range",
     "(got [0.1, 0.2, 0.3])"),
    ("{name: ssl-backdoor, params: {poison_range: 0.5}}", "poison_range", "(got 0.5)"),
    ("{name: noisy-alignment, params: {layouts: [left, up]}}", "layouts[1]", "(got 'up')"),
])
def test_rejected_lists_say_what_they_got(tmp_path: Path, attack: str, key: str, got: str) -> None:
    message = _error(tmp_path, attack=attack)
    assert f"attacks[0].params.{key}:" in message and got in message, message


def test_lists_fill_tuples_and_ints_fill_floats(tmp_path: Path) -> None:
    suite = _load(tmp_path, attack="{name: ssl-backdoor, params: {poison_range: [0, 1], poison_rate: 1}}")
    params = suite.attacks[0].params
    assert params["poison_range"] == [0.0, 1.0] and params["poison_rate"] == 1.0
    model = REGISTRIES["attacks"].params_model("ssl-backdoor")
    assert model.model_validate(params).poison_range == (0.0, 1.0)


def test_third_party_params_are_strict_too() -> None:
    class Mine(PluginParams):
        ratio: float = Field(0.5, ge=0, le=1)
        sizes: tuple[int, ...] | None = None

    assert Mine.model_validate({"ratio": 1, "sizes": [1, 2]}).sizes == (1, 2)
    for bad in ({"ratio": "0.5"}, {"ratio": True}, {"sizes": ["1"]}):
        with pytest.raises(ValidationError):
            Mine.model_validate(bad)


def test_every_plugin_default_survives_the_json_round_trip() -> None:
    """What a worker re-validates is `model_dump(mode="json")`: lists for tuples."""
    checked = 0
    for registry in REGISTRIES.values():
        for name in registry.names():
            model = registry.params_model(name)
            try:
                params = model()
            except ValidationError:  # needs params naming its files
                continue
            assert model.model_validate(json.loads(params.model_dump_json())) == params, name
            checked += 1
    assert checked > 20
