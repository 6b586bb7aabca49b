"""The leaderboard's one column table: every view of a leaderboard comes from `COLUMNS`.

Each column says what it aggregates (a metric averaged over seeds, or a paired difference with
a bootstrap interval and an exact test: per target pair, per seed, or against another attack),
how its cell reads, how it sorts, what the footnote says
about it, whether it only means something for a defense, whether the terminal shows it by
default, and which typed fields it contributes to the published Parquet. The terminal,
Markdown, CSV, Parquet and HTML leaderboards, `--sort` and `--columns`, and the footnote are
all read from here: a new metric is one field in pe_bench.metrics and one entry below.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pe_bench.errors import PeBenchError

if TYPE_CHECKING:
    from pe_bench.leaderboard import Line
    from pe_bench.stats import Interval

View = Mapping[str, Any]  # one trial's metrics for one task (or pooled over its tasks)
Record = dict[str, tuple[type, Any]]  # Parquet column -> (Python type, value)
PREAMBLE = "mean ± std over seeds"


@dataclass(frozen=True)
class Column:
    """One leaderboard column. `stat`: the line holds mean ± std over seeds of `stat(view)`
    under `key`; `paired`: the line holds an interval (pe_bench.stats) of field minus versus
    per target pair under `key`; `per_seed`: likewise of a per-seed difference (with `paired`:
    for lines without target pairs, i.e. backdoor lines); `versus`: of
    this field minus the same field of the `--versus` attack's pair (pe_bench.pairing).
    `board`: shown in the Markdown/CSV/HTML boards (else only in the Parquet and on request;
    `on_versus` ones whenever lines compare attacks); `compact`: in the terminal's default set."""

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


def _hits(successes: Callable[[Line], int], triggered: Callable[[Line], int]) -> Callable[[Line], str]:
    """successes / target pairs, or for a backdoor triggered hits / triggered inputs."""
    def cell(ln: Line) -> str:
        if ln.pairs:
            return f"{successes(ln)}/{ln.pairs}"
        return f"{triggered(ln)}/{ln.triggered}" if ln.triggered else "-"

    return cell


def _triggered_delta(reference: str) -> Callable[[View], float | None]:
    """A backdoor trial's ASR minus `reference` (clean or undefended ASR on the same triggered
    inputs); None for a trial without triggered inputs (targeted: read per target pair)."""
    def delta(view: View) -> float | None:
        return float(view["asr"]) - float(view[reference]) if view.get("n_triggered") else None

    return delta


ACCURACY = "CA = the clean twin's accuracy, PA = this encoder's, targets excluded"
CLEAN = "clean ASR / hits = the same on the paired clean twin"
P_TARGET = ("p(target) = probability of the target class for the target input (clean: on the twin; "
            "an ensemble's: its members' mean)")
P_VOTE = "p(target) vote = share of an ensemble's members predicting the target class"
DELTA = ("Δ = vs the paired clean twin per target pair (target = task, index, target class), "
         "95% bootstrap CI resampling seeds and distinct targets")
P_NOTE = ("p = exact paired sign-flip test over distinct targets (McNemar's exact test when each "
          "target is seen once; over seeds for backdoor lines), Holm-adjusted over the board's lines "
          "per column; n.s. = adjusted p >= 0.05")
FAMILY = ("family = targeted (chosen clean test inputs -> chosen classes; ASR over target pairs) or "
          "backdoor (a trigger at test time; ASR over the triggered test inputs of the other classes, "
          "BA = PA)")
BACKDOOR = ("backdoor lines: ΔASR = ASR - clean ASR on the same triggered inputs, per seed (the seed is "
            "the unit: one encoder per seed, its triggered inputs are not independent), 95% CI "
            "resampling seeds, sign-flip test over seeds")
PAIRS = "pairs = target pairs over all seeds (in brackets: distinct (task, index, target class))"
DELTA_PA = ("ΔPA = PA - CA of the paired clean twin (same test images), 95% CI resampling seeds "
            "(stored rows hold no per-image outcomes to resample), sign-flip test over seeds")
VERSUS = ("vs other = minus the --versus attack's line of the same setting, matched by seed and "
          "target pair")
VS_NONE = "vs none = vs the undefended poisoned encoder of the same seed, per target pair"
VS_NONE_PA = ("ΔPA vs none = PA - PA of the undefended poisoned encoder of the same seed (same test "
              "images), 95% CI resampling seeds, sign-flip test over seeds")
UNDEFENDED = "undefended = the poisoned encoder of the same seed without the defense"
FILTER = "poison recall / precision, clean removed = what a pre-processing filter caught and lost"

