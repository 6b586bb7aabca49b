"""Leaderboards generated from the results store: aggregate over seeds, render, never hand-edit.

One line per (cell, task): the cell is every setting but the seed (its `cell_key`); a suite with
several downstream tasks gets a line per task plus an `all` line (CA/PA averaged over tasks,
ASR pooled over every target pair). Metrics are mean ± std over seeds (sample std, n-1); ASR is
also shown as successes / target pairs. Lines with fewer than 3 seeds are marked `*`: not
enough for a published table. Effects are read per target pair against the paired clean twin:
Δp = p(target) − clean p(target) and ΔASR = hit − clean hit, each with a 95% bootstrap interval
resampling seeds and distinct targets and an exact paired test whose p-value is Holm-adjusted
over the board's lines (pe_bench.report.stats, pe_bench.report.pairing); `n.s.` marks an adjusted p >= 0.05.
Each line counts its distinct target pairs (task, index, target class) beside its pairs, and the
trials of its cell that only failed; a backdoor line (no target pairs) reads its ΔASR per seed. `versus=`
adds attack-vs-attack deltas. What a line holds and how every format shows it is in pe_bench.report.columns.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pe_bench.report.columns import BOARD, BY_KEY, COLUMNS, COMPACT, SORTABLE, VERSUS_SHOWN, Column, footnote
from pe_bench.errors import PeBenchError
from pe_bench.store.metrics import DefenseReport, Metrics
from pe_bench.report.lines import MIN_SEEDS, Line, Member, Outcome
from pe_bench.report.pairing import compare, correct, line_intervals, outcomes

GAP = 2  # spaces between terminal columns (a padding space and the box's blank divider)
ROW_METRICS = tuple(Metrics.model_fields)  # pooled over a trial's tasks: the `all` view
COSTS = tuple(DefenseReport.model_fields)  # per trial, whatever the task


def _mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def task_views(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's per-task metrics, plus an `all` view when there are several tasks."""
    costs = {m: row.get(m) for m in COSTS}
    tasks = [{**t, **costs, **_undefended(t), "hits_clean": sum(x["hit_clean"] for x in t["targets"]),
              "targets": [{**x, "task": t["task"]} for x in t["targets"]]} for t in row["tasks"] or []]
    if len(tasks) == 1:
        return tasks
    hits_clean = sum(t["hits_clean"] for t in tasks)
    whole = {m: row.get(m) for m in ROW_METRICS}
    return [*tasks, {**whole, **costs, **_undefended(whole), "task": "all",
                     "n_targets": row["n_targets"], "successes": row["successes"],
                     "hits_clean": hits_clean, "targets": [x for t in tasks for x in t["targets"]]}]


def _undefended(view: dict[str, Any]) -> dict[str, Any]:
    """Rows written before defense metrics existed count as undefended (PA = its own)."""
    pa_u = view.get("pa_undefended")
    asr_u = view.get("asr_undefended")
    return {"pa_undefended": view["pa"] if pa_u is None else pa_u,
            "asr_undefended": view["asr"] if asr_u is None else asr_u}


def _line(first: dict[str, Any], task: str, members: Sequence[Member], failed: int) -> Line:
    """The line of one cell and task from its ok rows (none: every trial of it failed)."""
    views = [v for _, v in members]
    found = outcomes(members)
    backbone = json.loads(first["encoder_params"] or "{}").get("backbone")
    return Line(
        dataset=first["dataset"], encoder=f"{first['encoder']}/{backbone}" if backbone else first["encoder"],
        attack=first["attack"], selection=first["selection"] or "-", defense=first["defense"],
        task=task, seeds=len(members), failed=failed,
        n_poisons=statistics.fmean(r["n_poisons"] or 0 for r, _ in members) if members else None,
        pairs=sum(v["n_targets"] or 0 for v in views),
        successes=sum(v["successes"] or 0 for v in views),
        successes_clean=sum(v["hits_clean"] for v in views),
        stats={c.key: _mean_std([c.stat(v) for v in views]) for c in COLUMNS if c.stat},
        pooled={c.key: c.pooled(views) for c in COLUMNS if c.pooled},
        intervals=line_intervals(members, found, first["attack"] != "none"),
        distinct_pairs=len({t for _, t, _ in found}), outcomes=found,
        family=first.get("family") or "targeted", triggered=_total(views, "n_triggered"),
        triggered_hits=_total(views, "triggered_hits"),
        triggered_hits_clean=_total(views, "triggered_hits_clean"),
        defense_params=first["defense_params"] or "{}",
        attack_params=first["attack_params"] or "{}",
    )


