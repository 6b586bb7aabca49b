"""The leaderboard's views: failed trials counted on every line, the one column table behind
every format, and a terminal table readable at 120 columns (synthetic rows, no Ray)."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from pe_bench.cli import main
from pe_bench.report.columns import BOARD, BY_KEY, COLUMNS, COMPACT, footnote
from pe_bench.report.leaderboard import Line, aggregate, from_store, sort_lines, to_markdown, to_rich
from pe_bench.store.results import append, build_row, latest_ok, scan
from tests.rows import CELLS, PROV, error_row, make_store, metrics, row, trial, typed

WIDTH = 120


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make_store's cells (one trial of the last `digits` cell only failed), plus an encoder
    and a defense with long names."""
    return make_store(tmp_path_factory.mktemp("store"), cells=[*CELLS[:2], CELLS[-1]], seeds=3)


@pytest.fixture(scope="module")
def lines(store: Path) -> list[Line]:
    return from_store(store)


def render(lines: list[Line], columns: tuple = ()) -> str:
    console = Console(width=WIDTH, record=True, file=io.StringIO())
    console.print(to_rich(lines, "pe-bench leaderboard: unit", columns or None, WIDTH))
    return console.export_text()


# -- failed trials ------------------------------------------------------------------------------------
def test_each_line_counts_the_trials_of_its_cell_that_only_failed(tmp_path: Path) -> None:
    for seed in range(3):
        append(tmp_path, row(seed, [True]))
    append(tmp_path, error_row(3))  # failed, never retried
    append(tmp_path, error_row(4, age_s=9))
    append(tmp_path, row(4, [False], age_s=1))  # failed, then retried successfully
    append(tmp_path, error_row(0, age_s=1))  # a failed rerun of a trial that has an ok row
    other = ("duplicate", {"selection": "random"}, "none", {})
    append(tmp_path, error_row(0, cell=other))  # another cell: every trial failed
    append(tmp_path, error_row(1, cell=other))
    got = {ln.attack: ln for ln in from_store(tmp_path)}
    assert (got["poisoned-encoder"].seeds, got["poisoned-encoder"].failed) == (4, 1)
    assert (got["duplicate"].seeds, got["duplicate"].failed) == (0, 2)
    assert got["duplicate"].stats["pa"] is None and got["duplicate"].intervals["delta_asr"] is None
    md = to_markdown(list(got.values()), "t")
    assert "| digits | simclr | digits | duplicate | targeted | random | none | - | 0* | 2 | - | - |" in md


def test_only_an_effect_escapes_the_not_significant_flag(tmp_path: Path) -> None:
    """Ten seeds of twelve pairs: `poisoned-encoder` hits every target its clean twin misses (a
    large effect); `duplicate` hits as often as its twin, on other pairs (no effect). Ten seeds,
    because the test is over seeds and Holm doubles the smaller p of two lines: six could never
    pass (2/64 x 2 > 0.05)."""
    from datetime import UTC, datetime

    from pe_bench.store.results import build_row
    from tests.rows import PROV, task, trial, trial_metrics

    effect, null = CELLS[1], ("duplicate", CELLS[1][1], "none", {})
    some = [i % 2 == 0 for i in range(12)]
    others = [not h for h in some]
    for seed in range(10):
        swap = (others, some) if seed % 2 else (some, others)
        for cell, hits, clean in ((effect, [True] * 12, [False] * 12), (null, *swap)):
            metrics = trial_metrics([task("digits", hits, hits_clean=clean)])
            append(tmp_path, build_row(trial(seed=seed, cell=cell), "run1", PROV, datetime.now(UTC), metrics))
    board = to_markdown(from_store(tmp_path), "t").splitlines()
    header = next(ln for ln in board if ln.startswith("| dataset |")).split(" | ")
    column = header.index("ΔASR [95% CI]")
    (attacked,), (same,) = ([ln.split(" | ")[column] for ln in board if f"| {attack} |" in ln]
                            for attack in ("poisoned-encoder", "duplicate"))
    assert attacked.startswith("+1.000") and "n.s." not in attacked
    assert "n.s." in same


