"""Defense settings compared with each other, paired: which ones a board separates.

The leaderboard's `vs none` columns compare each defense with the undefended poisoned encoder
of the same seed. Two defenses of one seed share that seed's draw (the poisoned data, the
target class or target pairs, the undefended encoder a repair starts from), so they are
compared with each other the same way (`pe-bench leaderboard --defense-pairs`):
- backdoor: ASR_A - ASR_B per seed, on the same triggered inputs; the seed is the unit (one
  encoder per seed): bootstrap over seeds, exact sign-flip test over seeds;
- targeted: hit_A - hit_B per (seed, target pair) both hold: seeds and distinct targets
  resampled, sign-flip test over distinct targets (pe_bench.report.stats.paired_interval);
- PA_A - PA_B per seed (same test images).
Only seeds both settings hold count. p-values are Holm-adjusted over every pair of the table,
per column: with n seeds and m pairs a pair needs an exact p of at most 0.05/m, and the
sign-flip test over n seeds cannot go below 2/2^n, so a large table can separate pairs by
interval that its adjusted test cannot (the note under the table says how many pairs count).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pe_bench.report import text_table
from pe_bench.report.column_kinds import fmt_ci
from pe_bench.report.pairing import outcomes
from pe_bench.report.per_seed import SeedLine, seed_lines
from pe_bench.report.stats import Interval, adjusted, paired_interval, seed_interval

NOTE = ("A and B = two defense settings of the same attack and setup; ΔASR (A - B): backdoor lines per "
        "seed on the same triggered inputs (95% CI resampling seeds, sign-flip test over seeds), "
        "targeted lines per target pair (seeds and distinct targets resampled, sign-flip test over "
        "distinct targets); ΔPA (A - B) per seed, same test images; seeds = seeds both settings hold; "
        "ASR = mean over those seeds; p = exact test, Holm-adjusted over the table's {m} pairs per "
        "column; n.s. = adjusted p >= 0.05")


DEFENSE_SIDE = ("defense", "seed", "plugins", "suite")  # spec fields two compared trials may differ in


@dataclass(frozen=True)
class PairLine:
    """Defense settings `first` and `second` of one attack and setup, over their common seeds."""

    setup: tuple[str, str, str]  # dataset, encoder label, task
    attack: str  # the attack label
    first: str  # defense labels
    second: str
    seeds: int
    asr_first: float | None
    asr_second: float | None
    d_asr: Interval | None
    d_pa: Interval | None


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _d_asr(a: dict[int, SeedLine], b: dict[int, SeedLine], seeds: Sequence[int]) -> Interval | None:
    if all(a[s].view.get("n_triggered") for s in seeds):
        return seed_interval([(s, float(a[s].view["asr"]) - float(b[s].view["asr"])) for s in seeds])
    mine, theirs = (outcomes([(x[s].row, x[s].view) for s in seeds]) for x in (a, b))
    hits = {(s, t): float(x["hit"]) for s, t, x in theirs}
    return paired_interval([(s, t, float(x["hit"]) - hits[s, t]) for s, t, x in mine if (s, t) in hits])


def _pair(setup: tuple[str, str, str], attack: str, first: str, second: str,
          a: dict[int, SeedLine], b: dict[int, SeedLine]) -> PairLine | None:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d_pa = seed_interval([(s, float(a[s].view["pa"]) - float(b[s].view["pa"])) for s in seeds])
    asr_a, asr_b = (_mean([x[s].view.get("asr") for s in seeds]) for x in (a, b))
    return PairLine(setup, attack, first, second, len(seeds), asr_a, asr_b, _d_asr(a, b, seeds), d_pa)


def _undefended_cell(row: dict[str, Any]) -> str:
    """What two trials must share to be compared: the trial's spec (data, encoder, attack with its
    params and target selection, training, evaluation) without its defense and seed; like the
    board's cell key, not the suite's name (the same work in two suites is one cell)."""
    spec = json.loads(row["spec_json"] or "{}")
    return json.dumps({k: v for k, v in spec.items() if k not in DEFENSE_SIDE}, sort_keys=True)


def pair_lines(rows: Sequence[dict[str, Any]]) -> list[PairLine]:
    """Every pair of defense settings (not `none`: the board's vs-none columns are that) of each
    attack and setup in `rows` (the latest ok row per trial), in the leaderboard's order, with
    p-values Holm-adjusted over the returned pairs per column."""
    groups: dict[tuple[str, str], dict[str, dict[int, SeedLine]]] = {}
    heads: dict[tuple[str, str], SeedLine] = {}  # a line of each group: what names its setup
    for s in seed_lines(rows):
        if s.attack != "none" and s.defense != "none":
            key = (_undefended_cell(s.row), str(s.view["task"]))
            heads.setdefault(key, s)
            groups.setdefault(key, {}).setdefault(s.defense_label, {})[int(s.row["seed"])] = s
    out = []
    for key, settings in groups.items():  # seed_lines' order: the board's
        head = heads[key]
        setup = (str(head.row["dataset"]), head.encoder_label, str(head.view["task"]))
        for first, second in itertools.combinations(settings, 2):
            line = _pair(setup, head.attack_label, first, second, settings[first], settings[second])
            if line is not None:
                out.append(line)
    asr, pa = adjusted([ln.d_asr for ln in out]), adjusted([ln.d_pa for ln in out])
    return [replace(ln, d_asr=x, d_pa=y) for ln, x, y in zip(out, asr, pa, strict=True)]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _p(ci: Interval | None) -> str:
    if ci is None or ci.p_adjusted is None:
        return "-"
    return "< 0.001" if ci.p_adjusted < 0.001 else f"{ci.p_adjusted:.3f}"


Cell = Callable[[PairLine], str]
COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("dataset", lambda p: p.setup[0]),
    ("encoder", lambda p: p.setup[1]),
    ("task", lambda p: p.setup[2]),
    ("attack", lambda p: p.attack),
    ("A", lambda p: p.first),
    ("B", lambda p: p.second),
    ("seeds", lambda p: str(p.seeds)),
    ("ASR A", lambda p: _rate(p.asr_first)),
    ("ASR B", lambda p: _rate(p.asr_second)),
    ("ΔASR (A - B) [95% CI]", lambda p: fmt_ci(p.d_asr)),
    ("p ΔASR", lambda p: _p(p.d_asr)),
    ("ΔPA (A - B) [95% CI]", lambda p: fmt_ci(p.d_pa)),
    ("p ΔPA", lambda p: _p(p.d_pa)),
)


def note(lines: Sequence[PairLine]) -> str:
    return NOTE.format(m=len(lines))


def _cells(lines: Sequence[PairLine]) -> tuple[list[str], list[list[str]]]:
    return [h for h, _ in COLUMNS], [[c(p) for _, c in COLUMNS] for p in lines]


def to_markdown(lines: Sequence[PairLine], title: str, source: str = "") -> str:
    return text_table.markdown(title, source, *_cells(lines), note(lines))


def to_csv(lines: Sequence[PairLine]) -> str:
    return text_table.csv_text(*_cells(lines))


def to_rich(lines: Sequence[PairLine], title: str) -> Any:
    return text_table.rich(title, *_cells(lines), note(lines))
