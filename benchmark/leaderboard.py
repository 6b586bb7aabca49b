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
import dataclasses
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pe_bench.stats import Interval, cluster_bootstrap

MIN_SEEDS = 3
METRICS = ("ca", "pa", "asr", "baseline_asr", "p_target", "p_target_clean", "pa_undefended",
           "asr_undefended", "delta_pa_defense")
# per-row defense costs (not per task): mean ± std over seeds
DEFENSE_METRICS = ("poison_recall", "poison_precision", "clean_removed", "clean_used", "defense_extra_s")


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
    delta_asr_defense: Interval | None = None  # vs the undefended encoder, per target pair
    defense_params: str = "{}"
    attack_params: str = "{}"
    attack_label: str = ""  # the attack with the params that differ between its lines
    defense_label: str = ""  # likewise for the defense

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
    costs = {m: row.get(m) for m in DEFENSE_METRICS}
    if "sanitize" not in (row.get("defense_hooks") or "").split(","):  # not a filter
        costs.update(poison_recall=None, poison_precision=None, clean_removed=None)
    tasks = [{**t, **costs, **_undefended(t), "hits_clean": sum(x["hit_clean"] for x in t["targets"])}
             for t in row["tasks"] or []]
    if len(tasks) == 1:
        return tasks
    hits_clean = sum(t["hits_clean"] for t in tasks)
    whole = {m: row.get(m) for m in METRICS}
    return [*tasks, {**whole, **costs, **_undefended(whole), "task": "all",
                     "n_targets": row["n_targets"], "successes": row["successes"],
                     "hits_clean": hits_clean, "targets": [x for t in tasks for x in t["targets"]]}]


def _undefended(view: dict[str, Any]) -> dict[str, Any]:
    """Rows written before defense metrics existed count as undefended (PA = its own)."""
    pa_u = view.get("pa_undefended")
    pa_u = view["pa"] if pa_u is None else pa_u
    asr_u = view.get("asr_undefended")
    return {"pa_undefended": pa_u, "asr_undefended": view["asr"] if asr_u is None else asr_u,
            "delta_pa_defense": view["pa"] - pa_u}


def _paired(views: Sequence[dict[str, Any]], field: str, versus: str) -> Interval | None:
    """Bootstrap interval of `field` minus `versus` per target pair (e.g. "p" vs "p_clean");
    a pair without `versus` (a row written before that field existed) counts as no difference."""

    def diff(x: dict[str, Any]) -> float:
        other = x.get(versus)
        return float(x[field]) - float(x[field] if other is None else other)

    per_seed = [np.array([diff(x) for x in v["targets"]]) for v in views]
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
            stats={m: _mean_std([v.get(m) for _, v in members]) for m in (*METRICS, *DEFENSE_METRICS)},
            delta_p=_paired([v for _, v in members], "p", "p_clean"),
            delta_asr=_paired([v for _, v in members], "hit", "hit_clean"),
            delta_asr_defense=_paired([v for _, v in members], "hit", "hit_undefended"),
            defense_params=first["defense_params"] or "{}",
            attack_params=first["attack_params"] or "{}",
        ))
    lines = _label_lines(lines)
    lines.sort(key=lambda ln: (ln.dataset, ln.encoder, ln.task == "all", ln.task, ln.attack != "none",
                               ln.attack, ln.attack_label, ln.selection, ln.defense != "none",
                               ln.defense, ln.defense_params))
    return lines


HEADERS = ("dataset", "encoder", "task", "attack", "targets", "defense", "seeds", "poisons",
           "CA", "PA", "ASR", "hits", "clean ASR", "clean hits", "p(target)", "p(target) clean",
           "ΔASR [95% CI]", "Δp(target) [95% CI]", "ΔASR vs none [95% CI]", "ΔPA vs none",
           "poison recall", "poison precision", "clean removed", "clean used", "extra s")
DEFENSE_COLUMNS = HEADERS.index("ΔASR vs none [95% CI]")  # columns from here on: defenses only


