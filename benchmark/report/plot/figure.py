"""The ASR-vs-PA trade-off figure: what a defense buys (lower ASR) and what it costs (lower PA).

One point per attacked cell, read in its `all` task view (or its only task): mean over seeds
with std-over-seeds error bars on both axes. Colour = the attack setting, marker = the defense
setting; the undefended attack is a star, the reference every defense is judged against. A grid
of several attack and several defense settings gets one panel per attack setting instead, and
points from several setups (dataset, encoder) one panel per setup (`layout`,
pe_bench.report.plot.panels).
Beside every attacked point sits its baseline: the paired clean twins' mean (CA, clean ASR) on
the same targets, a hollow circle joined to the point by a dashed line. Both attack families
share the axes (a backdoor's ASR is over its triggered inputs, its PA is its BA); backdoor
points have a red rim and `[backdoor]` in their legend entry. A point high only because its
targets were easy (the twins hit them too) reads as such: the effect is the vertical gap.
matplotlib is imported inside the functions (Agg canvas, no pyplot): the CLI stays fast.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pe_bench.report.labels import SHORT
from pe_bench.report.leaderboard import aggregate
from pe_bench.report.lines import Line
from pe_bench.report.plot.points import Point
from pe_bench.report.plot.draw import (
    LABEL_WIDTH,
    RIM_NOTE,
    baselines,
    cut,
    errorbar,
    footnote,
    frame,
    markers,
    plain,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pe_bench.store.schema import TrialRow

PARAMS_WIDTH = 44


def short_params(params_json: str | None, keys: Sequence[str] | None = None) -> str:
    """`k=v, ...` of a plugin's JSON params (only `keys` when given; the leaderboard's short
    names, e.g. `rate`), cut to fit a legend."""
    params = json.loads(params_json or "{}")
    shown = [(SHORT.get(k, k), v) for k, v in sorted(params.items()) if keys is None or k in keys]
    text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown)
    return cut(text, PARAMS_WIDTH)


def _view(lines: Sequence[Line]) -> Line | None:
    """The cell's `all` line, else its only line (a one-task suite has no `all` view)."""
    pooled = [ln for ln in lines if ln.task == "all"]
    return pooled[0] if pooled else lines[0] if len(lines) == 1 else None


def _by_cell(lines: Sequence[Line]) -> dict[str, list[Line]]:
    out: dict[str, list[Line]] = {}
    for ln in lines:
        out.setdefault(ln.cell_key, []).append(ln)
    return out


Setting = tuple[str, str]  # a plugin's name and its params as JSON


def _named(setting: Setting, settings: Sequence[Setting]) -> str:
    """A plugin setting (attack, encoder, defense) with the params that tell it apart from the
    other settings of the same plugin among `settings` (defaults filled in are noise)."""
    name, params_json = setting
    same = [json.loads(p or "{}") for n, p in settings if n == name]
    mine = json.loads(params_json or "{}")
    keys = [k for k in mine if len({json.dumps(p.get(k), sort_keys=True) for p in same}) > 1]
    params = short_params(params_json, keys)
    return f"{name} ({params})" if params else name


def _group_labels(cells: dict[str, list[TrialRow]]) -> dict[str, str]:
    """Colour label per cell: the attack setting, after a setup prefix naming only what varies
    (`moco ...` when only the encoder does)."""
    return {key: _label(parts) for key, parts in _group_parts(cells).items()}


def _label(parts: tuple[str, str]) -> str:
    """`setup attack` (no leading space when the setup does not vary)."""
    return " ".join(p for p in parts if p)


def _setup(row: TrialRow, rows: Sequence[TrialRow]) -> str:
    """What varies of the dataset and the encoder setting among `rows`, as `row` has it."""
    encoders = [(r.encoder, r.encoder_params) for r in rows]
    parts = [row.dataset] if len({r.dataset for r in rows}) > 1 else []
    parts += [_named((row.encoder, row.encoder_params), encoders)] if len(set(encoders)) > 1 else []
    return "/".join(parts)


def _group_parts(cells: dict[str, list[TrialRow]]) -> dict[str, tuple[str, str]]:
    """(setup, attack setting) per cell: the setup names only what varies of dataset/encoder."""
    rows = [cell[0] for cell in cells.values()]
    attacks = [(r.attack, r.attack_params) for r in rows]
    return {key: (_setup(cell[0], rows), _named((cell[0].attack, cell[0].attack_params), attacks))
            for key, cell in cells.items()}


def _setting(row: TrialRow, rows: Sequence[TrialRow]) -> str:
    """Legend text of a defense setting (see `_named`)."""
    defenses = [(r.defense, r.defense_params) for r in rows]
    return "no defense" if row.defense == "none" else _named((row.defense, row.defense_params), defenses)


