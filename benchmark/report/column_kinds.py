"""How a column is built: the `Column` record and its constructors (a metric averaged over
seeds, a paired interval, its p-value, a setting's name, a value pooled over a line's trials, a
column of the per-seed or pair table only). The table itself, `TABLE`, is in
pe_bench.report.columns."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pe_bench.report.lines import NUMBERS

if TYPE_CHECKING:
    from pe_bench.report.lines import Line, PairLine, SeedLine, TaskView
    from pe_bench.report.stats import Interval
    from pe_bench.store.metrics import TargetOutcome

T = TypeVar("T")
Record = dict[str, tuple[type, Any]]  # Parquet column -> (Python type, value)
PairField = Callable[["TargetOutcome"], float]  # a number of one target pair (a hit counts 1)
PREAMBLE = "mean ± std over seeds"
P_NOTE = ("p = exact paired sign-flip test over seeds (the seed is the unit: one encoder per seed), "
          "Holm-adjusted within the suite's declared family (docs/metrics.md); n.s. = adjusted p >= 0.05; "
          "expl. = exploratory, in no declared family: unadjusted p, never a verdict")


@dataclass(frozen=True)
class Shown(Generic[T]):
    """How a column reads in a table of `T` (a `SeedLine` or `PairLine`): its cell, its header
    there where that differs from the column's, and whether that table shows it only when one
    of its trials has a defense."""

    cell: Callable[[T], str]
    header: str = ""
    defense_only: bool = False


def by_seed(cell: Callable[[SeedLine], str], header: str = "", defense_only: bool = False) -> Shown[SeedLine]:
    """A column's cell in the per-seed table (typed, so the table's lambdas are checked)."""
    return Shown(cell, header, defense_only)


def by_pair(cell: Callable[[PairLine], str], header: str = "") -> Shown[PairLine]:
    """A column's cell in the defense-pairs table."""
    return Shown(cell, header)


@dataclass(frozen=True)
class Column:
    """One column of every table that has it. On a leaderboard line (`line`; the board's
    `COLUMNS`): `stat`: the line holds mean ± std over seeds of `stat(view)` under `key`;
    `paired`: the line holds an interval (pe_bench.report.stats) of one field of a target pair
    minus another under `key`; `per_seed`: likewise of a per-seed difference (with `paired`:
    for lines without target pairs, i.e. backdoor lines); `versus`: of this field minus the
    same field of the `--versus` attack's pair (pe_bench.report.pairing). `pooled`: the line
    holds one value computed from all its trials' views (e.g. an AUROC over seeds). `board`:
    shown in the Markdown/CSV/HTML boards (else only in the Parquet and on request; `on_versus`
    ones whenever lines compare attacks); `compact`: in the terminal's default set. `seed`,
    `pair`: how the per-seed table and the defense-pairs table show it (None: they do not)."""

    key: str
    header: str
    cell: Callable[[Line], str]
    record: Callable[[Line], Record]
    sort: Callable[[Line], float | None] | None = None
    note: str = ""
    stat: Callable[[TaskView], float | None] | None = None
    paired: tuple[PairField, PairField] | None = None
    per_seed: Callable[[TaskView], float | None] | None = None
    versus: PairField | None = None
    pooled: Callable[[Sequence[TaskView]], Any] | None = None
    defense_only: bool = False
    numeric: bool = True
    compact: bool = False
    board: bool = True
    filter: bool = False  # a drop-down filter on the published page
    identity: bool = False  # names the setting (never folded in the terminal)
    lift: bool = False  # the terminal's default view shows it once in the title when constant
    on_versus: bool = False  # every view shows it when the lines compare attacks (--versus)
    line: bool = True  # has a value on a leaderboard line (else: a per-seed or pair column only)
    seed: Shown[SeedLine] | None = None
    pair: Shown[PairLine] | None = None


def fmt(stat: tuple[float, float] | None, digits: int = 3) -> str:
    return "-" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def fmt_ci(ci: Interval | None) -> str:
    if ci is None:
        return "-"
    flag = {"supported": "", "n.s.": " n.s.", "exploratory": " expl."}[ci.verdict]
    return f"{ci.mean:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]{flag}"


def defense_label(line: Line) -> str:
    """The defense with the settings that tell its lines apart (all of them if not labelled)."""
    if line.defense_label:
        return line.defense_label
    params = json.loads(line.defense_params)
    if not params:
        return line.defense
    return f"{line.defense}(" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"


def designed_for(line: Line) -> str:
    """Whether the line's defense was designed against its attack's family (`yes`), or the
    line measures it outside its design (`off-target`, `pe_bench.config.grid.off_target`): as its
    rows carry it, written when they were; `-` without an attack or a defense, `?` where the
    plugins could not be resolved."""
    if line.defense == "none" or line.attack == "none":
        return "-"
    return line.designed_for or "?"


def _defended(line: Line, text: str) -> str:
    return "-" if line.defense == "none" else text