COLUMNS: tuple[Column, ...] = (
    named("dataset", lambda ln: ln.dataset, compact=True, filter=True),
    named("encoder", lambda ln: ln.encoder, compact=True, filter=True),
    named("task", lambda ln: ln.task, compact=True, filter=True),
    named("attack", lambda ln: ln.attack_label or ln.attack, lambda ln: {
        "attack": (str, ln.attack), "attack_label": (str, ln.attack_label),
        "attack_params": (str, ln.attack_params)}, compact=True, filter=True),
    named("family", lambda ln: ln.family, compact=True, filter=True, note=FAMILY),
    named("selection", lambda ln: ln.selection, header="targets",
          note="targets = how target pairs were selected, from the attacker's labelled data held "
               "out from the probe's training images (+probe-data: from the probe's own)"),
    named("defense", defense_label, lambda ln: {
        "defense": (str, ln.defense), "defense_label": (str, ln.defense_label),
        "defense_params": (str, ln.defense_params)}, compact=True, filter=True),
    Column("seeds", "seeds", lambda ln: f"{ln.seeds}" + ("" if ln.published else "*"),
           lambda ln: {"seeds": (int, ln.seeds), "published": (bool, ln.published)},
           lambda ln: ln.seeds, "* = fewer than 3 seeds (not publishable)", compact=True, lift=True),
    Column("failed", "failed", lambda ln: str(ln.failed), lambda ln: {"failed": (int, ln.failed)},
           lambda ln: ln.failed, "failed = trials with only error rows (error and traceback in the "
           "store)", compact=True, lift=True),
    Column("poisons", "poisons", lambda ln: "-" if ln.n_poisons is None else f"{ln.n_poisons:.0f}",
           lambda ln: {"n_poisons": (float, ln.n_poisons)}, lambda ln: ln.n_poisons,
           "poisons = injected images per trial"),
    mean_of("ca", header="CA", note=ACCURACY),
    mean_of("pa", header="PA", note=ACCURACY, compact=True),
    mean_of("asr", header="ASR", note="ASR over target pairs (backdoor: over triggered inputs)",
            compact=True),
    Column("hits", "hits", _hits(lambda ln: ln.successes, lambda ln: ln.triggered_hits), lambda ln: {
        "pairs": (int, ln.pairs), "successes": (int, ln.successes), "triggered": (int, ln.triggered),
        "triggered_hits": (int, ln.triggered_hits)},
        note="hits = successes / pairs over all seeds (backdoor: target-class predictions / triggered "
             "inputs)"),
    Column("distinct_pairs", "pairs", lambda ln: f"{ln.pairs} ({ln.distinct_pairs})" if ln.pairs else "-",
           lambda ln: {"distinct_pairs": (int, ln.distinct_pairs)}, lambda ln: ln.distinct_pairs, PAIRS,
           compact=True, lift=True),
    mean_of("baseline_asr", header="clean ASR", note=CLEAN),
    Column("clean_hits", "clean hits",
           _hits(lambda ln: ln.successes_clean, lambda ln: ln.triggered_hits_clean),
           lambda ln: {"successes_clean": (int, ln.successes_clean),
                       "triggered_hits_clean": (int, ln.triggered_hits_clean)}, note=CLEAN),
    mean_of("p_target", header="p(target)", note=P_TARGET),
    mean_of("p_target_clean", header="p(target) clean", note=P_TARGET),
    mean_of("p_target_vote", header="p(target) vote", note=P_VOTE, defense_only=True),
    paired("delta_asr", "ΔASR [95% CI]", ("hit", "hit_clean"), f"{DELTA}; {BACKDOOR}", compact=True,
           per_seed=_triggered_delta("baseline_asr")),
    p_value("delta_asr", "p ΔASR"),
    paired("delta_p", "Δp(target) [95% CI]", ("p", "p_clean"), DELTA),
    p_value("delta_p", "p Δp"),
    paired("delta_pa", "ΔPA [95% CI]", None, DELTA_PA, per_seed=lambda v: v["pa"] - v["ca"]),
    p_value("delta_pa", "p ΔPA"),
    paired("delta_asr_versus", "ΔASR vs other [95% CI]", None, VERSUS, versus="hit", board=False,
           on_versus=True),
    p_value("delta_asr_versus", "p vs other", board=False, on_versus=True),
    paired("delta_p_versus", "Δp vs other [95% CI]", None, VERSUS, versus="p", board=False),
    paired("delta_asr_defense", "ΔASR vs none [95% CI]", ("hit", "hit_undefended"), VS_NONE,
           defense_only=True, per_seed=_triggered_delta("asr_undefended")),
    p_value("delta_asr_defense", "p vs none", defense_only=True),
    paired("delta_pa_defense", "ΔPA vs none [95% CI]", None, VS_NONE_PA,
           per_seed=lambda v: v["pa"] - v["pa_undefended"], defense_only=True),
    p_value("delta_pa_defense", "p ΔPA vs none", defense_only=True),
    mean_of("poison_recall", header="poison recall", note=FILTER, defense_only=True),
    mean_of("poison_precision", header="poison precision", note=FILTER, defense_only=True),
    mean_of("clean_removed", header="clean removed", note=FILTER, digits=1, defense_only=True),
    mean_of("clean_used", header="clean used", note="clean used = trusted clean images a repair used",
            digits=0, defense_only=True),
    mean_of("repair_steps", header="repair steps", note="repair steps = optimiser steps a repair took "
            "per encoder", digits=0, defense_only=True),
    mean_of("defense_extra_s", header="extra s", note="extra s = the defense's extra wall seconds",
            digits=0, defense_only=True),
    mean_of("pa_undefended", header="PA undefended", note=UNDEFENDED, board=False),
    mean_of("asr_undefended", header="ASR undefended", note=UNDEFENDED, board=False),
)
BY_KEY = {c.key: c for c in COLUMNS}
BOARD = tuple(c for c in COLUMNS if c.board)
COMPACT = tuple(c for c in COLUMNS if c.compact)
VERSUS_SHOWN = tuple(c for c in COLUMNS if c.on_versus)
SORTABLE = tuple(c.key for c in COLUMNS if c.sort is not None and not c.identity)


def pick(names: str, option: str = "--columns") -> tuple[Column, ...]:
    """Columns by key, comma-separated; an unknown name is a one-line error with a hint."""
    chosen = []
    for name in (n.strip() for n in names.split(",")):
        if name not in BY_KEY:
            raise PeBenchError(f"{option}: unknown column {name!r}{_hint(name, list(BY_KEY))}; "
                               "pe-bench leaderboard --list-columns lists them")
        chosen.append(BY_KEY[name])
    return tuple(chosen)


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def footnote(columns: Sequence[Column]) -> str:
    """What the shown columns mean, each note once, in column order."""
    return "; ".join(dict.fromkeys([PREAMBLE, *(c.note for c in columns if c.note)]))
