"""Defense settings compared with each other, paired: which ones a board separates.

The leaderboard's `vs none` columns compare each defense with the undefended poisoned encoder
of the same seed. Two defenses of one seed share that seed's draw (the poisoned data, the
target class or target pairs, the undefended encoder a repair starts from), so they are
compared with each other the same way (`pe-bench leaderboard --defense-pairs`):
- backdoor: ASR_A - ASR_B per seed, on the same triggered inputs;
- targeted: hit_A - hit_B per (seed, target pair) both hold, averaged per seed;
- PA_A - PA_B per seed (same test images).
The seed is the unit (one encoder per seed): Student-t interval and exact sign-flip test over
seeds (pe_bench.report.stats). Only seeds both settings hold count. p-values are Holm-adjusted
over every pair of the table, per column: with n seeds and m pairs a pair needs an exact p of
at most 0.05/m, and the sign-flip test over n seeds cannot go below 2/2^n; an interval that
excludes 0 is not a verdict (the note under the table says how many pairs count).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pe_bench.report import text_table
from pe_bench.report.columns import pick_view
from pe_bench.report.lines import PairLine, SeedLine
from pe_bench.report.pairing import outcomes
from pe_bench.report.per_seed import seed_lines
from pe_bench.report.stats import Interval, adjusted, mean_present, paired_interval, seed_interval
from pe_bench.store.schema import TrialRow

__all__ = ["PairLine", "note", "pair_lines", "to_csv", "to_markdown", "to_rich"]

NOTE = ("A and B = two defense settings of the same attack and setup; ΔASR (A - B): backdoor lines per "
        "seed on the same triggered inputs, targeted lines per target pair averaged per seed; ΔPA "
        "(A - B) per seed, same test images; 95% t CI and sign-flip test over seeds; seeds = seeds both settings hold; "
        "ASR = mean over those seeds; p = exact test, Holm-adjusted over the table's {m} pairs per "
        "column; n.s. = adjusted p >= 0.05")
# the table's columns, in its order, from the one column table (pe_bench.report.columns)
COLUMNS = pick_view(("dataset", "encoder", "task", "attack", "first", "second", "seeds", "asr_first",
                     "asr_second", "delta_asr_pair", "p_delta_asr_pair", "delta_pa_pair", "p_delta_pa_pair"),
                    lambda c: c.pair)


def _asr(line: SeedLine) -> float:
    return float(line.view.metrics.asr or 0.0)


def _d_asr(a: dict[int, SeedLine], b: dict[int, SeedLine], seeds: Sequence[int]) -> Interval | None:
    if all(a[s].view.metrics.n_triggered for s in seeds):
        return seed_interval([(s, _asr(a[s]) - _asr(b[s])) for s in seeds])
    mine, theirs = (outcomes([(x[s].row, x[s].view) for s in seeds]) for x in (a, b))
    hits = {(s, t): float(x.hit) for s, t, x in theirs}
    return paired_interval([(s, t, float(x.hit) - hits[s, t]) for s, t, x in mine if (s, t) in hits])


def _pair(setup: tuple[str, str, str], attack: str, first: str, second: str,
          a: dict[int, SeedLine], b: dict[int, SeedLine]) -> PairLine | None:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d_pa = seed_interval([(s, a[s].view.metrics.pa - b[s].view.metrics.pa) for s in seeds])
    asr_a, asr_b = (mean_present([x[s].view.metrics.asr for s in seeds]) for x in (a, b))
    return PairLine(setup, attack, first, second, len(seeds), asr_a, asr_b, _d_asr(a, b, seeds), d_pa)


def pair_lines(rows: Sequence[TrialRow]) -> list[PairLine]:
    """Every pair of defense settings (not `none`: the board's vs-none columns are that) of each
    attack and setup in `rows` (the latest ok row per trial), in the leaderboard's order, with
    p-values Holm-adjusted over the returned pairs per column. Two trials are settings of one
    cell when their rows' `defense_free_key` agree: the same spec but for the defense and seed
    (data, encoder, attack with its params and target selection, training, evaluation), like the
    board's cell key not the suite's name (the same work in two suites is one cell)."""
    groups: dict[tuple[str, str], dict[str, dict[int, SeedLine]]] = {}
    heads: dict[tuple[str, str], SeedLine] = {}  # a line of each group: what names its setup
    for s in seed_lines(rows):
        if s.attack != "none" and s.defense != "none":
            key = (s.row.defense_free_key, s.view.task)
            heads.setdefault(key, s)
            groups.setdefault(key, {}).setdefault(s.defense_label, {})[s.row.seed] = s
    out = []
    for key, settings in groups.items():  # seed_lines' order: the board's
        head = heads[key]
        setup = (head.row.dataset, head.encoder_label, head.view.task)
        for first, second in itertools.combinations(settings, 2):
            line = _pair(setup, head.attack_label, first, second, settings[first], settings[second])
            if line is not None:
                out.append(line)
    asr, pa = adjusted([ln.d_asr for ln in out]), adjusted([ln.d_pa for ln in out])
    return [replace(ln, d_asr=x, d_pa=y) for ln, x, y in zip(out, asr, pa, strict=True)]


def note(lines: Sequence[PairLine]) -> str:
    return NOTE.format(m=len(lines))


def _cells(lines: Sequence[PairLine]) -> tuple[list[str], list[list[str]]]:
    return ([view.header or c.header for c, view in COLUMNS],
            [[view.cell(p) for _, view in COLUMNS] for p in lines])


def to_markdown(lines: Sequence[PairLine], title: str, source: str = "") -> str:
    return text_table.markdown(title, source, *_cells(lines), note(lines))


def to_csv(lines: Sequence[PairLine]) -> str:
    return text_table.csv_text(*_cells(lines))


def to_rich(lines: Sequence[PairLine], title: str, width: int = 120) -> Any:
    """Stacked tables `width` wide, each repeating the pair's identity (setup, attack, A, B)."""
    return text_table.rich(title, *_cells(lines), note(lines), width, keys=6)
