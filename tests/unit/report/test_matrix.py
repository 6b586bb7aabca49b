"""The default board a reader gets: per setup an attack × defense matrix of the effect with the
verdict marks its lines already carry, then small tables; at most 12 columns per table, a legend
of at most five lines, nothing broken or cut at 120 columns, nothing recomputed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from pe_bench.cli import main
from pe_bench.report import matrix
from pe_bench.report.leaderboard import aggregate, from_store
from pe_bench.store.results import append, latest_ok, scan
from tests.rows import backdoor_row, make_store

WIDTH = 120


def _backdoor_store(store: Path, rates: int = 1, seeds: int = 6) -> Path:
    """Backdoors at `rates` poison rates (one matrix column each), undefended and under a filter
    that removes the effect, and a detector (changes no encoder)."""
    for r in range(rates):
        params = {"poison_rate": round(0.01 * (r + 1), 2), "target_class": 0}
        for seed in range(seeds):
            hits = 40 + seed
            append(store, backdoor_row(seed, hits=hits, hits_clean=5, attack_params=params))
            append(store, backdoor_row(seed, hits=5, hits_clean=5, attack_params=params,
                                       defense=("dedup", {}), hooks="sanitize", undefended=hits))
            append(store, backdoor_row(seed, hits=hits, hits_clean=5, attack_params=params,
                                       defense=("decree", {}), hooks="score_encoder", undefended=hits))
    return store


def _render(tables: list[matrix.Table]) -> str:
    console = Console(width=WIDTH, file=io.StringIO(), record=True)
    console.print(matrix.to_rich(tables, "board", WIDTH))
    return console.export_text()


def test_the_matrix_marks_read_the_lines_verdicts(tmp_path: Path) -> None:
    lines = from_store(_backdoor_store(tmp_path))
    (table,) = matrix.effect_matrices(lines)
    assert table.headers == ("defense", "ssl-backdoor")
    cells = {row[0]: row[1] for row in table.rows}
    undefended = next(ln for ln in lines if ln.defense == "none" and ln.attack != "none")
    assert cells["none"] == f"{undefended.intervals['delta_asr'].mean:+.2f} ✓"  # attack-effect: supported
    assert cells["dedup"].endswith(" ✓")  # defense-effect: removed it, supported
    assert cells["decree"].endswith(" =")  # a detector: no test
    exploratory = matrix.effect_matrices(aggregate(latest_ok(scan(tmp_path)), families=lambda _: ()))
    assert all(row[1].endswith(" ?") or row[1].endswith(" =") for row in exploratory[0].rows)


def test_every_table_has_at_most_twelve_columns_and_a_wide_matrix_splits(tmp_path: Path) -> None:
    lines = from_store(_backdoor_store(tmp_path, rates=14, seeds=2))
    tables = matrix.board(lines)
    assert all(len(t.headers) <= matrix.MAX_COLUMNS for t in tables)
    effects = [t for t in tables if "ΔASR vs clean twin" in t.title]
    assert len(effects) == 2 and "(1/2)" in effects[0].title
    assert sum(len(t.headers) - 1 for t in effects) == 14  # every attack setting once
    assert all(row[1].endswith("(2)") for row in effects[0].rows)  # 2 seeds: marked as too few


def test_the_board_fits_120_columns_with_a_short_legend(tmp_path: Path) -> None:
    make_store(tmp_path / "a")
    text = _render(matrix.board(from_store(tmp_path / "a")))
    assert "…" not in text and max(len(t) for t in text.splitlines()) <= WIDTH
    assert len(matrix.LEGEND) <= 5 and all(len(line) < WIDTH for line in matrix.LEGEND)
    assert "docs/metrics.md" in matrix.LEGEND[-1]


def test_the_markdown_board_is_the_default_and_the_detail_is_one_flag_away(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _backdoor_store(tmp_path)
    assert main(["leaderboard", "--store", str(store), "--format", "md"]) == 0
    md = capsys.readouterr().out
    tables = [ln for ln in md.splitlines() if ln.startswith("|---")]
    assert tables and all(ln.count("---|") <= matrix.MAX_COLUMNS for ln in tables)
    assert "## digits · simclr · backdoor: ΔASR vs clean twin" in md
    assert "## digits · simclr · backdoor: detection" not in md  # no line has a detection number
    assert md.rstrip().endswith(matrix.LEGEND[-1])
    assert main(["leaderboard", "--store", str(store), "--format", "md", "--columns", "all"]) == 0
    wide = capsys.readouterr().out
    assert "p ΔASR" in wide and "poison AUROC" in wide


def test_the_board_says_what_its_seeds_can_support(tmp_path: Path) -> None:
    from pe_bench.report.board import load

    six = load(_backdoor_store(tmp_path / "six"))
    assert six.seeds_note == "seeds: 6 seeds per line; the exact test's smallest p over 6 seeds is 0.0312, before Holm"
    three = load(_backdoor_store(tmp_path / "three", seeds=3))
    assert "cannot go below p = 0.25, so no comparison on this board can be supported" in three.seeds_note
    assert three.seeds_note in three.source()


def test_a_cell_with_failed_trials_says_so(tmp_path: Path) -> None:
    from tests.rows import make_store

    lines = from_store(make_store(tmp_path))  # its last cell has one trial that only failed
    rows = [row for t in matrix.board(lines) if t.title.endswith(": effect") for row in t.rows]
    assert any("(1 failed)" in cell for row in rows for cell in row)


def test_in_a_backdoor_only_grid_the_twins_own_lines_join_the_backdoor_setup(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from pe_bench.store.results import build_row
    from tests.rows import CELLS, PROV, _random_metrics, trial

    store = _backdoor_store(tmp_path, seeds=3)
    for seed in range(3):
        spec = trial(seed=seed, cell=CELLS[0])  # attack none, filed as targeted
        append(store, build_row(spec, "run1", PROV, datetime.now(UTC), _random_metrics(["digits"], seed, CELLS[0])))
    lines = from_store(store)
    groups = matrix.setups(lines)
    assert [setup[3] for setup in groups] == ["backdoor"]  # no setup holds the twins alone
    assert any(ln.attack == "none" for ln in next(iter(groups.values())))
    utility = next(t for t in matrix.board(lines) if t.title.endswith(": utility"))
    assert utility.rows[0][:2] == ("none", "none")


def test_the_board_names_a_family_too_large_for_its_seeds(tmp_path: Path) -> None:
    """Two comparisons at 6 seeds: the exact test's best p, 2/64, times 2 is above 0.05, so Holm
    can support neither; the seeds note says so for each such family."""
    from pe_bench.report.board import load

    board = load(_backdoor_store(tmp_path, rates=2, seeds=6))
    for family in ("attack-effect", "defense-effect"):
        assert (f"in family {family} (2 comparisons) Holm cannot go below 2 × 0.0312 = 0.0625, so none of "
                "them can be supported") in board.seeds_note
    assert not any(ci.verdict == "supported" for ln in board.lines for ci in ln.intervals.values() if ci)
