"""Leaderboards generated from the results store: aggregate over seeds, render, never hand-edit.

One line per (cell, task): the cell is every setting but the seed (its `cell_key`); a suite with
several downstream tasks gets a line per task plus an `all` line (CA/PA averaged over tasks,
ASR pooled over every target pair). Metrics are mean ± std over seeds (sample std, n-1); ASR is
also shown as successes / target pairs. Lines with fewer than 3 seeds are marked `*`: not
enough for a published table. Effects are read per target pair against the paired clean twin:
Δp = p(target) − clean p(target) and ΔASR = hit − clean hit, averaged per seed, each with a 95%
Student-t interval over seeds and an exact sign-flip test over seeds whose p-value is Holm-adjusted
over the board's lines (pe_bench.report.stats, pe_bench.report.pairing); `n.s.` marks an adjusted p >= 0.05.
Each line counts its distinct target pairs (task, index, target class) beside its pairs, and the
trials of its cell that only failed; a backdoor line (no target pairs) reads its ΔASR per seed. `versus=`
adds attack-vs-attack deltas. What a line holds and how every format shows it is in pe_bench.report.columns.
Rows come in as the store's validated models (pe_bench.store.results), read through their
per-task views (pe_bench.report.lines.TaskView).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pe_bench.errors import PeBenchError
from pe_bench.report.labels import settings_of, usual_note, varying
from pe_bench.report.columns import BOARD, BY_KEY, COLUMNS, COMPACT, SORTABLE, VERSUS_SHOWN, Column, footnote
from pe_bench.report.lines import MIN_SEEDS, Line, Member, task_views
from pe_bench.store.declarations import DEFAULT, Family
from pe_bench.report.pairing import Families, compare, correct, line_intervals, outcomes
from pe_bench.report.stats import mean_present
from pe_bench.store.schema import TrialRow

__all__ = ["MIN_SEEDS", "Line", "aggregate", "from_store", "sort_lines", "task_views", "to_csv",
           "to_markdown", "to_rich"]
GAP = 2  # spaces between terminal columns (a padding space and the box's blank divider)


def _mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def _encoder(row: TrialRow) -> str:
    return row.encoder_label or row.encoder


def _line(first: TrialRow, task: str, members: Sequence[Member], failed: int) -> Line:
    """The line of one cell and task from its ok rows (none: every trial of it failed)."""
    views = [v for _, v in members]
    found = outcomes(members)
    return Line(
        dataset=first.dataset, encoder=_encoder(first), attack=first.attack,
        selection=first.selection or "-", defense=first.defense, task=task, seeds=len(members),
        failed=failed, n_poisons=statistics.fmean(_poisons(members)) if members else None,
        n_distinct=mean_present(row.metrics.n_distinct_poisons for row, _ in members if row.metrics),
        class_share=mean_present(row.metrics.poison_class_share for row, _ in members if row.metrics),
        pairs=sum(v.metrics.n_targets for v in views),
        successes=sum(v.metrics.successes for v in views),
        successes_clean=sum(v.hits_clean for v in views),
        stats={c.key: _mean_std([c.stat(v) for v in views]) for c in COLUMNS if c.stat},
        pooled={c.key: c.pooled(views) for c in COLUMNS if c.pooled},
        intervals=line_intervals(members, found, first.attack != "none"),
        distinct_pairs=len({t for _, t, _ in found}), outcomes=found,
        family=first.family or "targeted", triggered=_total(v.metrics.n_triggered for v in views),
        triggered_hits=_total(v.metrics.triggered_hits for v in views),
        triggered_hits_clean=_total(v.metrics.triggered_hits_clean for v in views),
        defense_params=first.defense_params or "{}",
        attack_params=first.attack_params or "{}",
        label_params=first.label_params, designed_for=first.designed_for,
        suites=tuple(sorted({row.suite for row, _ in members} or {first.suite})), cell_key=first.cell_key,
        encoder_name=first.encoder,
    )


def _total(counts: Iterable[int | None]) -> int:
    """A count summed over a line's trials (a backdoor's triggered inputs; 0 where absent)."""
    return sum(count or 0 for count in counts)


def _poisons(members: Sequence[Member]) -> list[int]:
    return [row.metrics.n_poisons if row.metrics else 0 for row, _ in members]


def _task_names(row: TrialRow) -> list[str]:
    """The tasks of a trial that left no metrics, as its row names them (`all` when several)."""
    names = list(row.task_names)
    return names + ["all"] if len(names) > 1 else names or ["-"]


def aggregate(rows: Sequence[TrialRow], failures: Sequence[TrialRow] = (),
              versus: str | None = None, families: Families = lambda _: DEFAULT,
              partial: bool = False) -> list[Line]:
    """Leaderboard lines of `rows` (the latest ok row per trial), each counting the trials of
    its cell in `failures` (error rows of trials without an ok row); a cell whose every trial
    failed still gets its lines, with 0 seeds. `versus`: an attack every other attack's lines
    are compared with, pair by pair. p-values are Holm-adjusted within each suite's declared
    `families` (default: pe_bench.config.comparisons.DEFAULT); a `partial` board (one run of a
    suite) has exploratory p-values only (pe_bench.report.pairing.correct)."""
    groups: dict[tuple[str, str], list[Member]] = {}
    firsts: dict[tuple[str, str], TrialRow] = {}
    for row in rows:
        for view in task_views(row):
            groups.setdefault((row.cell_key, view.task), []).append((row, view))
            firsts.setdefault((row.cell_key, view.task), row)
    failed = Counter(r.cell_key for r in failures)
    ok_cells = {cell for cell, _ in groups}
    for row in failures:
        if row.cell_key not in ok_cells:
            for task in _task_names(row):
                groups.setdefault((row.cell_key, task), [])
                firsts.setdefault((row.cell_key, task), row)
    lines = _label_lines([_line(firsts[key], key[1], members, failed[key[0]])
                          for key, members in groups.items()])
    lines.sort(key=lambda ln: (ln.dataset, ln.encoder, ln.task == "all", ln.task, ln.attack != "none",
                               ln.attack, ln.attack_label, ln.selection, ln.defense != "none",
                               ln.defense, ln.defense_params))
    return correct(compare(lines, versus) if versus else lines, families, partial)


def store_families(store: str | Path) -> Families:
    """Each suite's families as recorded in `store` (pe_bench.store.declarations)."""
    from pe_bench.store import declarations

    read: dict[str, tuple[Family, ...]] = {}

    def families(suite: str) -> tuple[Family, ...]:
        if suite not in read:  # once per suite: a board asks for every line and column
            read[suite] = declarations.read(store, suite).families
        return read[suite]

    return families


