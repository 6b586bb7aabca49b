"""The board: built once, from one read of the store, and what every view renders.

A `Board` holds the typed lines (each cell's estimate, interval, raw and adjusted p, family and
verdict, seeds, distinct targets, failed trials: pe_bench.report.lines.Line) and what the board
says about where they come from (runs and commits, the comparison families, plugins at several
versions). The terminal, Markdown and CSV boards, the matrix (pe_bench.report.matrix), the figure
and the published site render from it; none aggregates rows or computes a statistic itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pe_bench.errors import PeBenchError
from pe_bench.report.leaderboard import aggregate, labels_note, sort_lines, store_families
from pe_bench.report.lines import Line
from pe_bench.store.declarations import ALPHA, Declaration, closed, holm_floor
from pe_bench.store import declarations, versions
from pe_bench.store.schema import TrialRow


@dataclass(frozen=True)
class Board:
    """A store's board (one suite / run when given)."""

    title: str
    lines: tuple[Line, ...]
    rows: tuple[TrialRow, ...]  # the latest ok row per trial: what the lines aggregate
    comparisons: str  # where the families its verdicts are corrected over come from
    mixed: tuple[str, ...]  # plugins its rows record at several versions
    evidence: str = ""  # which suites test its comparisons at more seeds (a suite's `evidence`)
    description: str = ""  # what its suites are, as their runs recorded their `description`

    def source(self, command: str = "pe-bench leaderboard --format md") -> str:
        """What its suites are, which runs and commits it comes from, what its labels leave out,
        the comparisons note and what its seeds can support (Markdown's head)."""
        from pe_bench.store.results import source_note

        return "\n\n".join(p for p in (self.description, source_note(self.rows, command), self.labels,
                                        self.comparisons, self.seeds_note, self.evidence) if p)

    @property
    def labels(self) -> str:
        """What the lines' labels leave out: the params most settings of a plugin share."""
        return labels_note(self.lines)

    @property
    def seeds_note(self) -> str:
        """What the board's seeds can support: the exact sign-flip test over n seeds cannot go
        below p = 2/2^n (pe_bench.report.stats), before any multiplicity correction."""
        counts = [ln.seeds for ln in self.lines if ln.attack != "none" and ln.seeds > 0]
        if not counts:
            return ""
        n, most = min(counts), max(counts)
        floor = 2 / 2 ** n
        seeds = f"{n} seeds per line" if n == most else f"{n} to {most} seeds per line"
        if floor >= ALPHA:
            return (f"seeds: {seeds}; an exact test over {n} seeds cannot go below p = {floor:.3g}, so no "
                    "comparison on this board can be supported, however large its effect")
        closed_families = self._closed_families()
        tied = self._tied_out({(suites, family) for suites, family, _, _ in closed_families})
        return f"seeds: {seeds}; the exact test's smallest p over {n} seeds is {floor:.3g}, before Holm" + "".join(
            f"; in family {family} ({m} comparisons) {text}, so none of them can be supported"
            for _, family, m, text in closed_families) + (
            "; a seed whose two encoders tie drops out of the exact test, and with 5 or fewer untied "
            "seeds a comparison cannot be supported: " + "; ".join(tied) if tied else "")

    def _tied_out(self, closed_families: set[tuple[tuple[str, ...], str]]) -> list[str]:
        """The declared comparisons whose untied seeds k leave the exact test no p below 2/2^k
        < ALPHA (k <= 5) where their n seeds would have (n >= 6), outside the families already
        too large to support anything: "in family F, what (k of n seeds untied)"."""
        out = []
        for ln in self.lines:
            where = ln.encoder + (f" · task {ln.task}" if ln.task != ln.dataset else "")
            for key, ci in ln.intervals.items():
                if (ci is None or ci.family is None or (ln.suites, ci.family) in closed_families or ci.untied is None
                        or not holm_floor(1, ci.untied) >= ALPHA > holm_floor(1, ci.units)):
                    continue
                attack = ln.attack_label or ln.attack
                what = f"{ln.defense_label or ln.defense} under {attack}" if key.endswith("_defense") else attack
                out.append(f"in family {ci.family}, {what} on {where} ({ci.untied} of {ci.units} seeds untied)")
        return out

    def _closed_families(self) -> list[tuple[tuple[str, ...], str, int, str]]:
        """The declared families of the board's lines too large for their seeds: m comparisons whose
        best exact p is 2/2^n cannot pass Holm's first step (m · 2/2^n) at ALPHA. (suites, family,
        m, why)."""
        units: dict[tuple[tuple[str, ...], str], list[int]] = {}
        for ln in self.lines:
            for ci in ln.intervals.values():
                if ci is not None and ci.family is not None and ci.p is not None:
                    units.setdefault((ln.suites, ci.family), []).append(ci.units)
        found = [(suites, family, len(u), closed(len(u), max(u))) for (suites, family), u in sorted(units.items())]
        return [(suites, family, m, text) for suites, family, m, text in found if text]


def comparisons_note(records: dict[str, Declaration], run: str | None) -> str:
    """Where the board's families come from, per suite (`records`: its suites' declarations;
    one run alone: exploratory only)."""
    if run is not None:
        return "comparisons: one run of a suite is a partial board: every p is unadjusted and exploratory"
    if len(records) == 1:
        return next(iter(records.values())).note()
    return "; ".join(f"{s}: {d.note()}" for s, d in records.items()) or "comparisons: none"


def load(store: str | Path, suite: str | None = None, run: str | None = None, versus: str | None = None,
         sort: str | None = None) -> Board:
    """Read the store once and build its board: lines corrected within each suite's recorded
    families (pe_bench.store.declarations), `versus` columns, ordered by `sort` if given."""
    from pe_bench.store.results import failed_trials, latest_ok, no_ok_rows, scan

    table = scan(Path(store), suite, run)
    rows = latest_ok(table)
    lines = aggregate(rows, failed_trials(table), versus, store_families(store), run is not None)
    if not lines:
        raise no_ok_rows(store, suite)
    if versus and not any(ln.attack == versus for ln in lines):
        raise PeBenchError(f"--versus: no lines of attack {versus!r} in store {str(store)!r}")
    if sort:
        lines = sort_lines(lines, sort)
    title = (f"pe-bench leaderboard: {suite or 'all suites'}" + (f", run {run}" if run else "")
             + (f", other = {versus}" if versus else ""))
    records = {s: declarations.read(store, s) for s in sorted({r.suite for r in rows})}
    return Board(title, tuple(lines), tuple(rows), comparisons_note(records, run),
                 tuple(versions.mixed(r.plugin_versions for r in rows)), evidence_note(records),
                 description_note(records))


def description_note(records: dict[str, Declaration]) -> str:
    """Each suite's recorded description ("suite NAME: ..."), or "" where none is recorded."""
    return "; ".join(f"suite {s}: {d.description}" for s, d in records.items() if d.description)


def evidence_note(records: dict[str, Declaration]) -> str:
    """Per suite that names `evidence`, the suites testing its comparisons at more seeds (as its
    latest run recorded them: pe_bench.store.declarations)."""
    found = [(s, d.evidence) for s, d in records.items() if d.evidence]
    return "; ".join(f"{s}: {e}" if len(records) > 1 else e for s, e in found)
