"""Defense settings compared with each other, paired: which ones a board separates.

The leaderboard's `vs none` columns compare each defense with the undefended poisoned encoder
of the same seed. Two defenses of one seed share that seed's draw (the poisoned data, the
target class or target pairs, the undefended encoder a repair starts from), so they are
compared with each other the same way (`pe-bench leaderboard --defense-pairs`):
- backdoor: ASR_A - ASR_B per seed, on the same triggered inputs;
- targeted: hit_A - hit_B per (seed, target pair) both hold, averaged per seed;
- PA_A - PA_B per seed (same test images).
The seed is the unit (one encoder per seed): Student-t interval and exact sign-flip test over
seeds (pe_bench.report.stats). Only seeds both settings hold count. A pair's ΔASR is a test only
where its suite declared it in a `defense-pair` family (pe_bench.config.comparisons): Holm within
that family, with m pairs each needs an exact p of at most 0.05/m, and the sign-flip test over n
seeds cannot go below 2/2^n. Every other pair's ΔASR, and every pair's ΔPA, is exploratory: its
unadjusted p, never a verdict; an interval that excludes 0 is never one either.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pe_bench.report import text_table
from pe_bench.report.columns import pick_view
from pe_bench.report.lines import PairLine, SeedLine
from pe_bench.report.pairing import Families, outcomes
from pe_bench.report.per_seed import seed_lines
from pe_bench.report.stats import Interval, in_families, mean_present, paired_interval, seed_interval
from pe_bench.store.declarations import DEFAULT
from pe_bench.store.schema import TrialRow

__all__ = ["PairLine", "note", "pair_lines", "to_csv", "to_markdown", "to_rich"]

NOTE = ("A and B = two defense settings of the same attack and setup; ΔASR (A - B): backdoor lines per "
        "seed on the same triggered inputs, targeted lines per target pair averaged per seed; ΔPA "
        "(A - B) per seed, same test images; 95% t CI and sign-flip test over seeds; seeds = seeds both settings hold; "
        "ASR = mean over those seeds; p = exact test: Holm-adjusted within the suite's declared "
        "defense-pair family ({m} of the table's {n} pairs; n.s. = adjusted p >= 0.05), else "
        "expl. = exploratory, unadjusted p, never a verdict")
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
    head_a, head_b = a[seeds[0]].row, b[seeds[0]].row
    suites = tuple(sorted({x[s].row.suite for x in (a, b) for s in seeds}))
    return PairLine(setup, attack, first, second, len(seeds), asr_a, asr_b, _d_asr(a, b, seeds), d_pa,
                    names=(head_a.attack, head_a.defense, head_b.defense), suites=suites,
                    encoder_name=head_a.encoder, attack_params=head_a.attack_params)


def pair_lines(rows: Sequence[TrialRow], families: Families = lambda _: DEFAULT) -> list[PairLine]:
    """Every pair of defense settings (not `none`: the board's vs-none columns are that) of each
    attack and setup in `rows` (the latest ok row per trial), in the leaderboard's order; ΔASR
    p-values Holm-adjusted within each suite's declared defense-pair families (`families`),
    every other p exploratory. Two trials are settings of one
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
    return _corrected(out, families)


def _corrected(lines: list[PairLine], families: Families) -> list[PairLine]:
    """ΔASR tested within the suite's declared defense-pair family that covers the pair (every
    other ΔASR, and every ΔPA, exploratory)."""
    d_asr = in_families([(ln.d_asr, _family(ln, families)) for ln in lines])
    d_pa = in_families([(ln.d_pa, None) for ln in lines])
    return [replace(ln, d_asr=x, d_pa=y) for ln, x, y in zip(lines, d_asr, d_pa, strict=True)]


def _family(line: PairLine, families: Families) -> tuple[str, str] | None:
    if len(line.suites) != 1:
        return None
    found = [f.family for f in families(line.suites[0])
             if f.covers_pair(line.setup[0], line.encoder_name, *line.names,
                              attack_params=json.loads(line.attack_params))]
    return (line.suites[0], found[0]) if found else None


def note(lines: Sequence[PairLine]) -> str:
    tested = sum(ln.d_asr is not None and ln.d_asr.family is not None for ln in lines)
    return NOTE.format(m=tested, n=len(lines))


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
