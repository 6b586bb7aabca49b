"""The ASR-vs-PA trade-off figure: what a defense buys (lower ASR) and what it costs (lower PA).

One point per attacked cell, read in its `all` task view (or its only task): mean over seeds
with std-over-seeds error bars on both axes. Colour = the attack setting, marker = the defense
setting; the undefended attack is a star, the reference every defense is judged against. A grid
of several attack and several defense settings gets one panel per attack setting instead
(`panelled`; shared axes, colour and marker = the defense, one legend).
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pe_bench.leaderboard import SHORT, Line, aggregate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")
BACKDOOR_EDGE = "crimson"  # the rim that marks a backdoor attack's points
PARAMS_WIDTH = 44
LABEL_WIDTH = 64  # a legend entry; longer names would squeeze the axes
REFERENCE_COLOUR = "black"  # the undefended star in the panels (colour = defense there)
TWIN_COLOUR = "0.4"  # the clean-twin baselines in the panels
TWIN_LABEL = "paired clean twins (baseline)"


@dataclass(frozen=True)
class Point:
    """One plotted line: `group` picks the colour, `setting` the defense (legend text)."""

    group: str
    setting: str
    reference: bool
    pa: tuple[float, float]  # (mean, std) over seeds
    asr: tuple[float, float]
    line: Line
    twin: tuple[float, float] | None = None  # the paired clean twins' (CA, clean ASR) means


def short_params(params_json: str | None, keys: Sequence[str] | None = None) -> str:
    """`k=v, ...` of a plugin's JSON params (only `keys` when given; the leaderboard's short
    names, e.g. `rate`), cut to fit a legend."""
    params = json.loads(params_json or "{}")
    shown = [(SHORT.get(k, k), v) for k, v in sorted(params.items()) if keys is None or k in keys]
    text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown)
    return _cut(text, PARAMS_WIDTH)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _view(lines: Sequence[Line]) -> Line | None:
    """The cell's `all` line, else its only line (a one-task suite has no `all` view)."""
    pooled = [ln for ln in lines if ln.task == "all"]
    return pooled[0] if pooled else lines[0] if len(lines) == 1 else None


def _named(row: dict[str, Any], rows: Sequence[dict[str, Any]], kind: str) -> str:
    """`row`'s `kind` plugin (attack, encoder, defense) with the params that tell it apart from
    the other settings of the same plugin among `rows` (defaults filled in are noise)."""
    same = [json.loads(r[f"{kind}_params"] or "{}") for r in rows if r[kind] == row[kind]]
    mine = json.loads(row[f"{kind}_params"] or "{}")
    keys = [k for k in mine if len({json.dumps(p.get(k), sort_keys=True) for p in same}) > 1]
    params = short_params(row[f"{kind}_params"], keys)
    return f"{row[kind]} ({params})" if params else row[kind]