def from_store(store: str | Path, suite: str | None = None, run: str | None = None,
               versus: str | None = None) -> list[Line]:
    """The lines of a store (one suite / run when given), failed trials counted, p-values
    corrected within each suite's recorded families (exploratory for one run)."""
    from pe_bench.store.results import failed_trials, latest_ok, scan

    table = scan(Path(store), suite, run)
    return aggregate(latest_ok(table), failed_trials(table), versus, store_families(store), run is not None)


def _label_lines(lines: list[Line]) -> list[Line]:
    attack, defense = (varying(*group) for group in settings_of(lines))
    return [dataclasses.replace(ln, attack_label=a, defense_label=d)
            for ln, a, d in zip(lines, attack, defense, strict=True)]


def labels_note(lines: Sequence[Line]) -> str:
    """What the lines' labels leave out: the params most settings of a plugin share
    (pe_bench.report.labels), or ""."""
    return usual_note(*settings_of(lines))


def sort_lines(lines: Sequence[Line], key: str) -> list[Line]:
    """Lines ordered by a column's value (`-key`: descending); lines without it go last."""
    name = key.removeprefix("-")
    if name not in SORTABLE:
        close = difflib.get_close_matches(name, SORTABLE, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PeBenchError(f"--sort: unknown metric {name!r}; {hint}choose from {', '.join(SORTABLE)}")
    value = BY_KEY[name].sort or (lambda _: None)
    keyed = [(value(ln), ln) for ln in lines]
    present = sorted([(v, ln) for v, ln in keyed if v is not None], key=lambda pair: pair[0],
                     reverse=key.startswith("-"))
    return [ln for _, ln in present] + [ln for v, ln in keyed if v is None]


def _board(columns: Sequence[Column] | None, lines: Sequence[Line] = ()) -> tuple[Column, ...]:
    """The columns a Markdown/CSV board shows: `columns` as asked, else every board column
    (and the attack-vs-attack ones when the lines carry them)."""
    return tuple(columns) if columns else BOARD + _versus_columns(lines)


def _versus_columns(lines: Sequence[Line]) -> tuple[Column, ...]:
    return VERSUS_SHOWN if any(ln.versus for ln in lines) else ()


def to_markdown(lines: Sequence[Line], title: str, columns: Sequence[Column] | None = None,
                source: str = "") -> str:
    """A Markdown board; `source` (which runs and commit) goes under the title."""
    shown = _board(columns, lines)
    out = [f"# {title}", "", *([source, ""] if source else []),
           "| " + " | ".join(c.header for c in shown) + " |", "|" + "---|" * len(shown)]
    out += ["| " + " | ".join(c.cell(ln).replace("|", "\\|") for c in shown) + " |" for ln in lines]
    return "\n".join([*out, "", footnote(shown), ""])


def to_csv(lines: Sequence[Line], columns: Sequence[Column] | None = None) -> str:
    shown = _board(columns, lines)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(c.header for c in shown)
    writer.writerows([c.cell(ln) for c in shown] for ln in lines)
    return buf.getvalue()


def terminal_columns(lines: Sequence[Line], columns: Sequence[Column] | None = None
                     ) -> tuple[tuple[Column, ...], list[tuple[Column, str]]]:
    """What the terminal shows: `columns` as asked; else the compact set, without the defense
    columns when no line has a defense, and with each liftable column (the setting, seeds,
    failed) that reads the same on every line lifted into the title: (column, its value)."""
    if columns:
        return tuple(columns), []
    defended = any(ln.defense != "none" for ln in lines)
    shown, lifted = [], []
    for c in COMPACT + _versus_columns(lines):
        values = {c.cell(ln) for ln in lines}
        if c.lift and len(values) == 1:
            lifted.append((c, values.pop()))
        elif defended or not c.defense_only:
            shown.append(c)
    return tuple(shown), lifted


def _keep_whole(lines: Sequence[Line], shown: Sequence[Column], width: int) -> list[bool]:
    """Which columns never wrap: numbers (`mean ± std`, counts) and names, if all fit `width`
    beside the rest; else numbers only, names folding; else any column may wrap. Intervals
    always may wrap, at a space. Nothing is ever cut."""
    texts = [[c.cell(ln) for ln in lines] + [c.header] for c in shown]
    full = [max(len(t) for t in column) for column in texts]
    least = [min(10, max(len(w) for t in column for w in t.split())) for column in texts]
    numbers = [not (c.identity or c.paired) for c in shown]
    names = [c.identity for c in shown]
    for keep in ([n or i for n, i in zip(numbers, names, strict=True)], numbers):
        need = sum(f if k else m for f, m, k in zip(full, least, keep, strict=True))
        if need + GAP * (len(shown) - 1) <= width:
            return keep
    return [False] * len(shown)


def to_rich(lines: Sequence[Line], title: str, columns: Sequence[Column] | None = None,
            width: int | None = None) -> Any:
    """A rich Table for a terminal `width` columns wide (default 120); no cell is ever cut
    (a cell too wide wraps), and the default view lifts constant columns into the title."""
    from rich import box
    from rich.table import Table

    shown, lifted = terminal_columns(lines, columns)
    width = width or 120
    caption = footnote([*(c for c, _ in lifted), *shown])
    if not columns:
        caption += "; more columns: --columns (pe-bench leaderboard --list-columns)"
    title = " · ".join([title, *(f"{c.header} {value}" for c, value in lifted)])
    whole = _keep_whole(lines, shown, width)
    if not any(whole):  # too many columns to fit even folded: stacked tables, no cell broken
        from pe_bench.report import text_table

        keys = next((i for i, c in enumerate(shown) if not c.identity), len(shown))
        return text_table.rich(title, [c.header for c in shown], [[c.cell(ln) for c in shown] for ln in lines],
                               caption, width, keys=keys, lift=False)
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 0, 0, GAP - 1), caption_justify="left")
    for c, keep in zip(shown, whole, strict=True):
        table.add_column(c.header, justify="right" if c.numeric else "left", overflow="fold", no_wrap=keep)
    for ln in lines:
        table.add_row(*(c.cell(ln) for c in shown))
    return table
