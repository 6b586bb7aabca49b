"""`exclude` rules may name an attack's params: one budget of an attack a suite runs at several
can be kept out of some cells (the defense matrix's low-rate cell meets the filters only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pe_bench.config.grid import expand
from pe_bench.config.suite import load_suite
from pe_bench.errors import SuiteError
from tests.helpers import tiny_suite

ATTACKS = "[{name: ssl-backdoor, params: {poison_rate: 0.1}}, {name: ssl-backdoor, params: {poison_rate: 0.01}}]"


def _grid(tmp_path: Path, exclude: str):
    path = tmp_path / "s.yaml"
    path.write_text(tiny_suite("s", ATTACKS, "[none, dedup]") + exclude, encoding="utf-8")
    return expand(load_suite(path))


def test_a_rule_with_attack_params_excludes_only_the_cells_holding_them(tmp_path: Path) -> None:
    grid = _grid(tmp_path, "exclude:\n  - {attack: ssl-backdoor, attack_params: {poison_rate: 0.01}, "
                           "defense: dedup, reason: low rate vs none only}\n")
    kept = {(t.attack.params["poison_rate"], t.defense.name) for t in grid.trials}
    assert kept == {(0.1, "none"), (0.1, "dedup"), (0.01, "none")}
    assert [e.reason for e in grid.excluded] == ["low rate vs none only"]


def test_attack_params_alone_make_a_rule_and_a_param_the_attack_lacks_matches_nothing(tmp_path: Path) -> None:
    grid = _grid(tmp_path, "exclude:\n  - {attack_params: {poison_rate: 0.1}}\n")
    assert {t.attack.params["poison_rate"] for t in grid.trials} == {0.01}
    grid = _grid(tmp_path, "exclude:\n  - {attack_params: {no_such_param: 1}}\n")
    assert len(grid.trials) == 4


def test_an_unknown_rule_key_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="attack_param"):
        _grid(tmp_path, "exclude:\n  - {attack_param: {poison_rate: 0.1}}\n")