def _group_labels(cells: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Colour label per cell: the attack setting, after a setup prefix naming only what varies
    (`moco ...` when only the encoder does)."""
    rows = [cell[0] for cell in cells.values()]
    varying = [f for f in ("dataset", "encoder") if len({(r[f], r.get(f"{f}_params")) for r in rows}) > 1]
    labels = {}
    for key, cell in cells.items():
        setup = "/".join(_named(cell[0], rows, f) if f == "encoder" else cell[0][f] for f in varying)
        labels[key] = f"{setup} {_named(cell[0], rows, 'attack')}".strip()
    return labels


def _setting(row: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """Legend text of a defense setting (see `_named`)."""
    return "no defense" if row["defense"] == "none" else _named(row, rows, "defense")


def points(rows: Sequence[dict[str, Any]]) -> tuple[list[Point], list[str]]:
    """Plottable points of latest-ok store rows, and a note for each attacked cell left out."""
    cells: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["attack"] != "none":
            cells.setdefault(row["cell_key"], []).append(row)
    groups, out, skipped = _group_labels(cells), [], []
    for key, members in cells.items():
        first, line = members[0], _view(aggregate(members))
        pa, asr = (None, None) if line is None else (line.stats.get("pa"), line.stats.get("asr"))
        if line is None or pa is None or asr is None:
            found = {"pa": pa, "asr": asr}
            missing = ["task view"] if line is None else [m for m, v in found.items() if v is None]
            skipped.append(f"{groups[key]}: {_setting(first, rows)}: no {' or '.join(missing)}, not plotted")
            continue
        ca, clean_asr = line.stats.get("ca"), line.stats.get("baseline_asr")
        twin = None if ca is None or clean_asr is None else (ca[0], clean_asr[0])
        out.append(Point(groups[key], _setting(first, rows), first["defense"] == "none", pa, asr, line, twin))
    out.sort(key=lambda p: (p.group, not p.reference, p.setting))
    return out, skipped


def _plain(text: str) -> str:
    """Names are data, not mathtext: a `$` in a suite or plugin name must print as itself."""
    return text.replace("$", r"\$")


def panelled(pts: Sequence[Point]) -> bool:
    """Small multiples (one panel per attack setting) when the points hold several attack
    settings and several defense settings: one crowded scatter would mix both in colour and
    marker; with one of either, the single panel reads at a glance."""
    return len({p.group for p in pts}) > 1 and len({p.setting for p in pts}) > 1


def figure(pts: Sequence[Point], title: str) -> Figure:
    """The trade-off scatter with error bars, one legend entry per point; small multiples
    instead where `panelled` says so."""
    from matplotlib.figure import Figure

    if panelled(pts):
        return panels(pts, title)
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    ax = fig.add_subplot()
    colours = {g: f"C{i % 10}" for i, g in enumerate(dict.fromkeys(p.group for p in pts))}
    markers = _markers(pts)
    _baselines(ax, pts, lambda p: colours[p.group])
    for p in pts:
        backdoor = p.line.family == "backdoor"
        _errorbar(ax, p, markers[p.setting], colours[p.group],
                  _plain(_cut(f"{p.group}{' [backdoor]' * backdoor}: {p.setting}", LABEL_WIDTH)))
    ax.set_xlabel("PA: downstream accuracy of the poisoned encoder (targets excluded; a backdoor's BA)")
    ax.set_ylabel("ASR: over target pairs (targeted) or triggered inputs (backdoor)")
    _frame(ax)
    ax.set_title(_plain(textwrap.fill(title, 50)))
    _footnote(fig, "a red rim = a backdoor attack (ASR over its triggered inputs, ○ = the twins on "
                   "the same inputs)")
    if pts:
        fig.legend(loc="outside right upper", fontsize=8, title="attack: defense", title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no attacked lines with ASR and PA", ha="center", transform=ax.transAxes)
    return fig


def panel_columns(n: int) -> int:
    """Columns of an `n`-panel grid: a row of up to 3, then rows of 3 (of 4 beyond 9 panels,
    so a large matrix stays wider than tall)."""
    return min(n, 3 if n <= 9 else 4)


def panels(pts: Sequence[Point], title: str) -> Figure:
    """One panel per attack setting (titled with it and its family) on shared axes: its
    undefended star, its defenses by marker and colour (the same in every panel), its
    clean-twin baselines; one legend of the defense settings for all panels."""
    from matplotlib.figure import Figure

    groups = list(dict.fromkeys(p.group for p in pts))
    cols = panel_columns(len(groups))
    rows = -(-len(groups) // cols)
    fig = Figure(figsize=(3.6 * cols + 3.2, 3.1 * rows + 1.6), layout="constrained")
    grid = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    styles = _styles(pts)
    for i, (ax, group) in enumerate(zip(grid, groups, strict=False)):
        mine = [p for p in pts if p.group == group]
        _baselines(ax, mine, lambda p: TWIN_COLOUR)
        for p in mine:
            _errorbar(ax, p, *styles[p.setting], None, rim=False)  # the title names the family
        ax.set_title(_plain(textwrap.fill(f"{group} [{mine[0].line.family}]", 40)), fontsize=9)
        ax.xaxis.set_tick_params(labelbottom=i + cols >= len(groups))  # no panel below it
        if i + cols >= len(groups):
            ax.set_xlabel("PA (a backdoor's BA)", fontsize=8)
        if i % cols == 0:
            ax.set_ylabel("ASR (pairs or triggered inputs)", fontsize=8)
        _frame(ax)
    for ax in grid[len(groups):]:
        fig.delaxes(ax)
    fig.suptitle(_plain(textwrap.fill(f"{title}, per attack setting", 90)))
    _footnote(fig, "a panel's title names its attack setting and [family] (a backdoor's ASR is over "
                   "its triggered inputs, ○ = the twins on the same inputs)")
    fig.legend(handles=_legend_handles(styles), loc="outside right upper", fontsize=8,
               title="defense", title_fontsize=8)
    return fig


def _markers(pts: Sequence[Point]) -> dict[str, str]:
    """Marker per defense setting: a star for the undefended attack, the rest by sorted name."""
    settings = sorted(dict.fromkeys(p.setting for p in pts if not p.reference))
    out = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(settings)}
    return {**out, **{p.setting: "*" for p in pts if p.reference}}


def _styles(pts: Sequence[Point]) -> dict[str, tuple[str, str]]:
    """(marker, colour) per defense setting, shared by every panel; the undefended one first."""
    markers = _markers(pts)
    order = sorted(markers, key=lambda s: (markers[s] != "*", s))
    return {s: (markers[s], REFERENCE_COLOUR if markers[s] == "*" else f"C{i % 10}")
            for i, s in enumerate(order)}


def _legend_handles(styles: dict[str, tuple[str, str]]) -> list[Any]:
    """Proxy artists: one per defense setting, then the clean-twin baseline's hollow circle."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=m, color=c, markeredgecolor="black", linestyle="none",
                      markersize=12 if m == "*" else 7, label=_plain(_cut(s, LABEL_WIDTH)))
               for s, (m, c) in styles.items()]
    return [*handles, Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor=TWIN_COLOUR,
                             markersize=9, linestyle="none", label=TWIN_LABEL)]


