"""pe_bench.report.references is docs/results/reference.md's "Published headlines" table as
typed rows: every row there is a row of the page, cell for cell, and the page has no row the
module lacks (so the published site cannot quote a number the page does not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pe_bench.report.references import REFERENCES, Reference, of_attacks

PAGE = Path(__file__).resolve().parents[3] / "docs" / "results" / "reference.md"


def _page_rows() -> list[tuple[str, ...]]:
    """The cells of each row of the page's "Published headlines" table."""
    section = PAGE.read_text(encoding="utf-8").split("## Published headlines", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [tuple(cell.strip() for cell in line.strip().strip("|").split(" | ")) for line in rows]


def _as_page_row(ref: Reference) -> tuple[str, ...]:
    attack = f"`{ref.attack}`" + (f" {ref.variant}" if ref.variant else "")
    return (attack, ref.paper, ref.setting, ref.budget, ref.ca, ref.metric, ref.source)


def test_the_page_table_is_read_at_all() -> None:
    rows = _page_rows()
    assert len(rows) >= 10 and all(len(r) == 7 for r in rows), rows


@pytest.mark.parametrize("ref", REFERENCES, ids=lambda r: f"{r.attack} {r.variant}".strip())
def test_every_module_row_is_a_row_of_the_page(ref: Reference) -> None:
    assert _as_page_row(ref) in _page_rows()


def test_the_module_holds_every_row_of_the_page_in_its_order() -> None:
    assert [_as_page_row(ref) for ref in REFERENCES] == _page_rows()


def test_rows_are_found_by_attack_name() -> None:
    found = of_attacks(["ssl-backdoor", "no-such-attack"])
    assert [r.variant for r in found] == ["", "(as a defense's baseline)", "(as a baseline)"]
    assert of_attacks([]) == []
