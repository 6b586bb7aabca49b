"""A small suite's `evidence`: which named suite tests each of its declared comparisons at more
seeds (pe_bench.config.evidence). Matching is by cell_key and declared family; a named suite
that tests none of them is an error (tests/fixtures/suites/bad/evidence_*.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pe_bench.api import validate_suite
from pe_bench.config import evidence
from pe_bench.errors import SuiteError

REPO = Path(__file__).resolve().parents[3]

SMALL: dict[str, Any] = {
    "name": "small", "seeds": [0, 1], "train": {"epochs": 1, "batch_size": 32},
    "datasets": [{"name": "digits", "pretrain": {"dataset": "digits"},
                  "tasks": [{"name": "digits", "dataset": "digits"}]}],
    "encoders": ["simclr"],
    "attacks": [{"name": "poisoned-encoder", "params": {"poison_rate": 0.05}}],
    "defenses": ["none", "dedup"],
}


def write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def big(**change: Any) -> dict[str, Any]:
    return {**SMALL, "name": "big", "seeds": [0, 1, 2, 3, 4, 5], **change}


def test_each_comparison_names_the_suite_and_family_that_tests_it(tmp_path: Path) -> None:
    write(tmp_path, "big", big())
    plan = validate_suite(write(tmp_path, "small", {**SMALL, "evidence": ["big.yaml"]}))
    found = {(t.comparison.test, t.suite, t.family, t.seeds) for t in plan.evidence}
    assert found == {("vs-twin", "big.yaml", "attack-effect", 6), ("vs-none", "big.yaml", "defense-effect", 6)}
    line = evidence.closing_line(plan.suite, plan.grid, list(plan.evidence))
    assert "poisoned-encoder vs its clean twin (digits, simclr) in big.yaml (attack-effect, 6 seeds)" in line
    assert "by none" not in line


def test_a_comparison_the_named_suite_leaves_exploratory_is_not_tested_there(tmp_path: Path) -> None:
    # the big suite declares only the defense's family: its attack-vs-twin line is exploratory
    write(tmp_path, "big", big(comparisons=[{"family": "defenses", "test": "vs-none"}]))
    plan = validate_suite(write(tmp_path, "small", {**SMALL, "evidence": ["big.yaml"]}))
    assert [(t.comparison.test, t.family) for t in plan.evidence] == [("vs-none", "defenses")]
    line = evidence.closing_line(plan.suite, plan.grid, list(plan.evidence))
    assert line.endswith("by none of the suites named (big.yaml): poisoned-encoder vs its clean twin "
                         "(digits, simclr)")


@pytest.mark.parametrize("change", [{"seeds": [0, 1]},  # as many seeds: no more power
                                    {"train": {"epochs": 2, "batch_size": 32}},  # another cell
                                    {"attacks": [{"name": "poisoned-encoder", "params": {"poison_rate": 0.1}}]}],
                         ids=["same-seeds", "other-recipe", "other-params"])
def test_a_suite_testing_nothing_at_more_seeds_is_an_error(tmp_path: Path, change: dict[str, Any]) -> None:
    write(tmp_path, "big", big(**change))
    path = write(tmp_path, "small", {**SMALL, "evidence": ["big.yaml"]})
    with pytest.raises(SuiteError, match=r"evidence\[0\]: big.yaml tests none"):
        validate_suite(path)


def test_overrides_that_change_the_cells_are_no_error(tmp_path: Path) -> None:
    write(tmp_path, "big", big())
    plan = validate_suite(write(tmp_path, "small", {**SMALL, "evidence": ["big.yaml"]}), ["train.epochs=3"])
    assert plan.evidence == ()
    line = evidence.closing_line(plan.suite, plan.grid, [])
    assert line.startswith("tested at more seeds: by none of the suites named (big.yaml): ")


@pytest.mark.parametrize("name", ["demo", "demo-clip"])
def test_the_demo_names_where_each_of_its_comparisons_is_tested(name: str) -> None:
    plan = validate_suite(REPO / "suites" / f"{name}.yaml")
    own = evidence.comparisons(plan.suite, plan.grid)
    assert plan.evidence and {t.comparison.label for t in plan.evidence} == {c.label for c in own}
    assert all(t.seeds >= 6 > len(plan.suite.seeds) for t in plan.evidence)


def test_the_store_keeps_the_latest_evidence_line_without_a_redeclaration(tmp_path: Path) -> None:
    from pe_bench.store import declarations

    first = declarations.record(tmp_path, "small", (), evidence="tested at more seeds: a in big.yaml")
    assert first.evidence == "tested at more seeds: a in big.yaml" and not first.changes
    (tmp_path / "suite=small" / "run=r").mkdir(parents=True)
    (tmp_path / "suite=small" / "run=r" / "row.parquet").write_bytes(b"")
    again = declarations.record(tmp_path, "small", (), evidence="tested at more seeds: b in big.yaml")
    assert again.evidence == "tested at more seeds: b in big.yaml"
    assert again.changes == 0 and again.results_before == 0  # no family changed: not re-declared


def test_a_named_suite_whose_family_cannot_support_it_is_said_so(tmp_path: Path) -> None:
    """More seeds than the small suite, but still too few for its family: 3 seeds cannot go below
    p = 0.25, so the line must not suggest the named suite supports anything."""
    write(tmp_path, "big", big(seeds=[0, 1, 2]))
    plan = validate_suite(write(tmp_path, "small", {**SMALL, "evidence": ["big.yaml"]}))
    assert plan.evidence and all(t.floor >= 0.05 for t in plan.evidence)
    line = evidence.closing_line(plan.suite, plan.grid, list(plan.evidence))
    assert ("in big.yaml (attack-effect, 3 seeds; but 1 comparison there: Holm cannot go below 0.25, "
            "so it cannot be supported there either)") in line
