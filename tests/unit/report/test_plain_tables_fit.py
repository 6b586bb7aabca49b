"""`--by-seed` and `--defense-pairs` in a terminal: no cell is ever wrapped or cut. Columns that
hold one value go into the title; a table still too wide is split into stacked tables, each
repeating the rows' identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from pe_bench.report import defense_pairs, per_seed
from pe_bench.store.results import append, latest_ok, scan
from tests.rows import backdoor_row, make_store

LONG = ("conservative-crop", {"min_scale": 0.5, "mode": "independent"})


def _render(renderable: object, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_every_per_seed_cell_is_whole_on_one_line(tmp_path: Path, width: int) -> None:
    rows = latest_ok(scan(make_store(tmp_path / "s", seeds=3)))
    lines = per_seed.seed_lines(rows)
    text = _render(per_seed.to_rich(lines, "t", width), width)
    assert max(len(ln) for ln in text) <= width
    headers, cells = per_seed._cells(lines)
    for row in cells:
        for value in row:
            assert any(value in ln for ln in text), value
    assert sum("seed" in ln.split() for ln in text) >= 1  # the identity is repeated in each part


def test_every_pair_cell_is_whole_on_one_line(tmp_path: Path) -> None:
    for seed in range(3):
        append(tmp_path, backdoor_row(seed, hits=40 + seed, hits_clean=5, defense=LONG))
        append(tmp_path, backdoor_row(seed, hits=10, hits_clean=5, defense=("dedup", {"min_count": 10})))
    lines = defense_pairs.pair_lines(latest_ok(scan(tmp_path)))
    text = _render(defense_pairs.to_rich(lines, "t", 120), 120)
    assert max(len(ln) for ln in text) <= 120
    _, cells = defense_pairs._cells(lines)
    for value in (v for row in cells for v in row):
        assert any(value in ln for ln in text), value
