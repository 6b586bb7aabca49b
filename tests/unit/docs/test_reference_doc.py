"""docs/results/reference.md names pe-bench cells beside published numbers: each named cell must
resolve to a table in docs/results that holds it, unless the reference says it is pending."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results"
REFERENCE = RESULTS / "reference.md"
# `[table.md](table.md) · dataset · attack · params`, the form the page's cell column uses
CELL = re.compile(r"\[([\w-]+\.md)\]\(([\w-]+\.md)\) · ([\w-]+) · ([\w-]+) · ")


def _cell_rows() -> list[str]:
    """The rows of the page's "Nearest pe-bench cells" table."""
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split("## Nearest pe-bench cells", 1)[1]
    return [line for line in section.splitlines() if line.startswith("| `") or line.startswith("| every")]


def test_the_reference_page_names_cells_at_all() -> None:
    rows = _cell_rows()
    assert rows and all(CELL.search(r) or "pending" in r for r in rows), rows
    assert any(CELL.search(r) and "pending" not in r for r in rows), "no measured cell is named"


@pytest.mark.parametrize("row", _cell_rows())
def test_a_named_cell_resolves_to_a_table_that_holds_it(row: str) -> None:
    for match in CELL.finditer(row):
        shown, target, dataset, attack = match.groups()
        assert shown == target, f"link text {shown} points at {target}"
        table = RESULTS / target
        if "pending" in row:
            continue  # a table being built (suites/attacks.yaml) or re-measured
        assert table.is_file(), f"reference.md names {target}, which docs/results lacks (mark it pending)"
        text = table.read_text(encoding="utf-8")
        # the matrix board names its setup in each section's heading (`## dataset · encoder ...`,
        # `· task name ·`); a wide line table (--columns all) in a column
        named = (f"| {dataset} |" in text or f"## {dataset} · " in text or f" · task {dataset} · " in text)
        assert named, f"{target} holds no dataset or task {dataset!r}"
        # a table names an attack alone or with the params that tell its settings apart
        assert f"| {attack} |" in text or f"| {attack}(" in text, f"{target} holds no attack {attack!r}"


def test_a_row_without_a_named_table_is_pending() -> None:
    for row in _cell_rows():
        if not CELL.search(row):
            assert "pending" in row, row


def test_the_page_quotes_no_measured_numbers() -> None:
    """Measured numbers live in the generated tables; a copy here would go stale."""
    section = REFERENCE.read_text(encoding="utf-8").split("## Nearest pe-bench cells", 1)[1]
    assert not re.findall(r"\b0\.\d{3}\b|[+\-−]\d\.\d{3}|\b\d+/\d+\b", section)
