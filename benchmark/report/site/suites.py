"""What each suite's page is built from, read from the store once per suite: its rows (every
run, ok and error), the latest ok row per trial, the trials that only failed, the leaderboard
lines (built once, corrected within the suite's recorded families), the per-seed lines, the
trade-off figure and the note on where its comparisons come from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from pe_bench.report.leaderboard import aggregate, store_families
from pe_bench.report.lines import Line, SeedLine
from pe_bench.report.per_seed import seed_lines
from pe_bench.store.schema import TrialRow


@dataclass(frozen=True)
class SuiteReport:
    """One suite as the published files show it."""

    name: str
    rows: list[TrialRow]  # every row of the suite: all runs, ok and error
    used: list[TrialRow]  # the latest ok row per trial: what the lines aggregate
    lines: list[Line]
    figure: bytes | None  # PNG
    notes: list[str]  # lines the figure leaves out, and why
    failed: tuple[TrialRow, ...] = ()  # the latest error row of each trial without an ok row
    comparisons: str = ""  # where the families come from (pe_bench.store.declarations)
    seeds: tuple[SeedLine, ...] = ()  # one per (trial, task) of `used`
    evidence: str = ""  # the suites testing its comparisons at more seeds (its `evidence`)
    description: str = ""  # the suite's description, as its last run recorded it

    @property
    def seed_values(self) -> list[int]:
        return sorted({row.seed for row in self.used})

    @property
    def run_ids(self) -> list[str]:
        return sorted({row.run_id for row in self.rows})


def collect(store: str | Path, suite: str | None = None) -> list[SuiteReport]:
    """One report per suite in the store (or just `suite`) with ok rows, figures rendered in
    memory; `no_ok_rows` when there is none."""
    from pe_bench.report.plot.figure import figure, png_bytes, points
    from pe_bench.store import declarations
    from pe_bench.store.results import all_rows, failed_trials, latest_ok, no_ok_rows, scan

    table = scan(Path(store))
    names = [suite] if suite else sorted(set(table.column("suite").to_pylist()))
    families = store_families(store)
    reports = []
    for name in names:
        part = table.filter(pc.equal(table["suite"], name))
        used = latest_ok(part)
        if not used:
            continue
        failed = failed_trials(part)
        lines = aggregate(used, failed, families=families)
        pts, notes = points(used, lines)  # the figure reads these lines: nothing aggregated twice
        png = png_bytes(figure(pts, f"{name}: attack success vs accuracy")) if pts else None
        declared = declarations.read(store, name)
        reports.append(SuiteReport(name, all_rows(part), used, lines, png, notes, tuple(failed),
                                   declared.note(), tuple(seed_lines(used)), declared.evidence,
                                   declared.description))
    if not reports:
        raise no_ok_rows(store, suite)
    return reports
