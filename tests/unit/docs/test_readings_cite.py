"""Readings that cannot over-claim: every sentence of docs/results/README.md (and the README's demo
summary) that says an effect is supported, absent or separated cites a declared comparison, and
each citation says what the generated board says.

A citation names a matrix cell of a generated table and the mark the board gives it (a verdict
the matrix does not show, e.g. utility, names its small table, row and column instead:
`[defenses-matrix-clip.md: digits · clip/small-cnn · backdoor: utility | carlini-terzis | roclip |
ΔPA vs none [95% CI] | supported]`):
`[quick.md: digits · simclr/small-cnn · targeted | none | poisoned-encoder | ns]` = in quick.md,
the matrix headed `## digits · simclr/small-cnn · targeted: ΔASR vs clean twin`, row `none`,
column `poisoned-encoder`, mark `ns` (✓ supported, ns not supported, ? exploratory, = no test).
A declared defense pair cites its pair table's row and the verdict of its ΔASR (A - B):
`[defenses-matrix-pairs.md: corrupt-encoder(rate=0.1) | knn-density | patchsearch | supported]`.
Tables generated before the matrix board (the calibrations, whose 3 seeds can support nothing)
are not matrix boards: their readings make no verdict claim, and a claim there fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "docs" / "results"
CITATION = re.compile(r"\[([\w-]+\.md): ([^|\]]+?) \| ([^|\]]+?) \| ([^|\]]+?) \| (✓|ns|\?|=)\]")
# a verdict the matrix does not show (utility): [table: setup: utility | attack | defense | column | verdict]
TABLED = re.compile(r"\[([\w-]+\.md): ([^|\]]+?): (utility|effect) \| ([^|\]]+?) \| ([^|\]]+?) \| "
                    r"([^|]+?) \| (supported|n\.s\.|exploratory)\]")
# a declared defense pair's verdict in a pair table: [table-pairs.md: attack | A | B | verdict]
PAIRED = re.compile(r"\[([\w-]+-pairs\.md): ([^|\]]+?) \| ([^|\]]+?) \| ([^|\]]+?) \| (supported|n\.s\.|exploratory)\]")
CLAIM = re.compile(r"\b(supported|no (measurable )?effect|not told apart|told apart|separat\w*|"
                   r"remov(?:es|ed) (?:it|the effect|an effect)|absent)\b", re.I)
MARKS = {"✓", "ns", "?", "="}


def _readings() -> list[tuple[str, str]]:
    """(where, text) of each published reading: docs/results/README.md's sections of tables not
    withdrawn, and the README's demo summary."""
    text = (RESULTS / "README.md").read_text(encoding="utf-8")
    parts = [p for p in re.split(r"^## ", text, flags=re.M)[1:]
             if re.match(r"[\w-]+\.md", p) and "(withdrawn" not in p.split("\n", 1)[0]]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    demo = readme[readme.index("### What the demo shows"):readme.index("## Everyday commands")]
    return [(p.split(":", 1)[0], p) for p in parts] + [("README.md demo summary", demo)]