def _fmt(stat: tuple[float, float] | None, digits: int = 3) -> str:
    return "-" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


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
    return [line.dataset, line.encoder, line.task, line.attack_label or line.attack, line.selection,
            defense_label(line),
            seeds, f"{line.n_poisons:.0f}", _fmt(s["ca"]), _fmt(s["pa"]), _fmt(s["asr"]), hits,
            _fmt(s["baseline_asr"]), clean_hits, _fmt(s["p_target"]), _fmt(s["p_target_clean"]),
            _fmt_ci(line.delta_asr), _fmt_ci(line.delta_p), *defense_cells(line)]


SHORT = {"poison_rate": "rate", "references": "refs", "targets_per_task": "targets"}


def _varying(lines: list[Line], kind: str) -> dict[int, str]:
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
    attack, defense = _varying(lines, "attack"), _varying(lines, "defense")
    return [dataclasses.replace(ln, attack_label=attack[id(ln)], defense_label=defense[id(ln)])
            for ln in lines]


def defense_label(line: Line) -> str:
    """The defense with the settings that tell its lines apart (all of them if not labelled)."""
    if line.defense_label:
        return line.defense_label
    params = json.loads(line.defense_params)
    if not params:
        return line.defense
    return f"{line.defense}(" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"


def defense_cells(line: Line) -> list[str]:
    s = line.stats
    if line.defense == "none":
        return ["-"] * (len(HEADERS) - DEFENSE_COLUMNS)
    return [_fmt_ci(line.delta_asr_defense), _fmt(s["delta_pa_defense"]), _fmt(s["poison_recall"]),
            _fmt(s["poison_precision"]), _fmt(s["clean_removed"], 1), _fmt(s["clean_used"], 0),
            _fmt(s["defense_extra_s"], 0)]


FOOTNOTE = ("mean ± std over seeds; CA = clean twin's accuracy, PA = this encoder's, targets "
            "excluded; ASR over target pairs; hits = successes / pairs over all seeds; Δ = vs the "
            "paired clean twin per target pair, 95% bootstrap CI over seeds and pairs, n.s. = CI "
            "contains 0; * = fewer than 3 seeds (not publishable); defenses: ΔASR / ΔPA vs the "
            "undefended poisoned encoder of the same seed, poison recall / precision and clean "
            "images removed by a filter, clean images a repair used, extra wall seconds")


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
    shown = len(HEADERS) if any(ln.defense != "none" for ln in lines) else DEFENSE_COLUMNS
    for h in HEADERS[:shown]:
        numeric = h[0].isupper() or h in ("seeds", "poisons", "hits")
        table.add_column(h, justify="right" if numeric else "left")
    for ln in lines:
        table.add_row(*cells(ln)[:shown])
    return table


SORT_KEYS = {
    "ca": lambda ln: ln.stats["ca"], "pa": lambda ln: ln.stats["pa"],
    "asr": lambda ln: ln.stats["asr"], "p_target": lambda ln: ln.stats["p_target"],
    "delta_asr": lambda ln: ln.delta_asr, "delta_p": lambda ln: ln.delta_p,
    "delta_asr_defense": lambda ln: ln.delta_asr_defense,
    "delta_pa_defense": lambda ln: ln.stats["delta_pa_defense"],
    **{m: (lambda ln, m=m: ln.stats[m]) for m in DEFENSE_METRICS},
}


def sort_lines(lines: Sequence[Line], key: str) -> list[Line]:
    """Lines ordered by a metric's mean (`-key`: descending); lines without it go last."""
    name = key.removeprefix("-")
    if name not in SORT_KEYS:
        from pe_bench.errors import PeBenchError

        raise PeBenchError(f"--sort: unknown metric {name!r}; choose from {', '.join(SORT_KEYS)}")

    def value(ln: Line) -> float | None:
        v = SORT_KEYS[name](ln)
        return None if v is None else (v.mean if isinstance(v, Interval) else v[0])

    present = [ln for ln in lines if value(ln) is not None]
    present.sort(key=lambda ln: value(ln), reverse=key.startswith("-"))  # type: ignore[arg-type,return-value]
    return present + [ln for ln in lines if value(ln) is None]
