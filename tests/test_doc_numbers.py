"""Numbers the docs quote about the demo suite are the generated table's numbers.

The README's demo summary and the quick.md reading in docs/results/README.md quote hit counts
(`4/15`), intervals (`+0.067 [−0.267, +0.533]`) and accuracies from docs/results/quick.md, which
`pe-bench leaderboard --format md` generates; when code changes those numbers and the table is
regenerated, a stale quote fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "results" / "quick.md"
CONSTANTS = {"0.05", "2/32"}  # the significance level; the exact test's smallest p over 5 targets
QUOTED = re.compile(r"[+\-−]\d\.\d{3} \[[+\-−]\d\.\d{3}, [+\-−]\d\.\d{3}\]|\b\d+/\d+\b|\b0\.\d{3}\b")


def _normal(text: str) -> str:
    return text.replace("−", "-")


def _section(path: Path, start: str, end: str) -> str:
    text = path.read_text(encoding="utf-8")
    begin = text.index(start)
    return text[begin:text.index(end, begin)]


def _table_numbers() -> set[str]:
    """Every number of the generated table, also rounded to 2 digits (the docs quote
    accuracies and p-values that way too)."""
    text = _normal(TABLE.read_text(encoding="utf-8"))
    found = set(QUOTED.findall(text))
    found |= {f"{float(m):.2f}" for m in re.findall(r"\b(\d\.\d{3})\b", text)}
    return found


@pytest.mark.parametrize(("doc", "start", "end"), [
    ("README.md", "### What the demo shows", "## Everyday commands"),
    ("docs/results/README.md", "**digits** (1,347 unlabeled", "## encoders.md"),
])
def test_quoted_demo_numbers_are_in_the_generated_table(doc: str, start: str, end: str) -> None:
    quoted = _normal(_section(ROOT / doc, start, end))
    numbers = set(QUOTED.findall(quoted)) | set(re.findall(r"\b\d\.\d{2}\b", quoted))
    numbers -= CONSTANTS
    missing = sorted(n for n in numbers if n not in _table_numbers())
    assert not missing, f"{doc} quotes numbers quick.md does not hold: {missing}"
