"""Cells of the tables that show trials as stored: the per-seed table (one `SeedLine` per trial
and task) and the defense pairs (`PairLine`). The column table (pe_bench.report.columns) names
them beside the leaderboard cells of the same columns."""

from __future__ import annotations

from collections.abc import Callable

from pe_bench.report.lines import PairLine, SeedLine, TaskView
from pe_bench.report.stats import Interval


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a - b:+.3f}"


def hits(view: TaskView, triggered: int | None, pairs: int) -> str:
    """Hits over a backdoor's triggered inputs, or over the target pairs (`-`: neither)."""
    m = view.metrics
    if m.n_triggered:
        return f"{triggered or 0}/{m.n_triggered}"
    return f"{pairs}/{m.n_targets}" if m.n_targets else "-"


def seed_hits(s: SeedLine) -> str:
    return hits(s.view, s.view.metrics.triggered_hits, s.view.metrics.successes)


def seed_clean_hits(s: SeedLine) -> str:
    return hits(s.view, s.view.metrics.triggered_hits_clean, s.view.hits_clean)


def undefended_hits(s: SeedLine) -> str:
    """The same on the undefended poisoned encoder of the seed."""
    undefended = sum(t.outcome.hit_undefended for t in s.view.targets)
    return hits(s.view, s.view.metrics.triggered_hits_undefended, undefended)


def target_class(s: SeedLine) -> str:
    """A backdoor's target class for the seed (`?`: a store from before it was recorded;
    `-`: targeted, whose pairs have their own, or the pooled view)."""
    if s.view.trigger_target is not None:
        return str(s.view.trigger_target)
    return "?" if s.row.family == "backdoor" and s.view.task != "all" else "-"


def family(s: SeedLine) -> str:
    return "-" if s.attack == "none" else s.row.family or "targeted"


def p_pair(ci: Interval | None) -> str:
    """The Holm-adjusted p of a pair's declared test (`< 0.001` below that); an exploratory
    pair's unadjusted p, marked `expl.`."""
    if ci is None or ci.p is None:
        return "-"
    p, mark = (ci.p, " expl.") if ci.family is None else (ci.p_adjusted, "")
    assert p is not None
    return ("< 0.001" if p < 0.001 else f"{p:.3f}") + mark


def setup(part: int) -> Callable[[PairLine], str]:
    """A pair's dataset (0), encoder label (1) or task (2)."""
    return lambda p: p.setup[part]