def _sentences(text: str) -> list[str]:
    """The text's sentences, each withdrawn reading quoted by name ("...") left out: a retraction
    quotes the claim it withdraws, it does not make it."""
    flat = re.sub(r"\s+", " ", re.sub(r'"[^"]*"', '""', text))
    return [s for s in re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<=[.;])\s+(?=[A-Z`(*\[-])|\s+-\s+", flat) if s.strip()]


def _cell(table: str, setup: str, defense: str, attack: str) -> str:
    """The mark of a matrix cell of a generated table (AssertionError naming what is missing)."""
    text = (RESULTS / table).read_text(encoding="utf-8")
    heads = [m for m in re.finditer(rf"^## {re.escape(setup)}: ΔASR vs clean twin.*$", text, re.M)]
    assert heads, f"{table} has no matrix for {setup!r}"
    for head in heads:
        rows = [ln for ln in text[head.end():].split("\n\n", 2)[1].splitlines() if ln.startswith("|")]
        header = [c.strip() for c in rows[0].strip("|").split("|")]
        for row in rows[2:]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            if cells[0] == defense and attack in header:
                value = cells[header.index(attack)]
                found = [m for m in MARKS if value.split(" (")[0].endswith(" " + m)]
                return found[0] if found else ""
    raise AssertionError(f"{table}: no cell {defense!r} × {attack!r} under {setup!r}")


def _tabled(table: str, setup: str, kind: str, attack: str, defense: str, column: str) -> str:
    """The verdict of an interval cell of a small table (`utility`, `effect`): its flag."""
    text = (RESULTS / table).read_text(encoding="utf-8")
    head = re.search(rf"^## {re.escape(setup)}: {kind}$", text, re.M)
    assert head, f"{table} has no {kind} table for {setup!r}"
    rows = [ln for ln in text[head.end():].split("\n\n", 2)[1].splitlines() if ln.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert column in header, f"{table}: no column {column!r} in {kind} of {setup!r}"
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[:2] == [attack, defense]:
            value = cells[header.index(column)]
            return "n.s." if value.endswith(" n.s.") else "exploratory" if value.endswith(" expl.") else "supported"
    raise AssertionError(f"{table}: no row {attack!r} × {defense!r} in {kind} of {setup!r}")


def _paired(table: str, attack: str, first: str, second: str) -> str:
    """The verdict of the ΔASR of one defense pair of a pair table (its one row of that attack)."""
    rows = [ln for ln in (RESULTS / table).read_text(encoding="utf-8").splitlines() if ln.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    column = next(h for h in header if h.startswith("ΔASR (A - B)"))
    found = [cells for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows[2:])
             if cells[header.index("attack")] == attack and cells[header.index("A")] == first
             and cells[header.index("B")] == second]
    assert len(found) == 1, f"{table}: {len(found)} rows of {attack!r} with A {first!r}, B {second!r}"
    value = found[0][header.index(column)]
    return "n.s." if value.endswith(" n.s.") else "exploratory" if value.endswith(" expl.") else "supported"


def test_a_paired_citation_says_what_the_pair_table_says() -> None:
    found = [m.groups() for _, text in _readings() for m in PAIRED.finditer(text)]
    assert found, "no reading cites a declared defense pair"
    for table, attack, first, second, verdict in found:
        assert _paired(table, attack, first, second) == verdict, (table, attack, first, second)


def test_a_tabled_citation_says_what_the_table_says() -> None:
    found = [m.groups() for _, text in _readings() for m in TABLED.finditer(text)]
    assert found, "no reading cites a small table's verdict"
    for table, setup, kind, attack, defense, column, verdict in found:
        assert _tabled(table, setup, kind, attack, defense, column) == verdict, (table, setup, attack, defense)


def _citations() -> list[tuple[str, tuple[str, ...]]]:
    return [(where, m.groups()) for where, text in _readings() for m in CITATION.finditer(text)]


def test_the_readings_cite_at_all() -> None:
    assert _citations(), "no reading cites the board"


@pytest.mark.parametrize(("where", "cited"), _citations(), ids=lambda v: v if isinstance(v, str) else "|".join(v))
def test_a_citation_says_what_the_board_says(where: str, cited: tuple[str, ...]) -> None:
    table, setup, defense, attack, mark = cited
    assert (RESULTS / table).is_file(), f"{where} cites {table}, which docs/results lacks"
    assert _cell(table, setup, defense, attack) == mark, f"{where}: the board does not mark {cited} {mark!r}"


def test_every_claim_cites_a_declared_comparison() -> None:
    bare = [f"{where}: {s[:120]}" for where, text in _readings() for s in _sentences(text)
            if CLAIM.search(s) and not (CITATION.search(s) or TABLED.search(s) or PAIRED.search(s))]
    assert not bare, "claims without a citation of the board:\n" + "\n".join(bare)


def test_a_claim_of_support_cites_a_supported_cell() -> None:
    """`supported` is said only of a ✓ cell; an exploratory cell is never called supported."""
    for where, text in _readings():
        for s in _sentences(text):
            marks = [m.group(5) for m in CITATION.finditer(s)]
            if re.search(r"\bis supported\b", s):
                assert "✓" in marks, f"{where}: {s[:120]}"


def test_the_checker_sees_an_uncited_claim_and_a_wrong_mark() -> None:
    claim = "PoisonedEncoder is supported on digits."
    assert CLAIM.search(claim) and not CITATION.search(claim)
    assert [CLAIM.search(s) for s in _sentences(claim)] != [None]
    assert [CLAIM.search(s) for s in _sentences(f'Withdrawn: "{claim}"')] == [None]  # quoted: retracted
    table, setup, defense, attack, mark = _citations()[0][1]
    assert all(_cell(table, setup, defense, attack) != m for m in MARKS - {mark})