def test_the_cli_shows_failed_counts_in_every_format(store: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["leaderboard", "--store", str(store), "--format", "csv"]) == 0
    records = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(int(r["failed"]) for r in records) == [0] * (len(records) - 1) + [1]
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    assert main(["leaderboard", "--store", str(store), "--columns", "dataset,attack,defense,failed"]) == 0
    out = capsys.readouterr().out
    assert out.count(" 1\n") == 1 and "failed" in out


# -- one column table -----------------------------------------------------------------------------------
def test_every_format_reads_the_column_table(lines: list[Line]) -> None:
    md = to_markdown(lines, "t")
    assert md.splitlines()[2] == "| " + " | ".join(c.header for c in BOARD) + " |"
    assert md.rstrip().endswith(footnote(BOARD))
    assert all(c.note in footnote(BOARD) for c in BOARD)
    keys = [c.key for c in COLUMNS]
    assert len(keys) == len(set(keys))
    for line in lines:  # every aggregated value a column declares is on the line
        assert set(line.stats) == {c.key for c in COLUMNS if c.stat}
        assert set(line.intervals) == {c.key for c in COLUMNS if c.paired or c.per_seed or c.versus}


def test_the_per_seed_and_pair_tables_pick_from_the_one_column_table() -> None:
    """One record per column: the per-seed and defense-pairs tables show columns of `TABLE`
    (shared ones, like the setting's names and ASR, are the board's own entries), and the
    leaderboard's columns are the table's that a line has."""
    from pe_bench.report import defense_pairs, per_seed
    from pe_bench.report.columns import TABLE

    for view in (per_seed.COLUMNS, defense_pairs.COLUMNS):
        assert all(any(c is t for t in TABLE) for c, _ in view)
    seed_keys = [c.key for c, _ in per_seed.COLUMNS]
    assert {"dataset", "attack", "asr", "ca", "delta_asr"} <= set(seed_keys) & set(BY_KEY)
    assert {c.key for c, _ in defense_pairs.COLUMNS} & set(BY_KEY) == {"dataset", "encoder", "task",
                                                                        "attack", "seeds"}
    assert COLUMNS == tuple(c for c in TABLE if c.line)


def test_sort_keys_are_the_columns(lines: list[Line]) -> None:
    by_failed = sort_lines(lines, "-failed")
    assert by_failed[0].failed == 1
    asr = [ln.stats["asr"][0] for ln in sort_lines(lines, "-asr") if ln.stats["asr"]]
    assert asr == sorted(asr, reverse=True)


