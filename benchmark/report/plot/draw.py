"""Drawing primitives shared by the trade-off figure and its panels (pe_bench.report.plot.figure,
pe_bench.report.plot.panels): a point with its error bars, its clean-twin baseline, the axes frame,
the footnote, and the marker and colour of each defense setting. matplotlib objects come in as
arguments; nothing here imports it at module level."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pe_bench.report.plot.points import Point

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")
BACKDOOR_EDGE = "crimson"  # the rim that marks a backdoor attack's points
LABEL_WIDTH = 64  # a legend entry; longer names would squeeze the axes
REFERENCE_COLOUR = "black"  # the undefended star in the panels (colour = defense there)
TWIN_COLOUR = "0.4"  # the clean-twin baselines in the panels
TWIN_LABEL = "paired clean twins (baseline)"
RIM_NOTE = "a red rim = a backdoor attack (ASR over its triggered inputs, ○ = the twins on the same inputs)"


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plain(text: str) -> str:
    """Names are data, not mathtext: a `$` in a suite or plugin name must print as itself."""
    return text.replace("$", r"\$")


def markers(pts: Sequence[Point]) -> dict[str, str]:
    """Marker per defense setting: a star for the undefended attack, the rest by sorted name."""
    settings = sorted(dict.fromkeys(p.setting for p in pts if not p.reference))
    out = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(settings)}
    return {**out, **{p.setting: "*" for p in pts if p.reference}}


def styles(pts: Sequence[Point]) -> dict[str, tuple[str, str]]:
    """(marker, colour) per defense setting, shared by every panel; the undefended one first."""
    marks = markers(pts)
    order = sorted(marks, key=lambda s: (marks[s] != "*", s))
    return {s: (marks[s], REFERENCE_COLOUR if marks[s] == "*" else f"C{i % 10}")
            for i, s in enumerate(order)}


def legend_handles(entries: dict[str, tuple[str, str]], rim: dict[str, bool] | None = None) -> list[Any]:
    """Proxy artists: one per entry (label -> (marker, colour); `rim`: labels drawn with a
    backdoor's red rim), then the clean-twin baseline's hollow circle."""
    from matplotlib.lines import Line2D

    rim = rim or {}
    handles = [Line2D([], [], marker=m, color=c, linestyle="none", markersize=12 if m == "*" else 7,
                      markeredgecolor=BACKDOOR_EDGE if rim.get(s) else "black",
                      markeredgewidth=2 if rim.get(s) else 1, label=plain(cut(s, LABEL_WIDTH)))
               for s, (m, c) in entries.items()]
    return [*handles, Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor=TWIN_COLOUR,
                             markersize=9, linestyle="none", label=TWIN_LABEL)]


def errorbar(ax: Any, p: Point, marker: str, colour: str, label: str | None, rim: bool = True) -> None:
    """One point with std-over-seeds bars; with `rim`, a backdoor's point has a red rim."""
    backdoor = p.line.family == "backdoor"
    rimmed = rim and backdoor
    ax.errorbar(p.pa[0], p.asr[0], xerr=p.pa[1], yerr=p.asr[1], fmt=marker, color=colour,
                markersize=15 if p.reference else 8, capsize=3, elinewidth=1,
                markeredgecolor=BACKDOOR_EDGE if rimmed else "black",
                markeredgewidth=2 if rimmed else 1, label=label,
                zorder=3 if p.reference else 2, gid="backdoor" if backdoor else "targeted")


def frame(ax: Any) -> None:
    ax.set_ylim(-0.05, 1.05)
    ax.margins(x=0.15)
    ax.grid(True, alpha=0.3)


def footnote(fig: Figure, family: str) -> None:
    """How to read the figure; `family` says how a backdoor attack's points are told apart."""
    fig.supxlabel(textwrap.fill(
        "mean ± std over seeds; ★ = the attack without defense; ○ (dashed line to its point) = the "
        "paired clean twins' CA and clean ASR on the same targets: the attack's effect is the "
        "vertical gap from ○, not the height; a good defense moves a point down (lower ASR), not "
        f"left (lower PA); {family}", 150), fontsize=8, color="0.35")


def baselines(ax: Any, pts: Sequence[Point], colour: Callable[[Point], str]) -> None:
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