def _total(views: Sequence[dict[str, Any]], field: str) -> int:
    """A count summed over a line's trials (a backdoor's triggered inputs; 0 where absent)."""
    return sum(int(v.get(field) or 0) for v in views)


def _task_names(row: dict[str, Any]) -> list[str]:
    """The tasks of a trial that left no metrics, from its spec (`all` when several)."""
    names = [t.get("name", "?") for t in json.loads(row["spec_json"] or "{}").get("tasks", [])]
    return names + ["all"] if len(names) > 1 else names or ["-"]


def aggregate(rows: Sequence[dict[str, Any]], failures: Sequence[dict[str, Any]] = (),
              versus: str | None = None) -> list[Line]:
    """Leaderboard lines of `rows` (the latest ok row per trial), each counting the trials of
    its cell in `failures` (error rows of trials without an ok row); a cell whose every trial
    failed still gets its lines, with 0 seeds. `versus`: an attack every other attack's lines
    are compared with, pair by pair. p-values are Holm-adjusted over the returned lines."""
    groups: dict[tuple[str, str], list[Member]] = {}
    firsts: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        for view in task_views(row):
            groups.setdefault((row["cell_key"], view["task"]), []).append((row, view))
            firsts.setdefault((row["cell_key"], view["task"]), row)
    failed = Counter(r["cell_key"] for r in failures)
    ok_cells = {cell for cell, _ in groups}
    for row in failures:
        if row["cell_key"] not in ok_cells:
            for task in _task_names(row):
                groups.setdefault((row["cell_key"], task), [])
                firsts.setdefault((row["cell_key"], task), row)
    lines = _label_lines([_line(firsts[key], key[1], members, failed[key[0]])
                          for key, members in groups.items()])
    lines.sort(key=lambda ln: (ln.dataset, ln.encoder, ln.task == "all", ln.task, ln.attack != "none",
                               ln.attack, ln.attack_label, ln.selection, ln.defense != "none",
                               ln.defense, ln.defense_params))
    return correct(compare(lines, versus) if versus else lines)


def from_store(store: str | Path, suite: str | None = None, run: str | None = None,
               versus: str | None = None) -> list[Line]:
    """The lines of a store (one suite / run when given), failed trials counted."""
    from pe_bench.store.results import failed_trials, latest_ok, scan

    table = scan(Path(store), suite, run)
    return aggregate(latest_ok(table), failed_trials(table), versus)


SHORT = {"poison_rate": "rate", "references": "refs", "targets_per_task": "targets"}


def varying(lines: Sequence[Any], kind: str) -> dict[int, str]:
    """Each line's `kind` plugin named with the params that tell its lines apart (e.g. a
    poison-rate sweep: `poisoned-encoder(rate=0.05)`); the selection rule has its own column."""
    params = {id(ln): json.loads(getattr(ln, f"{kind}_params")) for ln in lines}
    labels = {}
    for ln in lines:
        name = getattr(ln, kind)
        same = [params[id(o)] for o in lines if getattr(o, kind) == name]
        keys = sorted(k for k in params[id(ln)] if k != "selection"
                      and len({json.dumps(p.get(k), sort_keys=True) for p in same}) > 1)
        shown = ", ".join(f"{SHORT.get(k, k)}={params[id(ln)][k]}" for k in keys)
        labels[id(ln)] = f"{name}({shown})" if shown else name
    return labels


def _label_lines(lines: list[Line]) -> list[Line]:
    attack, defense = varying(lines, "attack"), varying(lines, "defense")
    return [dataclasses.replace(ln, attack_label=attack[id(ln)], defense_label=defense[id(ln)])
            for ln in lines]


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
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 0, 0, GAP - 1), caption_justify="left")
    for c, whole in zip(shown, _keep_whole(lines, shown, width), strict=True):
        table.add_column(c.header, justify="right" if c.numeric else "left", overflow="fold", no_wrap=whole)
    for ln in lines:
        table.add_row(*(c.cell(ln) for c in shown))
    return table
