"""Comparisons declared before the run: one adjusted p per comparison wherever it is shown.

The family a p-value is corrected over comes from the suite's declaration recorded in the store
(pe_bench.store.declarations), never from which lines a table holds: another suite in the store,
a restriction to one suite, or a second table leave it unchanged; what no family covers is
exploratory (unadjusted, never supported); a run cannot silently change its declaration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pe_bench.cli import main
from pe_bench.report.leaderboard import aggregate, from_store
from pe_bench.store.declarations import DEFAULT, Family, read, record
from pe_bench.store.results import append, latest_ok, scan
from pe_bench.errors import PeBenchError
from tests.rows import backdoor_row

FILTER = ("dedup", {})


def _suite(store: Path, suite: str, effect: int, seeds: int = 6, first: int = 0) -> None:
    """A backdoor cell (hits `effect` above the twin at every seed) and a filter under it."""
    for seed in range(first, first + seeds):
        append(store, backdoor_row(seed, hits=20 + effect + seed, hits_clean=20, suite=suite))
        append(store, backdoor_row(seed, hits=20 + seed % 2, hits_clean=20, suite=suite, defense=FILTER,
                                   hooks="sanitize", undefended=20 + effect + seed))


def _delta(lines: list, suite: str, defense: str = "none", key: str = "delta_asr"):  # type: ignore[no-untyped-def]
    found = [ln.intervals[key] for ln in lines if ln.suites == (suite,) and ln.defense == defense]
    assert len(found) == 1
    return found[0]


def test_a_comparison_keeps_its_p_whatever_else_the_table_holds(tmp_path: Path) -> None:
    _suite(tmp_path, "a", effect=10)
    alone = _delta(from_store(tmp_path, "a"), "a")
    assert alone.family == "attack-effect" and alone.verdict == "supported"
    _suite(tmp_path, "b", effect=1, first=6)  # the same cells at other seeds, by another suite
    both = from_store(tmp_path)  # all suites: a cell run by both is one line of both suites' rows
    assert any(len(ln.suites) == 2 for ln in both)
    assert all(ln.intervals["delta_asr"] is None or ln.intervals["delta_asr"].family is None
               for ln in both if len(ln.suites) > 1)  # a line of two suites' rows: exploratory
    again = _delta(from_store(tmp_path, "a"), "a")
    assert (again.p, again.p_adjusted, again.verdict) == (alone.p, alone.p_adjusted, alone.verdict)


def test_holm_runs_within_each_declared_family_only(tmp_path: Path) -> None:
    _suite(tmp_path, "a", effect=10)
    rows = latest_ok(scan(tmp_path))
    lines = aggregate(rows)  # DEFAULT: attack-effect (1 comparison), defense-effect (1)
    effect, defended = _delta(lines, "a"), _delta(lines, "a", "dedup", "delta_asr_defense")
    assert effect.p_adjusted == effect.p and defended.p_adjusted == defended.p  # alone in its family
    assert defended.family == "defense-effect"
    assert _delta(lines, "a", "dedup").verdict == "exploratory"  # ΔASR vs twin of a defended line
    one = (Family(family="all", test="vs-twin"),)
    undeclared = aggregate(rows, families=lambda _: one)
    assert _delta(undeclared, "a", "dedup", "delta_asr_defense").verdict == "exploratory"
    assert _delta(undeclared, "a", "dedup", "delta_asr_defense").p_adjusted is None


def test_exploratory_is_never_supported_however_small_its_p(tmp_path: Path) -> None:
    _suite(tmp_path, "a", effect=30, seeds=8)
    lines = aggregate(latest_ok(scan(tmp_path)), families=lambda _: ())
    ci = _delta(lines, "a")
    assert ci.p is not None and ci.p < 0.01 and ci.verdict == "exploratory"
    assert ci.p_adjusted is None and ci.family is None


def test_one_run_alone_is_a_partial_board(tmp_path: Path) -> None:
    _suite(tmp_path, "a", effect=10)
    ci = _delta(from_store(tmp_path, "a", run="run1"), "a")
    assert ci.verdict == "exploratory"


def test_a_run_records_its_families_and_refuses_other_ones(tmp_path: Path) -> None:
    declared = (Family(family="effect", test="vs-twin"),)
    first = record(tmp_path, "s", declared)
    assert first.recorded and not first.defaults and first.results_before == 0
    assert "recorded before the run" in first.note()
    assert record(tmp_path, "s", declared) == first  # the same again: nothing changes
    _suite(tmp_path, "s", effect=1, seeds=1)
    with pytest.raises(PeBenchError, match="declares other families than those recorded"):
        record(tmp_path, "s", ())
    changed = record(tmp_path, "s", (), redeclare=True)
    assert changed.defaults and changed.families == DEFAULT and changed.changes == 1
    assert changed.results_before == 2 and "re-declared 1 time(s) after results existed" in changed.note()
    unrecorded = read(tmp_path, "other")
    assert not unrecorded.recorded and unrecorded.families == DEFAULT and "not recorded" in unrecorded.note()


def test_the_board_reads_the_recorded_families_and_says_where_they_come_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _suite(tmp_path, "a", effect=10)
    record(tmp_path, "a", (Family(family="defenses", test="vs-none"),))
    lines = from_store(tmp_path, "a")
    assert _delta(lines, "a").verdict == "exploratory"  # attack vs twin: not declared by this suite
    assert _delta(lines, "a", "dedup", "delta_asr_defense").family == "defenses"
    assert main(["leaderboard", "--store", str(tmp_path), "--suite", "a", "--format", "md",
                 "--columns", "all"]) == 0
    md = capsys.readouterr().out
    assert "comparisons: declared families (defenses), recorded after 12 result rows existed" in md
    assert " expl." in md


def test_a_family_narrowed_by_encoder_reads_the_plugin_name_not_the_board_label(tmp_path: Path) -> None:
    _suite(tmp_path, "a", effect=10)
    rows = latest_ok(scan(tmp_path))
    simclr = (Family(family="simclr-only", test="vs-twin", encoders=("simclr",)),)
    moco = (Family(family="moco-only", test="vs-twin", encoders=("moco",)),)
    assert _delta(aggregate(rows, families=lambda _: simclr), "a").family == "simclr-only"
    assert _delta(aggregate(rows, families=lambda _: moco), "a").verdict == "exploratory"


def test_a_family_narrowed_by_params_tests_one_setting_and_leaves_the_other_exploratory(tmp_path: Path) -> None:
    """The primary comparison of a suite running one attack at two budgets: only the setting
    holding the family's params is corrected and can be supported."""
    for seed in range(6):
        for rate in (0.05, 0.1):
            append(tmp_path, backdoor_row(seed, hits=40 + seed, hits_clean=20, suite="a",
                                          attack_params={"poison_rate": rate, "target_class": 0}))
    primary = (Family(family="primary", test="vs-twin", attack_params={"poison_rate": 0.1}),)
    lines = aggregate(latest_ok(scan(tmp_path)), families=lambda _: primary)
    by_rate = {ln.attack_params: ln.intervals["delta_asr"] for ln in lines if ln.attack != "none"}
    assert len(by_rate) == 2
    tested = [ci for params, ci in by_rate.items() if '"poison_rate": 0.1' in params]
    other = [ci for params, ci in by_rate.items() if '"poison_rate": 0.05' in params]
    assert tested[0].family == "primary" and tested[0].verdict == "supported"
    assert other[0].family is None and other[0].verdict == "exploratory"