def points(rows: Sequence[TrialRow], lines: Sequence[Line] | None = None) -> tuple[list[Point], list[str]]:
    """Plottable points of latest-ok store rows, read from the board's `lines` of those rows
    (built here when not given: nothing is aggregated twice), and a note for each attacked cell
    left out."""
    cells: dict[str, list[TrialRow]] = {}
    for row in rows:
        if row.attack != "none":
            cells.setdefault(row.cell_key, []).append(row)
    parts, out, skipped = _group_parts(cells), [], []
    groups = {key: _label(part) for key, part in parts.items()}
    board = _by_cell(aggregate(rows) if lines is None else lines)
    for key, members in cells.items():
        first, line = members[0], _view(board.get(key, []))
        pa, asr = (None, None) if line is None else (line.stats.get("pa"), line.stats.get("asr"))
        if line is None or pa is None or asr is None:
            found = {"pa": pa, "asr": asr}
            missing = ["task view"] if line is None else [m for m, v in found.items() if v is None]
            skipped.append(f"{groups[key]}: {_setting(first, rows)}: no {' or '.join(missing)}, not plotted")
            continue
        ca, clean_asr = line.stats.get("ca"), line.stats.get("baseline_asr")
        twin = None if ca is None or clean_asr is None else (ca[0], clean_asr[0])
        out.append(Point(groups[key], _setting(first, rows), first.defense == "none", pa, asr, line, twin,
                         *parts[key]))
    out.sort(key=lambda p: (p.group, not p.reference, p.setting))
    return out, skipped


def layout(pts: Sequence[Point]) -> Literal["single", "by_attack", "by_setup"]:
    """Small multiples where one scatter would mislead: one panel per attack setting when the
    points hold several attack and several defense settings (colour and marker would mix both),
    else one per setup when they come from several (each setup its own accuracy scale); one
    panel otherwise."""
    if len({p.group for p in pts}) > 1 and len({p.setting for p in pts}) > 1:
        return "by_attack"
    return "by_setup" if len({p.setup for p in pts}) > 1 else "single"


def figure(pts: Sequence[Point], title: str) -> Figure:
    """The trade-off scatter with error bars, one legend entry per point; small multiples
    instead where `layout` says so."""
    from matplotlib.figure import Figure

    from pe_bench.report.plot import panels as plot_panels

    shape = layout(pts)
    if shape != "single":
        return plot_panels.by_attack(pts, title) if shape == "by_attack" else plot_panels.by_setup(pts, title)
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    ax = fig.add_subplot()
    colours = {g: f"C{i % 10}" for i, g in enumerate(dict.fromkeys(p.group for p in pts))}
    marks = markers(pts)
    baselines(ax, pts, lambda p: colours[p.group])
    for p in pts:
        backdoor = p.line.family == "backdoor"
        errorbar(ax, p, marks[p.setting], colours[p.group],
                 plain(cut(f"{p.group}{' [backdoor]' * backdoor}: {p.setting}", LABEL_WIDTH)))
    ax.set_xlabel("PA: downstream accuracy of the poisoned encoder (targets excluded; a backdoor's BA)")
    ax.set_ylabel("ASR: over target pairs (targeted) or triggered inputs (backdoor)")
    frame(ax)
    ax.set_title(plain(textwrap.fill(title, 50)))
    footnote(fig, RIM_NOTE)
    if pts:
        fig.legend(loc="outside right upper", fontsize=8, title="attack: defense", title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no attacked lines with ASR and PA", ha="center", transform=ax.transAxes)
    return fig


def png_bytes(fig: Figure, dpi: int = 130) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save(fig: Figure, prefix: str | Path) -> list[Path]:
    """PREFIX.png and PREFIX.svg (no date in the SVG: the same store gives the same file)."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    png, svg = prefix.with_name(prefix.name + ".png"), prefix.with_name(prefix.name + ".svg")
    png.write_bytes(png_bytes(fig, dpi=150))
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return [png, svg]


def plot_store(store: str | Path, out: str | Path, suite: str | None = None,
               run: str | None = None) -> tuple[list[Path], list[Point]]:
    """Figure of the store's latest ok rows (one suite / run when given); notes go to stderr."""
    from pe_bench.report.leaderboard import store_families
    from pe_bench.store.results import failed_trials, latest_ok, scan

    table = scan(Path(store), suite, run)
    rows = latest_ok(table)
    if not rows:
        from pe_bench.store.results import no_ok_rows

        raise no_ok_rows(store, suite)
    lines = aggregate(rows, failed_trials(table), families=store_families(store), partial=run is not None)
    pts, skipped = points(rows, lines)
    for note in skipped:
        print(f"pe-bench plot: skipped {note}", file=sys.stderr)
    name = suite or ", ".join(sorted({r.suite for r in rows}))
    title = f"{name}: attack success vs accuracy" + (f" (run {run})" if run else "")
    return save(figure(pts, title), out), pts
