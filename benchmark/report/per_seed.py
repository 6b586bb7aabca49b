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
from typing import Any

from pe_bench.report import text_table
from pe_bench.report.columns import pick_view
from pe_bench.report.labels import settings_of, usual_note, varying
from pe_bench.report.lines import SeedLine, task_views
from pe_bench.store.schema import TrialRow

__all__ = ["SeedLine", "seed_lines", "shown", "to_csv", "to_markdown", "to_rich"]

NOTE = ("one line per trial and task; hits = successes / target pairs (targeted) or target-class "
        "predictions / triggered inputs of the other classes (backdoor), on this encoder and on the "
        "paired clean twin (same inputs); ΔASR = ASR - clean ASR; ΔPA = PA - CA (same test images); "
        "target class = the backdoor's target class drawn for the seed (- : targeted, whose pairs have "
        "their own; ? : a store from before it was recorded); undefended = the poisoned encoder "
        "without the defense, same seed")
# the table's columns, in its order, from the one column table (pe_bench.report.columns)
COLUMNS = pick_view(("dataset", "encoder", "task", "attack", "family", "defense", "seed", "target_class",
                     "hits", "clean_hits", "asr", "baseline_asr", "delta_asr", "ca", "pa", "delta_pa",
                     "undefended_hits", "asr_undefended", "pa_undefended"), lambda c: c.seed)


KINDS = ("attack", "defense", "encoder")  # the plugins a per-seed line labels by their settings


def labels_note(rows: Sequence[TrialRow]) -> str:
    """What the labels of `seed_lines(rows)` leave out (pe_bench.report.labels), or "": the
    per-seed and defense-pair tables name their settings by it."""
    return usual_note(*settings_of(rows, KINDS))


def seed_lines(rows: Sequence[TrialRow]) -> list[SeedLine]:
    """Every (trial, task) of `rows` (the latest ok row per trial), labelled and ordered as the
    leaderboard orders its lines, seeds ascending within a cell."""
    bare = [SeedLine(row, view) for row in rows for view in task_views(row)]
    attack, defense, encoder = (varying(*group) for group in settings_of([s.row for s in bare], KINDS))
    lines = [dataclasses.replace(s, attack_label=a, defense_label=d, encoder_label=e)
             for s, a, d, e in zip(bare, attack, defense, encoder, strict=True)]
    lines.sort(key=lambda s: (s.row.dataset, s.encoder_label, s.view.task == "all", s.view.task,
                              s.attack != "none", s.attack_label, s.defense != "none", s.defense_label,
                              s.row.seed))
    return lines


def shown(lines: Sequence[SeedLine]) -> list[tuple[str, Callable[[SeedLine], str]]]:
    """The columns (header, cell): the defense ones only when some trial has a defense."""
    defended = any(s.defense != "none" for s in lines)
    return [(view.header or c.header, view.cell) for c, view in COLUMNS if defended or not view.defense_only]


def _cells(lines: Sequence[SeedLine]) -> tuple[list[str], list[list[str]]]:
    cols = shown(lines)
    return [h for h, _ in cols], [[c(s) for _, c in cols] for s in lines]


def to_markdown(lines: Sequence[SeedLine], title: str, source: str = "") -> str:
    return text_table.markdown(title, source, *_cells(lines), NOTE)


def to_csv(lines: Sequence[SeedLine]) -> str:
    return text_table.csv_text(*_cells(lines))


def to_rich(lines: Sequence[SeedLine], title: str, width: int = 120) -> Any:
    """Stacked tables `width` wide, each repeating the trial's identity (dataset to seed)."""
    return text_table.rich(title, *_cells(lines), NOTE, width, keys=7)