def _errorbar(ax: Any, p: Point, marker: str, colour: str, label: str | None, rim: bool = True) -> None:
    """One point with std-over-seeds bars; with `rim`, a backdoor's point has a red rim."""
    backdoor = p.line.family == "backdoor"
    rimmed = rim and backdoor
    ax.errorbar(p.pa[0], p.asr[0], xerr=p.pa[1], yerr=p.asr[1], fmt=marker, color=colour,
                markersize=15 if p.reference else 8, capsize=3, elinewidth=1,
                markeredgecolor=BACKDOOR_EDGE if rimmed else "black",
                markeredgewidth=2 if rimmed else 1, label=label,
                zorder=3 if p.reference else 2, gid="backdoor" if backdoor else "targeted")


def _frame(ax: Any) -> None:
    ax.set_ylim(-0.05, 1.05)
    ax.margins(x=0.15)
    ax.grid(True, alpha=0.3)


def _footnote(fig: Figure, family: str) -> None:
    """How to read the figure; `family` says how a backdoor attack's points are told apart."""
    fig.supxlabel(textwrap.fill(
        "mean ± std over seeds; ★ = the attack without defense; ○ (dashed line to its point) = the "
        "paired clean twins' CA and clean ASR on the same targets: the attack's effect is the "
        "vertical gap from ○, not the height; a good defense moves a point down (lower ASR), not "
        f"left (lower PA); {family}", 150), fontsize=8, color="0.35")


def _baselines(ax: Any, pts: Sequence[Point], colour: Callable[[Point], str]) -> None:
    """Each point's clean-twin baseline: a hollow circle (drawn once per place) and a dashed
    line to the point."""
    drawn: set[tuple[str, float, float]] = set()
    for p in pts:
        if p.twin is None:
            continue
        ax.plot([p.twin[0], p.pa[0]], [p.twin[1], p.asr[0]], linestyle="--", linewidth=0.8,
                color=colour(p), alpha=0.6, zorder=1)
        if (p.group, *p.twin) not in drawn:
            drawn.add((p.group, *p.twin))
            ax.plot(*p.twin, marker="o", markersize=12, markerfacecolor="none", markeredgewidth=1.5,
                    markeredgecolor=colour(p), linestyle="none", zorder=4, gid="clean-twin")


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
    from pe_bench.errors import PeBenchError
    from pe_bench.results import latest_ok, scan

    rows = latest_ok(scan(Path(store), suite, run))
    if not rows:
        raise PeBenchError(f"no ok rows in store {str(store)!r}" + (f" for suite {suite!r}" if suite else ""))
    pts, skipped = points(rows)
    for note in skipped:
        print(f"pe-bench plot: skipped {note}", file=sys.stderr)
    name = suite or ", ".join(sorted({r["suite"] for r in rows}))
    title = f"{name}: attack success vs accuracy" + (f" (run {run})" if run else "")
    return save(figure(pts, title), out), pts
