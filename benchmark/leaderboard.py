"""Leaderboards generated from the results store: aggregate over seeds, render, never hand-edit.

One line per (cell, task): the cell is every setting but the seed (its `cell_key`); a suite with
several downstream tasks gets a line per task plus an `all` line (CA/PA averaged over tasks,
ASR pooled over every target pair). Metrics are mean ± std over seeds (sample std, n-1); ASR is
also shown as successes / target pairs. Lines with fewer than 3 seeds are marked `*`: not
enough for a published table. Effects are read per target pair against the paired clean twin:
Δp = p(target) − clean p(target) and ΔASR = hit − clean hit, each with a 95% cluster-bootstrap
interval over seeds and target pairs (pe_bench.stats); `n.s.` marks an interval containing 0.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pe_bench.stats import Interval, cluster_bootstrap

MIN_SEEDS = 3
METRICS = ("ca", "pa", "asr", "baseline_asr", "p_target", "p_target_clean")


@dataclass(frozen=True)
class Line:
    """One aggregated leaderboard line."""

    dataset: str
    encoder: str
    attack: str
    selection: str
    defense: str
    task: str
    seeds: int
    n_poisons: float
    pairs: int
    successes: int
    successes_clean: int
    stats: dict[str, tuple[float, float] | None]  # metric -> (mean, std)
    delta_p: Interval | None = None
    delta_asr: Interval | None = None

    @property
    def published(self) -> bool:
        return self.seeds >= MIN_SEEDS


def _mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def _task_views(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's per-task metrics, plus an `all` view when there are several tasks."""
    tasks = [{**t, "hits_clean": sum(x["hit_clean"] for x in t["targets"])} for t in row["tasks"] or []]
    if len(tasks) == 1:
        return tasks
    hits_clean = sum(t["hits_clean"] for t in tasks)
    return [*tasks, {**{m: row[m] for m in METRICS}, "task": "all", "n_targets": row["n_targets"],
                     "successes": row["successes"], "hits_clean": hits_clean,
                     "targets": [x for t in tasks for x in t["targets"]]}]


def _paired(views: Sequence[dict[str, Any]], field: str) -> Interval | None:
    """Bootstrap interval of poisoned-minus-clean `field` ("p" or "hit") per target pair."""
    per_seed = [np.array([float(x[field]) - float(x[f"{field}_clean"]) for x in v["targets"]])
                for v in views]
    return cluster_bootstrap(per_seed)


def aggregate(rows: Sequence[dict[str, Any]]) -> list[Line]:
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for row in rows:
        for view in _task_views(row):
            groups.setdefault((row["cell_key"], view["task"]), []).append((row, view))
    lines = []
    for (_, task), members in groups.items():
        first = members[0][0]
        encoder = first["encoder"]
        backbone = json.loads(first["encoder_params"]).get("backbone")
        lines.append(Line(
            dataset=first["dataset"], encoder=f"{encoder}/{backbone}" if backbone else encoder,
            attack=first["attack"], selection=first["selection"] or "-", defense=first["defense"],
            task=task, seeds=len(members),
            n_poisons=statistics.fmean(r["n_poisons"] or 0 for r, _ in members),
            pairs=sum(v["n_targets"] or 0 for _, v in members),
            successes=sum(v["successes"] or 0 for _, v in members),
            successes_clean=sum(v["hits_clean"] for _, v in members),
            stats={m: _mean_std([v.get(m) for _, v in members]) for m in METRICS},
            delta_p=_paired([v for _, v in members], "p"),
            delta_asr=_paired([v for _, v in members], "hit"),
        ))
    lines.sort(key=lambda ln: (ln.dataset, ln.encoder, ln.task == "all", ln.task, ln.attack != "none",
                               ln.attack, ln.selection, ln.defense))
    return lines


HEADERS = ("dataset", "encoder", "task", "attack", "targets", "defense", "seeds", "poisons",
           "CA", "PA", "ASR", "hits", "clean ASR", "clean hits", "p(target)", "p(target) clean",
           "ΔASR [95% CI]", "Δp(target) [95% CI]")


def _fmt(stat: tuple[float, float] | None) -> str:
    return "-" if stat is None else f"{stat[0]:.3f} ± {stat[1]:.3f}"


def _fmt_ci(ci: Interval | None) -> str:
    if ci is None:
        return "-"
    flag = "" if ci.excludes_zero else " n.s."
    return f"{ci.mean:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]{flag}"


def cells(line: Line) -> list[str]:
    s = line.stats
    seeds = f"{line.seeds}" + ("" if line.published else "*")
    hits = f"{line.successes}/{line.pairs}" if line.pairs else "-"
    clean_hits = f"{line.successes_clean}/{line.pairs}" if line.pairs else "-"
    return [line.dataset, line.encoder, line.task, line.attack, line.selection, line.defense, seeds,
            f"{line.n_poisons:.0f}", _fmt(s["ca"]), _fmt(s["pa"]), _fmt(s["asr"]), hits,
            _fmt(s["baseline_asr"]), clean_hits, _fmt(s["p_target"]), _fmt(s["p_target_clean"]),
            _fmt_ci(line.delta_asr), _fmt_ci(line.delta_p)]


FOOTNOTE = ("mean ± std over seeds; CA = clean twin's accuracy, PA = this encoder's, targets "
            "excluded; ASR over target pairs; hits = successes / pairs over all seeds; Δ = vs the "
            "paired clean twin per target pair, 95% bootstrap CI over seeds and pairs, n.s. = CI "
            "contains 0; * = fewer than 3 seeds (not publishable)")


def to_markdown(lines: Sequence[Line], title: str) -> str:
    out = [f"# {title}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(ln)) + " |" for ln in lines]
    return "\n".join([*out, "", FOOTNOTE, ""])


def to_csv(lines: Sequence[Line]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADERS)
    writer.writerows(cells(ln) for ln in lines)
    return buf.getvalue()


def to_rich(lines: Sequence[Line], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, caption=FOOTNOTE, show_lines=False)
    for h in HEADERS:
        numeric = h[0].isupper() or h in ("seeds", "poisons", "hits")
        table.add_column(h, justify="right" if numeric else "left")
    for ln in lines:
        table.add_row(*cells(ln))
    return table