def test_columns_picks_and_unknown_names_are_one_line_errors(store: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["leaderboard", "--store", str(store)]
    assert main([*argv, "--format", "csv", "--columns", "attack, pa,failed"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "attack,PA,failed"
    assert main(["leaderboard", "--store", str(store), "--columns", "attack,asrr"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("pe-bench: error: --columns: unknown column 'asrr' (did you mean 'asr'?)")
    assert main(["leaderboard", "--list-columns"]) == 0
    listed = capsys.readouterr().out
    assert all(c.key in listed for c in COLUMNS)


# -- the terminal at 120 columns ---------------------------------------------------------------------------
def test_the_default_terminal_view_is_compact_and_cuts_nothing(lines: list[Line]) -> None:
    text = render(lines)
    assert "…" not in text and max(len(t) for t in text.splitlines()) <= WIDTH
    head = text.splitlines()
    assert "encoder simclr/small-cnn" in " ".join(head[:3])  # constant: lifted into the title
    for column in COMPACT:
        values = {column.cell(ln) for ln in lines}
        if column.lift and len(values) == 1 and column.key != "encoder":
            assert f"{column.header} {values.pop()}" in " ".join(head[:3])
        elif column.identity:  # names are never wrapped or cut
            assert column.header in text and all(v in text for v in values), column.key
    assert "poison recall" not in text  # not in the default set


def test_long_names_wrap_but_are_never_cut(tmp_path: Path) -> None:
    """An encoder and a defense far too long for 120 columns: wrapped, every character kept."""
    long_defense = ("prune-with-a-very-long-name-indeed", {"threshold_for_the_pruning_rule": 0.123456})
    cells = [("poisoned-encoder", {"selection": "random"}, *long_defense),
             ("poisoned-encoder", {"selection": "random"}, "none", {})]
    store = make_store(tmp_path, cells=cells, seeds=1)
    for spec_seed in range(2):  # a second encoder, so the encoder column stays in the table
        r = row(spec_seed, [True])
        r.update(encoder="simsiam-with-an-even-longer-name-than-the-defense", encoder_label=None)
        append(store, r)
    text = render(from_store(store))
    assert "…" not in text and max(len(t) for t in text.splitlines()) <= WIDTH
    name = "simsiam-with-an-even-longer-name-than-the-defense"
    assert folded_cell(text, name[:7]) == name  # folded across lines, never shortened


def folded_cell(text: str, start: str) -> str:
    """The cell beginning with `start`, read down its column until the next table row (the
    columns to its left, here single-line, start a new row) or a blank piece."""
    rows = text.splitlines()
    i = next(k for k, r in enumerate(rows) if start in r)
    j = rows[i].index(start)
    end = j + len(rows[i][j:].split()[0])
    pieces = [rows[i][j:end].strip()]
    for r in rows[i + 1:]:
        if r[:j].strip() or not r[j:end].strip():
            break
        pieces.append(r[j:end].strip())
    return "".join(pieces)


def test_the_cli_uses_the_terminal_width(store: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    assert main(["leaderboard", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and max(len(t) for t in out.splitlines()) <= WIDTH
    assert "ΔASR vs clean twin" in out and "--columns all" in out  # the default: the matrix board
    assert main(["leaderboard", "--store", str(store), "--columns", "all"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and "ΔASR [95% CI]" in out and "poison AUROC" in out


def test_defense_columns_only_when_a_line_has_a_defense(lines: list[Line]) -> None:
    undefended = [ln for ln in lines if ln.defense == "none"]
    chosen = tuple(c for c in COLUMNS if c.key in ("attack", "delta_asr_defense"))
    assert "ΔASR vs none" in render(lines, chosen)
    assert all(c.cell(ln) == "-" for ln in undefended for c in COLUMNS if c.defense_only)


# -- statistics on the board --------------------------------------------------------------------------------
def redrawn(r: dict, seed: int) -> dict:
    """`r` with its target pairs moved to indices of its own seed (targets drawn per seed)."""
    for t in r["tasks"]:
        for x in t["targets"]:
            x["index"] += 100 * seed
    return r


def attacked(seed: int, hits: list[bool], attack: str = "poisoned-encoder", **kw: object) -> dict:
    cell = (attack, {"selection": "random", "poison_rate": 0.05}, "none", {})
    started = datetime.now(UTC)
    return build_row(trial(seed=seed, cell=cell), "run1", PROV, started, metrics(hits, **kw))


def test_no_order_of_the_rows_changes_the_board(store: Path) -> None:
    rows = latest_ok(scan(store))
    first = aggregate(rows)
    for k in range(3):
        shuffled = rows[:]
        random.Random(k).shuffle(shuffled)
        again = aggregate(shuffled)
        assert [(ln.intervals, ln.stats, ln.distinct_pairs) for ln in again] == \
               [(ln.intervals, ln.stats, ln.distinct_pairs) for ln in first]
        assert to_markdown(again, "t") == to_markdown(first, "t")


def test_each_line_counts_its_distinct_target_pairs() -> None:
    (same,) = aggregate(typed(row(s, [True, False]) for s in range(3)))
    (fresh,) = aggregate(typed(redrawn(row(s, [True, False]), s) for s in range(3)))
    assert (same.pairs, same.distinct_pairs, fresh.distinct_pairs) == (6, 2, 6)
    assert "| 6 (2) |" in to_markdown([same], "t") and "| 6 (6) |" in to_markdown([fresh], "t")
    assert same.intervals["delta_asr"].units == fresh.intervals["delta_asr"].units == 3  # seeds


def test_the_flag_reads_the_holm_adjusted_exact_test() -> None:
    """6 seeds, each hitting fresh targets its twin misses: exact p = 2/2^6 (flagged alone); two
    such lines on one board: Holm doubles both to 1/16 (n.s.)."""
    one = [redrawn(row(s, [True, True]), s) for s in range(6)]
    (alone,) = aggregate(typed(one))
    ci = alone.intervals["delta_asr"]
    assert ci.p == pytest.approx(1 / 32) and ci.p_adjusted == pytest.approx(1 / 32) and ci.significant
    assert "n.s." not in BY_KEY["delta_asr"].cell(alone) and BY_KEY["p_delta_asr"].cell(alone) == "0.031"
    two = aggregate(typed([*one, *(redrawn(attacked(s, [True, True], "duplicate"), s) for s in range(6))]))
    for line in two:
        assert line.intervals["delta_asr"].p_adjusted == pytest.approx(1 / 16)
        assert BY_KEY["delta_asr"].cell(line).endswith(" n.s.")


def test_attacks_compare_pair_by_pair_and_pa_against_the_twin(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    for s in range(3):
        append(tmp_path, redrawn(attacked(s, [True, True, False], pa=0.85, ca=0.9), s))
        append(tmp_path, redrawn(attacked(s, [False, False, False], "duplicate"), s))
    lines = {ln.attack: ln for ln in from_store(tmp_path, versus="duplicate")}
    versus = lines["poisoned-encoder"].intervals["delta_asr_versus"]
    assert versus.mean == pytest.approx(2 / 3) and versus.units == 3 and versus.p == pytest.approx(0.25)
    assert lines["duplicate"].intervals["delta_asr_versus"] is None
    pa = lines["poisoned-encoder"].intervals["delta_pa"]
    assert pa.mean == pytest.approx(-0.05) and pa.units == 3 and pa.p == pytest.approx(0.25)
    assert main(["leaderboard", "--store", str(tmp_path), "--versus", "duplicate", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "ΔASR vs other [95% CI]" in md and "other = duplicate" in md and "+0.667 [" in md
    assert main(["leaderboard", "--store", str(tmp_path), "--versus", "dupe"]) == 2
    assert "--versus: no lines of attack 'dupe'" in capsys.readouterr().err
    text = render(from_store(tmp_path, versus="duplicate"))
    assert "ΔASR vs other" in text and max(len(t) for t in text.splitlines()) <= WIDTH


def test_a_line_without_an_attack_is_no_test(lines: list[Line]) -> None:
    """The `none` lines compare the twin with itself: no test, none in Holm's family. ΔPA is in no
    default family (exploratory); ΔASR of the undefended attacked lines is `attack-effect`."""
    for line in lines:
        assert (line.intervals["delta_pa"] is None) == (line.attack == "none")
        assert line.attack != "none" or line.intervals["delta_asr"] is None
    attacked = [ln for ln in lines if ln.attack != "none"]
    assert all(ln.intervals["delta_pa"].verdict == "exploratory" for ln in attacked)
    tested = [ln.intervals["delta_asr"] for ln in attacked if ln.defense == "none" and ln.intervals["delta_asr"]]
    assert tested and all(ci.family == "attack-effect" for ci in tested)
    smallest = min(tested, key=lambda ci: ci.p)
    assert smallest.p_adjusted == pytest.approx(min(1.0, len(tested) * smallest.p))


def test_footnote_says_each_note_once_even_inside_a_longer_one() -> None:
    """ΔASR's note holds Δp's (plus the backdoor sentence): the legend says it once."""
    text = footnote([BY_KEY["delta_asr"], BY_KEY["delta_p"], BY_KEY["delta_pa"]])
    assert text.count("Δ = vs the paired clean twin per target pair") == 1
    assert "backdoor lines" in text and "ΔPA = PA - CA" in text