def test_a_record_from_before_params_filters_reads_as_the_same_declaration(tmp_path: Path) -> None:
    import json

    declared = (Family(family="effect", test="vs-twin"),)
    path = record(tmp_path, "s", declared) and tmp_path / "_declarations" / "s.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    for f in data["families"]:
        f.pop("attack_params"), f.pop("defense_params")
    path.write_text(json.dumps(data), encoding="utf-8")
    _suite(tmp_path, "s", effect=1, seeds=1)
    assert record(tmp_path, "s", declared).changes == 0  # no refusal, no re-declaration


def test_a_new_description_or_evidence_line_is_kept_and_is_no_redeclaration(tmp_path: Path) -> None:
    declared = (Family(family="effect", test="vs-twin"),)
    record(tmp_path, "s", declared, description="first words")
    _suite(tmp_path, "s", effect=1, seeds=1)
    again = record(tmp_path, "s", declared, evidence="tested elsewhere", description="better words")
    assert (again.description, again.evidence, again.changes) == ("better words", "tested elsewhere", 0)


@pytest.mark.parametrize("tied", [3, 0])
def test_the_board_names_a_comparison_whose_untied_seeds_cannot_reach_the_level(tmp_path: Path, tied: int) -> None:
    """A seed whose encoder ties its twin drops out of the exact test: 5 untied seeds of 8 leave
    p no lower than 2/2^5 >= 0.05, though 8 seeds would allow 2/2^8, and the seeds note says so."""
    from pe_bench.report.board import load

    for seed in range(8):
        append(tmp_path, backdoor_row(seed, hits=20 if seed < tied else 30 + seed, hits_clean=20, suite="a"))
    board = load(tmp_path, "a")
    effect = _delta(list(board.lines), "a")
    assert (effect.units, effect.untied) == (8, 8 - tied)
    named = "in family attack-effect, ssl-backdoor on "
    assert (named in board.seeds_note) == (tied == 3), board.seeds_note
    if tied:
        assert effect.verdict == "n.s." and "(5 of 8 seeds untied)" in board.seeds_note
    else:
        assert effect.verdict == "supported"
