"""Small multiples of the trade-off figure, on shared axes with one legend:

- per attack setting (`by_attack`), when a grid holds several attack and several defense
  settings: each panel its undefended star, its defenses (marker and colour = the defense, the
  same in every panel) and its clean-twin baselines;
- per setup (`by_setup`: dataset and encoder), when undefended or single-defense points come
  from setups whose accuracies differ in scale (digits near 0.97, CIFAR-10 at 5,000 images near
  0.5): one scatter would put each setup at its own edge of the x axis. Colour = the attack,
  the same in every panel; a backdoor's points keep their red rim.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pe_bench.report.plot.draw import (
    RIM_NOTE,
    TWIN_COLOUR,
    baselines,
    errorbar,
    footnote,
    frame,
    legend_handles,
    markers,
    plain,
    styles,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pe_bench.report.plot.points import Point


def panel_columns(n: int) -> int:
    """Columns of an `n`-panel grid: a row of up to 3, then rows of 3 (of 4 beyond 9 panels,
    so a large matrix stays wider than tall)."""
    return min(n, 3 if n <= 9 else 4)


def _grid(n: int, sharex: bool = True) -> tuple[Figure, list[Any], int]:
    from matplotlib.figure import Figure

    cols = panel_columns(n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.6 * cols + 3.2, 3.1 * rows + 1.6), layout="constrained")
    axes = list(fig.subplots(rows, cols, sharex=sharex, sharey=True, squeeze=False).ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n], cols


def _labels(ax: Any, i: int, n: int, cols: int, every_x: bool = False) -> None:
    ax.xaxis.set_tick_params(labelbottom=every_x or i + cols >= n)  # else only where no panel is below
    if every_x or i + cols >= n:
        ax.set_xlabel("PA (a backdoor's BA)", fontsize=8)
    if i % cols == 0:
        ax.set_ylabel("ASR (pairs or triggered inputs)", fontsize=8)
    frame(ax)


def by_attack(pts: Sequence[Point], title: str) -> Figure:
    """One panel per attack setting (titled with it and its family)."""
    groups = list(dict.fromkeys(p.group for p in pts))
    fig, axes, cols = _grid(len(groups))
    style = styles(pts)
    for i, (ax, group) in enumerate(zip(axes, groups, strict=True)):
        mine = [p for p in pts if p.group == group]
        baselines(ax, mine, lambda p: TWIN_COLOUR)
        for p in mine:
            errorbar(ax, p, *style[p.setting], None, rim=False)  # the title names the family
        ax.set_title(plain(textwrap.fill(f"{group} [{mine[0].line.family}]", 40)), fontsize=9)
        _labels(ax, i, len(groups), cols)
    fig.suptitle(plain(textwrap.fill(f"{title}, per attack setting", 90)))
    footnote(fig, "a panel's title names its attack setting and [family] (a backdoor's ASR is over "
                  "its triggered inputs, ○ = the twins on the same inputs)")
    fig.legend(handles=legend_handles(style), loc="outside right upper", fontsize=8,
               title="defense", title_fontsize=8)
    return fig


def by_setup(pts: Sequence[Point], title: str) -> Figure:
    """One panel per setup (dataset, encoder), colour = the attack setting across panels."""
    setups = list(dict.fromkeys(p.setup for p in pts))
    attacks = list(dict.fromkeys(p.attack for p in sorted(pts, key=lambda p: p.attack)))
    colours = {a: f"C{i % 10}" for i, a in enumerate(attacks)}
    marks = markers(pts)
    fig, axes, cols = _grid(len(setups), sharex=False)  # each setup its own accuracy scale
    entries: dict[str, tuple[str, str]] = {}
    rim: dict[str, bool] = {}
    for i, (ax, setup) in enumerate(zip(axes, setups, strict=True)):
        mine = [p for p in pts if p.setup == setup]
        baselines(ax, mine, lambda p: colours[p.attack])
        for p in mine:
            errorbar(ax, p, marks[p.setting], colours[p.attack], None)
            label = f"{p.attack}{' [backdoor]' * (p.line.family == 'backdoor')}: {p.setting}"
            entries.setdefault(label, (marks[p.setting], colours[p.attack]))
            rim[label] = p.line.family == "backdoor"
        ax.set_title(plain(textwrap.fill(setup, 40)), fontsize=9)
        _labels(ax, i, len(setups), cols, every_x=True)
    fig.suptitle(plain(textwrap.fill(f"{title}, per setup", 90)))
    footnote(fig, RIM_NOTE)
    fig.legend(handles=legend_handles(entries, rim), loc="outside right upper", fontsize=8,
               title="attack: defense", title_fontsize=8)
    return fig
