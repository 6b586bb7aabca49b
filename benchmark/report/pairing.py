"""The paired comparisons behind a leaderboard's intervals and tests.

Every interval column of pe_bench.report.columns is one of three kinds, each computed here from a
line's members (store row, task view): `paired` (a target pair's field against another field
of the same pair, e.g. hit vs the clean twin's hit), `per_seed` (a per-seed difference, e.g.
PA - CA of the paired twin) and `versus` (a field of this line's pairs against the same field of
another attack's line at the same setting, matched by seed and target identity). A target's
identity is (task, index, target_class). p-values are Holm-adjusted within the families the
line's suite declared (pe_bench.config.comparisons: `correct`), never over whichever lines a table
holds; a comparison no family covers is exploratory. A comparison that is zero by construction
(a `none` defense, a detector that changes no encoder, against none) is no test and is left out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

from pe_bench.store.declarations import DEFAULT, Family
from pe_bench.report.column_kinds import PairField
from pe_bench.report.columns import COLUMNS, Column
from pe_bench.report.lines import Line, Member, Outcome
from pe_bench.report.stats import Cell, Interval, in_families, paired_interval, seed_interval
from pe_bench.store.metrics import TargetOutcome

INTERVALS = tuple(c for c in COLUMNS if c.paired or c.per_seed or c.versus)


def outcomes(members: Sequence[Member]) -> tuple[Outcome, ...]:
    """Every (seed, target) a line rests on, in canonical order (never the order rows came in)."""
    found = [(row.seed, t.identity, t.outcome) for row, view in members for t in view.targets]
    return tuple(sorted(found, key=lambda o: (o[0], o[1])))


def _diff(fields: tuple[PairField, PairField], x: TargetOutcome) -> float:
    """One field of a target pair minus another (rows written before the second existed read
    it as the first: pe_bench.store.upgrade)."""
    return float(fields[0](x)) - float(fields[1](x))


def changes_encoder(members: Sequence[Member]) -> bool:
    """Whether the line's defense evaluates another encoder than the undefended one: any hook but
    `score_encoder` (a detector scores the encoder and changes nothing)."""
    hooks = {h for _, view in members for h in view.defense.defense_hooks.split(",") if h}
    return bool(hooks - {"score_encoder"})


def line_intervals(members: Sequence[Member], found: Sequence[Outcome],
                   attacked: bool = True) -> dict[str, Interval | None]:
    """The interval of every interval column for one line (versus columns: None until
    `compare` fills them; per-seed columns None on a line without an attack, whose encoder is
    its own twin: no comparison, and no test in the board's multiplicity correction; `vs none`
    columns None where the defense changes no encoder: zero by construction, not a test). A
    column both paired and per-seed reads per target pair where the line has pairs, else per
    seed (a backdoor's ΔASR: the seed is its unit)."""
    out: dict[str, Interval | None] = {}
    defended = changes_encoder(members)
    for c in INTERVALS:
        if c.defense_only and not defended:
            out[c.key] = None
        elif c.paired and (found or c.per_seed is None):
            fields = c.paired
            out[c.key] = paired_interval([(s, t, _diff(fields, x)) for s, t, x in found])
        elif c.per_seed and attacked:
            per_seed = c.per_seed
            values = [(row.seed, per_seed(view)) for row, view in members]
            out[c.key] = seed_interval([(s, v) for s, v in values if v is not None])
        else:
            out[c.key] = None
    return out


def _setting(line: Line) -> tuple[str, ...]:
    return (line.dataset, line.encoder, line.task, line.selection, line.defense, line.defense_params)


def _closeness(line: Line, other: Line) -> tuple[int, str]:
    """How many attack params two lines share (more is a closer partner), then a fixed tie-break."""
    mine, theirs = json.loads(line.attack_params), json.loads(other.attack_params)
    return (-sum(k in theirs and theirs[k] == v for k, v in mine.items()), other.attack_params)


def _versus(line: Line, other: Line, c: Column) -> Interval | None:
    """`c.versus` of this line's pairs minus the partner's, at each (seed, target) both hold."""
    field = c.versus
    if field is None:
        return None
    theirs = {(s, t): x for s, t, x in other.outcomes}
    cells: list[Cell] = [(s, t, float(field(x)) - float(field(theirs[s, t])))
                         for s, t, x in line.outcomes if (s, t) in theirs]
    return paired_interval(cells)


def compare(lines: Sequence[Line], attack: str) -> list[Line]:
    """Each line of another attack with its versus columns against `attack`'s line of the same
    setting (dataset, encoder, task, selection, defense); with several such lines, the one
    sharing most attack params. Lines without a partner keep None."""
    partners: dict[tuple[str, ...], list[Line]] = {}
    for ln in lines:
        if ln.attack == attack:
            partners.setdefault(_setting(ln), []).append(ln)
    out = []
    for ln in lines:
        found = partners.get(_setting(ln), []) if ln.attack not in (attack, "none") else []
        if found:
            other = min(found, key=lambda o: _closeness(ln, o))
            versus = {c.key: _versus(ln, other, c) for c in INTERVALS if c.versus}
            ln = dataclasses.replace(ln, intervals={**ln.intervals, **versus}, versus=attack)
        out.append(ln)
    return out


Families = Callable[[str], tuple[Family, ...]]  # a suite's name -> its declared families


def correct(lines: Sequence[Line], families: Families = lambda _: DEFAULT, partial: bool = False
            ) -> list[Line]:
    """The lines with every interval's family and `p_adjusted`: Holm within each (suite, family)
    over the comparisons it covers. An interval no family covers, or on a line whose rows come
    from several suites, or on a `partial` board (one run of a suite), is exploratory: family and
    p_adjusted None."""
    fixed = iter(in_families([(ci, None if ci is None else _family(ln, k, families, partial))
                              for ln in lines for k, ci in ln.intervals.items()]))
    return [dataclasses.replace(ln, intervals={k: next(fixed) for k in ln.intervals}) for ln in lines]


def _family(line: Line, key: str, families: Families, partial: bool) -> tuple[str, str] | None:
    """(suite, family) of a line's comparison `key`, or None: exploratory (no family covers it,
    a partial board, a line of several suites' rows)."""
    if partial or len(line.suites) != 1:
        return None
    found = [f.family for f in families(line.suites[0]) if f.column == key
             and f.covers(line.dataset, line.encoder_name, line.attack, line.defense, line.versus,
                          attack_params=json.loads(line.attack_params), defense_params=json.loads(line.defense_params))]
    return (line.suites[0], found[0]) if found else None
