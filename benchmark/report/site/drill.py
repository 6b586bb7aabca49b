"""A matrix cell's drill-down: the intervals its line carries (ΔASR vs the clean twin and, for a
defense, vs no defense: mean, 95% interval, raw and adjusted p, seeds, family, verdict) and the
per-seed lines of its trials (pe_bench.report.per_seed), as stored. A seed line belongs to a
line when its row is of the line's cell (`cell_key`: every setting but the seed) and its view
is the line's task."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from pe_bench.report.lines import Line, SeedLine
from pe_bench.report.matrix import effect_cell, setup_of
from pe_bench.report.per_seed import COLUMNS
from pe_bench.report.site.markup import link, table, text
from pe_bench.report.stats import Interval

INTERVALS = (("delta_asr", "ΔASR vs clean twin"),
             ("delta_asr_defense", "ΔASR vs no defense (same seed)"))
HEAD = ("comparison", "mean", "95% interval", "p", "p adjusted (Holm)", "seeds", "family", "verdict")
IDENTITY = frozenset({"dataset", "encoder", "task", "attack", "family", "defense"})  # in the title
Columns = Sequence[tuple[str, Callable[[SeedLine], str]]]


class SeedIndex:
    """The suite's per-seed lines, found by the line whose cell and task they are."""

    def __init__(self, seeds: Iterable[SeedLine]) -> None:
        self._by: dict[tuple[str, str], list[SeedLine]] = {}
        for s in seeds:
            self._by.setdefault((s.row.cell_key, s.view.task), []).append(s)

    def of(self, line: Line) -> list[SeedLine]:
        return self._by.get((line.cell_key, line.task), [])


def columns(line: Line) -> Columns:
    """The per-seed table's columns (pe_bench.report.per_seed.COLUMNS) a cell's drill-down shows:
    not those its title names, the undefended encoder's only under a defense."""
    return [(view.header or column.header, view.cell) for column, view in COLUMNS
            if column.key not in IDENTITY and (line.defense != "none" or not view.defense_only)]


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def interval_row(label: str, ci: Interval) -> tuple[str, ...]:
    """One comparison as the line carries it (nothing recomputed, only formatted)."""
    return (label, f"{ci.mean:+.3f}", f"[{ci.low:+.3f}, {ci.high:+.3f}]", _p(ci.p), _p(ci.p_adjusted),
            str(ci.units), ci.family or "none (exploratory)", ci.verdict)


def _title(line: Line) -> str:
    where = " · ".join(setup_of(line))
    return f"{line.attack_label or line.attack} under {line.defense_label or line.defense} · {where}"


def _meta(line: Line, back: str) -> str:
    failed = f", {line.failed} failed trial(s)" if line.failed else ""
    few = "" if line.published else " (fewer than 3: not a published line)"
    return (f'<p class="meta">matrix cell {text(effect_cell(line))}; {line.seeds} seed(s){few}{failed}; '
            f"{link('#' + back, 'close')}</p>")


def section(line: Line, anchor: str, back: str, found: Sequence[SeedLine]) -> str:
    """The drill-down of `line` (id `anchor`, hidden until targeted), closed by a link to `back`."""
    tests = [interval_row(label, ci) for key, label in INTERVALS if (ci := line.intervals.get(key))]
    intervals = (table(HEAD, tests, "intervals", "the cell's comparisons") if tests
                 else '<p class="note">no interval: the line carries none</p>')
    if found:
        shown = columns(line)
        seeds = table([h for h, _ in shown], [[cell(s) for _, cell in shown] for s in found], "seeds",
                      "per seed: the latest ok row of each trial, on this task")
    else:
        seeds = '<p class="note">no per-seed numbers: no trial of this cell has an ok row</p>'
    return (f'<section class="drill" id="{text(anchor)}"><h3>{text(_title(line))}</h3>'
            f"{_meta(line, back)}{intervals}{seeds}</section>")
