"""The per-seed table: one line per trial and task, the numbers a leaderboard line aggregates.

The seed is the unit of every backdoor test and of every ΔPA interval, so a reader judging a
line (is the effect at every seed, or large at a few and absent at the rest?) needs each seed's
numbers: its hits, ASR beside the paired clean twin's on the same inputs (ΔASR), CA and PA, the
backdoor's target class for that seed, and for a defended trial the undefended poisoned
encoder's ASR and PA. Generated from the store like the leaderboard (`pe-bench leaderboard
--by-seed`); nothing here is a test or an interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pe_bench.report import text_table
from pe_bench.report.leaderboard import task_views, varying

NOTE = ("one line per trial and task; hits = successes / target pairs (targeted) or target-class "
        "predictions / triggered inputs of the other classes (backdoor), on this encoder and on the "
        "paired clean twin (same inputs); ΔASR = ASR - clean ASR; ΔPA = PA - CA (same test images); "
        "target class = the backdoor's target class drawn for the seed (- : targeted, whose pairs have "
        "their own; ? : a store from before it was recorded); undefended = the poisoned encoder "
        "without the defense, same seed")


@dataclass(frozen=True)
class SeedLine:
    """One trial's numbers on one task (`view`: pe_bench.report.leaderboard's per-task view of the
    row); the plugin names and params are what `varying` reads to name each plugin by the
    params that tell its lines apart (`*_label`)."""

    row: dict[str, Any]
    view: dict[str, Any]
    attack: str
    attack_params: str
    encoder: str
    encoder_params: str
    defense: str
    defense_params: str
    attack_label: str = ""
    defense_label: str = ""
    encoder_label: str = ""


PLUGINS = ("attack", "encoder", "defense")


def _bare(row: dict[str, Any], view: dict[str, Any]) -> SeedLine:
    names = {f: str(row[f]) for f in PLUGINS}
    params = {f"{f}_params": str(row[f"{f}_params"] or "{}") for f in PLUGINS}
    return SeedLine(row, view, **names, **params)


def seed_lines(rows: Sequence[dict[str, Any]]) -> list[SeedLine]:
    """Every (trial, task) of `rows` (the latest ok row per trial), labelled and ordered as the
    leaderboard orders its lines, seeds ascending within a cell."""
    bare = [_bare(row, view) for row in rows for view in task_views(row)]
    labels = {kind: varying(bare, kind) for kind in PLUGINS}
    lines = [dataclasses.replace(s, attack_label=labels["attack"][id(s)],
                                 defense_label=labels["defense"][id(s)],
                                 encoder_label=labels["encoder"][id(s)]) for s in bare]
    lines.sort(key=lambda s: (s.row["dataset"], s.encoder_label, s.view["task"] == "all", s.view["task"],
                              s.attack != "none", s.attack_label, s.defense != "none", s.defense_label,
                              s.row["seed"]))
    return lines


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a - b:+.3f}"


def _hits(view: dict[str, Any], triggered: str, pairs: str) -> str:
    if view.get("n_triggered"):
        return f"{int(view.get(triggered) or 0)}/{int(view['n_triggered'])}"
    return f"{int(view.get(pairs) or 0)}/{int(view['n_targets'])}" if view.get("n_targets") else "-"


def _target(line: SeedLine) -> str:
    if line.view.get("trigger_target") is not None:
        return str(line.view["trigger_target"])
    return "?" if line.row.get("family") == "backdoor" and line.view["task"] != "all" else "-"


def _undefended_hits(view: dict[str, Any]) -> str:
    if view.get("n_triggered"):
        return _hits(view, "triggered_hits_undefended", "")
    hits = sum(bool(t.get("hit_undefended")) for t in view.get("targets") or [])
    return f"{hits}/{int(view['n_targets'])}" if view.get("n_targets") else "-"


Cell = Callable[[SeedLine], str]
COLUMNS: tuple[tuple[str, Cell, bool], ...] = (  # (header, cell, only for a defended table)
    ("dataset", lambda s: str(s.row["dataset"]), False),
    ("encoder", lambda s: s.encoder_label, False),
    ("task", lambda s: str(s.view["task"]), False),
    ("attack", lambda s: s.attack_label, False),
    ("family", lambda s: "-" if s.attack == "none" else str(s.row.get("family") or "targeted"), False),
    ("defense", lambda s: s.defense_label, True),
    ("seed", lambda s: str(s.row["seed"]), False),
    ("target class", _target, False),
    ("hits", lambda s: _hits(s.view, "triggered_hits", "successes"), False),
    ("clean hits", lambda s: _hits(s.view, "triggered_hits_clean", "hits_clean"), False),
    ("ASR", lambda s: _rate(s.view.get("asr")), False),
    ("clean ASR", lambda s: _rate(s.view.get("baseline_asr")), False),
    ("ΔASR", lambda s: _delta(s.view.get("asr"), s.view.get("baseline_asr")), False),
    ("CA", lambda s: _rate(s.view["ca"]), False),
    ("PA", lambda s: _rate(s.view["pa"]), False),
    ("ΔPA", lambda s: _delta(s.view["pa"], s.view["ca"]), False),
    ("undefended hits", lambda s: _undefended_hits(s.view), True),
    ("undefended ASR", lambda s: _rate(s.view.get("asr_undefended")), True),
    ("undefended PA", lambda s: _rate(s.view.get("pa_undefended")), True),
)


def shown(lines: Sequence[SeedLine]) -> list[tuple[str, Cell]]:
    """The columns: the defense ones only when some trial has a defense."""
    defended = any(s.defense != "none" for s in lines)
    return [(h, c) for h, c, defense_only in COLUMNS if defended or not defense_only]


def _cells(lines: Sequence[SeedLine]) -> tuple[list[str], list[list[str]]]:
    cols = shown(lines)
    return [h for h, _ in cols], [[c(s) for _, c in cols] for s in lines]


def to_markdown(lines: Sequence[SeedLine], title: str, source: str = "") -> str:
    return text_table.markdown(title, source, *_cells(lines), NOTE)


def to_csv(lines: Sequence[SeedLine]) -> str:
    return text_table.csv_text(*_cells(lines))


def to_rich(lines: Sequence[SeedLine], title: str) -> Any:
    return text_table.rich(title, *_cells(lines), NOTE)