def mean_of(key: str, stat: Callable[[TaskView], float | None] | None = None, header: str = "",
            note: str = "", digits: int = 3, **flags: Any) -> Column:
    """A number averaged over seeds: the metric or defense-report field named `key`, unless
    `stat` computes it from one trial's view (a key that is neither fails here, on import, not
    as a column of dashes)."""
    if stat is None and key not in NUMBERS:
        raise ValueError(f"mean_of({key!r}): no number of the metrics or defense report, and no stat")

    def cell(ln: Line) -> str:
        text = fmt(ln.stats[key], digits)
        return _defended(ln, text) if flags.get("defense_only") else text

    def record(ln: Line) -> Record:
        s = ln.stats[key]
        return {f"{key}_mean": (float, None if s is None else s[0]),
                f"{key}_std": (float, None if s is None else s[1])}

    return Column(key, header or key, cell, record, lambda ln: _first(ln.stats[key]), note,
                  stat=stat or (lambda view: view.number(key)), **flags)


def _first(stat: tuple[float, float] | None) -> float | None:
    return None if stat is None else stat[0]


def paired(key: str, header: str, fields: tuple[PairField, PairField] | None, note: str,
           **flags: Any) -> Column:
    """A paired difference with its interval and exact test: per target pair (`fields`: this
    minus that), or as `flags` say (`per_seed=...`, `versus=...`)."""

    def cell(ln: Line) -> str:
        text = fmt_ci(ln.intervals[key])
        return _defended(ln, text) if flags.get("defense_only") else text

    def record(ln: Line) -> Record:
        ci = ln.intervals[key]
        parts = {"mean": "mean", "low": "low", "high": "high", "p": "p", "p_holm": "p_adjusted"}
        return {**{f"{key}_{name}": (float, None if ci is None else getattr(ci, part))
                   for name, part in parts.items()},
                f"{key}_units": (int, None if ci is None else ci.units),
                f"{key}_untied": (int, None if ci is None else ci.untied),  # the seeds its test used
                f"{key}_family": (str, None if ci is None else ci.family),
                f"{key}_verdict": (str, None if ci is None else ci.verdict)}

    def sort(ln: Line) -> float | None:
        ci = ln.intervals[key]
        return None if ci is None else ci.mean

    return Column(key, header, cell, record, sort, note, paired=fields, **flags)


def p_value(of: str, header: str, **flags: Any) -> Column:
    """The Holm-adjusted p-value of `of`'s exact test within its declared family; an exploratory
    comparison's unadjusted p, marked `expl.` (its raw p is in `of`'s record either way)."""

    def value(ln: Line) -> float | None:
        ci = ln.intervals[of]
        return None if ci is None else ci.p if ci.family is None else ci.p_adjusted

    def cell(ln: Line) -> str:
        p = value(ln)
        text = "-" if p is None else f"{p:.3f}" if p >= 0.001 else "<0.001"
        ci = ln.intervals[of]
        text += " expl." if ci is not None and ci.family is None and p is not None else ""
        return _defended(ln, text) if flags.get("defense_only") else text

    return Column(f"p_{of}", header, cell, lambda ln: {}, value, P_NOTE, **flags)


def named(key: str, value: Callable[[Line], str], extra: Callable[[Line], Record] | None = None,
          header: str = "", note: str = "", **flags: Any) -> Column:
    """A column naming part of the setting (dataset, encoder, attack...)."""

    def record(ln: Line) -> Record:
        return {key: (str, value(ln)), **(extra(ln) if extra else {})}

    return Column(key, header or key, value, record, note=note, numeric=False, identity=True, lift=True,
                  **flags)


def pooled(key: str, header: str, value: Callable[[Sequence[TaskView]], Any], text: Callable[[Any], str],
           note: str, parts: tuple[str, ...] = (), **flags: Any) -> Column:
    """A defense's value computed once from all of a line's trials (`value(views)`), shown by
    `text`: a number, or with `parts` a tuple of counts (one Parquet field per part)."""

    def number(ln: Line) -> float | None:
        got = ln.pooled.get(key)
        return None if got is None or parts else float(got)

    def record(ln: Line) -> Record:
        got = ln.pooled.get(key)
        if parts:
            return {f"{key}_{p}": (int, None if got is None else got[i]) for i, p in enumerate(parts)}
        return {key: (float, number(ln))}

    def cell(ln: Line) -> str:
        return _defended(ln, "-" if ln.pooled.get(key) is None else text(ln.pooled[key]))

    return Column(key, header, cell, record, None if parts else number, note, pooled=value,
                  defense_only=True, **flags)


def _no_line(key: str) -> Callable[[Line], str]:
    def cell(ln: Line) -> str:
        raise ValueError(f"column {key!r} has no value on a leaderboard line")

    return cell


def listed(key: str, header: str, *, seed: Shown[SeedLine] | None = None,
           pair: Shown[PairLine] | None = None) -> Column:
    """A column of the per-seed or pair table only (a trial's seed, the two settings compared):
    nothing a leaderboard line aggregates."""
    return Column(key, header, _no_line(key), lambda ln: {}, line=False, board=False, numeric=False,
                  seed=seed, pair=pair)
