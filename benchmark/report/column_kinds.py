"""How a leaderboard column is built: the `Column` record and its constructors (a metric
averaged over seeds, a paired interval, its p-value, a setting's name, a value pooled over a
line's trials). The table itself, `COLUMNS`, is in pe_bench.report.columns."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pe_bench.errors import PeBenchError
from pe_bench.config.grid import off_target

if TYPE_CHECKING:
    from pe_bench.report.lines import Line
    from pe_bench.report.stats import Interval

View = Mapping[str, Any]  # one trial's metrics for one task (or pooled over its tasks)
Record = dict[str, tuple[type, Any]]  # Parquet column -> (Python type, value)
PREAMBLE = "mean ± std over seeds"
P_NOTE = ("p = exact paired sign-flip test over distinct targets (McNemar's exact test when each "
          "target is seen once; over seeds for backdoor lines), Holm-adjusted over the board's lines "
          "per column; n.s. = adjusted p >= 0.05")


@dataclass(frozen=True)
class Column:
    """One leaderboard column. `stat`: the line holds mean ± std over seeds of `stat(view)`
    under `key`; `paired`: the line holds an interval (pe_bench.report.stats) of field minus versus
    per target pair under `key`; `per_seed`: likewise of a per-seed difference (with `paired`:
    for lines without target pairs, i.e. backdoor lines); `versus`: of
    this field minus the same field of the `--versus` attack's pair (pe_bench.report.pairing).
    `pooled`: the line holds one value computed from all its trials' views (e.g. an AUROC over
    seeds). `board`: shown in the Markdown/CSV/HTML boards (else only in the Parquet and on
    request; `on_versus` ones whenever lines compare attacks); `compact`: in the terminal's
    default set."""

    key: str
    header: str
    cell: Callable[[Line], str]
    record: Callable[[Line], Record]
    sort: Callable[[Line], float | None] | None = None
    note: str = ""
    stat: Callable[[View], float | None] | None = None
    paired: tuple[str, str] | None = None
    per_seed: Callable[[View], float | None] | None = None
    versus: str | None = None
    pooled: Callable[[Sequence[View]], Any] | None = None
    defense_only: bool = False
    numeric: bool = True
    compact: bool = False
    board: bool = True
    filter: bool = False  # a drop-down filter on the published page
    identity: bool = False  # names the setting (never folded in the terminal)
    lift: bool = False  # the terminal's default view shows it once in the title when constant
    on_versus: bool = False  # every view shows it when the lines compare attacks (--versus)


def fmt(stat: tuple[float, float] | None, digits: int = 3) -> str:
    return "-" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def fmt_ci(ci: Interval | None) -> str:
    if ci is None:
        return "-"
    flag = "" if ci.significant else " n.s."
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
    line measures it outside its design (`off-target`, `pe_bench.config.grid.off_target`); `-` without
    an attack or a defense, `?` where the defense's plugin is not installed here."""
    if line.defense == "none" or line.attack == "none":
        return "-"
    try:
        return "yes" if off_target(line.attack, line.defense, line.family) is None else "off-target"
    except PeBenchError:
        return "?"


def _defended(line: Line, text: str) -> str:
    return "-" if line.defense == "none" else text


def mean_of(key: str, stat: Callable[[View], float | None] | None = None, header: str = "", note: str = "",
            digits: int = 3, **flags: Any) -> Column:
    """A metric averaged over seeds: `view[key]` unless `stat` computes it."""

    def cell(ln: Line) -> str:
        text = fmt(ln.stats[key], digits)
        return _defended(ln, text) if flags.get("defense_only") else text

    def record(ln: Line) -> Record:
        s = ln.stats[key]
        return {f"{key}_mean": (float, None if s is None else s[0]),
                f"{key}_std": (float, None if s is None else s[1])}

    return Column(key, header or key, cell, record, lambda ln: _first(ln.stats[key]), note,
                  stat=stat or (lambda view: view.get(key)), **flags)


def _first(stat: tuple[float, float] | None) -> float | None:
    return None if stat is None else stat[0]


def paired(key: str, header: str, fields: tuple[str, str] | None, note: str, **flags: Any) -> Column:
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
                f"{key}_units": (int, None if ci is None else ci.units)}

    def sort(ln: Line) -> float | None:
        ci = ln.intervals[key]
        return None if ci is None else ci.mean

    return Column(key, header, cell, record, sort, note, paired=fields, **flags)


def p_value(of: str, header: str, **flags: Any) -> Column:
    """The Holm-adjusted p-value of `of`'s exact test (its raw p is in `of`'s record)."""

    def value(ln: Line) -> float | None:
        ci = ln.intervals[of]
        return None if ci is None else ci.p_adjusted

    def cell(ln: Line) -> str:
        p = value(ln)
        text = "-" if p is None else f"{p:.3f}" if p >= 0.001 else "<0.001"
        return _defended(ln, text) if flags.get("defense_only") else text

    return Column(f"p_{of}", header, cell, lambda ln: {}, value, P_NOTE, **flags)


def named(key: str, value: Callable[[Line], str], extra: Callable[[Line], Record] | None = None,
          header: str = "", note: str = "", **flags: Any) -> Column:
    """A column naming part of the setting (dataset, encoder, attack...)."""

    def record(ln: Line) -> Record:
        return {key: (str, value(ln)), **(extra(ln) if extra else {})}

    return Column(key, header or key, value, record, note=note, numeric=False, identity=True, lift=True,
                  **flags)


def pooled(key: str, header: str, value: Callable[[Sequence[View]], Any], text: Callable[[Any], str],
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
