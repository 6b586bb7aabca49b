"""The one column table, `TABLE`: every table the report renders takes its columns from it.

Each column says what it aggregates on a leaderboard line (a metric averaged over seeds, or a
paired difference with a Student-t interval and an exact test over seeds: per target pair, per seed, or
against another attack), how its cell reads, how it sorts, what the footnote says about it,
whether it only means something for a defense, whether the terminal shows it by default, which
typed fields it contributes to the published Parquet, and how the per-seed table and the
defense-pairs table show it, if they do (`seed=`, `pair=`). The terminal, Markdown, CSV, Parquet
and HTML leaderboards (`COLUMNS`: the columns a line has), `--sort` and `--columns`, the
footnote, `--by-seed` and `--defense-pairs` (`pick_view`) are all read from here: a new metric
is one field in pe_bench.store.metrics and one entry below (the constructors, `mean_of`,
`paired`, `p_value`, `named`, `pooled`, `listed`, are in pe_bench.report.column_kinds).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from pe_bench.report import row_cells as rc
from pe_bench.report.column_kinds import (
    PREAMBLE,
    Column,
    Shown,
    by_pair,
    by_seed,
    defense_label,
    designed_for,
    fmt,
    fmt_ci,
    listed,
    mean_of,
    named,
    p_value,
    paired,
    pooled,
)
from pe_bench.store.detection import encoder_auroc, encoder_flags
from pe_bench.errors import PeBenchError

if TYPE_CHECKING:
    from pe_bench.report.lines import Line, TaskView

T = TypeVar("T")
__all__ = ["BOARD", "BY_KEY", "COLUMNS", "COMPACT", "SORTABLE", "TABLE", "VERSUS_SHOWN", "Column", "fmt",
           "fmt_ci", "footnote", "pick", "pick_view"]


def _flags(counts: tuple[int, int, int, int]) -> str:
    return "-" if counts[1] + counts[3] == 0 else f"{counts[0]}/{counts[1]} · {counts[2]}/{counts[3]}"


def _poisons(ln: Line) -> str:
    if ln.n_poisons is None:
        return "-"
    repeated = ln.n_distinct is not None and ln.n_distinct < ln.n_poisons
    return f"{ln.n_poisons:.0f}" + (f" ({ln.n_distinct:.0f} distinct)" if repeated else "")


def _hits(successes: Callable[[Line], int], triggered: Callable[[Line], int]) -> Callable[[Line], str]:
    """successes / target pairs, or for a backdoor triggered hits / triggered inputs."""
    def cell(ln: Line) -> str:
        if ln.pairs:
            return f"{successes(ln)}/{ln.pairs}"
        return f"{triggered(ln)}/{ln.triggered}" if ln.triggered else "-"

    return cell


def _triggered_delta(reference: Callable[[TaskView], float | None]) -> Callable[[TaskView], float | None]:
    """A backdoor trial's ASR minus `reference` (clean or undefended ASR on the same triggered
    inputs); None for a trial without triggered inputs (targeted: read per target pair)."""
    def delta(view: TaskView) -> float | None:
        asr, other = view.metrics.asr, reference(view)
        return None if not view.metrics.n_triggered or asr is None or other is None else asr - other

    return delta


ACCURACY = "CA = the clean twin's accuracy, PA = this encoder's, targets excluded"
CLEAN = "clean ASR / hits = the same on the paired clean twin"
P_TARGET = ("p(target) = probability of the target class for the target input (clean: on the twin; "
            "an ensemble's: its members' mean)")
P_VOTE = "p(target) vote = share of an ensemble's members predicting the target class"
DELTA = ("Δ = vs the paired clean twin per target pair (target = task, index, target class), "
         "averaged per seed; 95% Student-t CI over seeds")
FAMILY = ("family = targeted (chosen clean test inputs -> chosen classes; ASR over target pairs) or "
          "backdoor (a trigger at test time; ASR over the triggered test inputs of the other classes, "
          "BA = PA)")
BACKDOOR = ("backdoor lines: ΔASR = ASR - clean ASR on the same triggered inputs, per seed (the seed is "
            "the unit: one encoder per seed, its triggered inputs are not independent), 95% t CI "
            "over seeds")
PAIRS = "pairs = target pairs over all seeds (in brackets: distinct (task, index, target class))"
DELTA_PA = "ΔPA = PA - CA of the paired clean twin (same test images), per seed, 95% t CI over seeds"
VERSUS = ("vs other = minus the --versus attack's line of the same setting, matched by seed and "
          "target pair")
VS_NONE = "vs none = vs the undefended poisoned encoder of the same seed, per target pair"
VS_NONE_PA = ("ΔPA vs none = PA - PA of the undefended poisoned encoder of the same seed (same test "
              "images), 95% CI resampling seeds, sign-flip test over seeds")
DESIGNED = ("designed for = yes where the defense was designed against the attack's family, off-target "
            "where it runs outside its design (its plugin's declared families; docs/applicability.md), "
            "? where the defense is not installed here")
UNDEFENDED = "undefended = the poisoned encoder of the same seed without the defense"
FILTER = ("poison recall (TPR) / precision / FPR / F1, clean removed = what a pre-processing filter "
          "caught and lost at its own threshold")
RANKED = ("poison AUROC / AUPRC = how its per-image scores rank the poisons above clean images; "
          "recall @1% / @5% FPR = poisons its scores flag where they flag 1% / 5% of clean images")
ENCODER = ("encoder AUROC = of encoder scores over the line's seeds, attacked encoders vs their clean "
           "twins; flagged = attacked / clean encoders judged backdoored at the defense's threshold")
COST = ("CPU s = CPU seconds of the defense's hooks; extra steps / images / train CPU s = training vs "
        "the undefended encoder's (negative: saved)")

TABLE: tuple[Column, ...] = (
    named("dataset", lambda ln: ln.dataset, compact=True, filter=True,
          seed=by_seed(lambda s: s.row.dataset), pair=by_pair(rc.setup(0))),
    named("encoder", lambda ln: ln.encoder, compact=True, filter=True,
          seed=by_seed(lambda s: s.encoder_label), pair=by_pair(rc.setup(1))),
    named("task", lambda ln: ln.task, compact=True, filter=True,
          seed=by_seed(lambda s: s.view.task), pair=by_pair(rc.setup(2))),
    named("attack", lambda ln: ln.attack_label or ln.attack, lambda ln: {
        "attack": (str, ln.attack), "attack_label": (str, ln.attack_label),
        "attack_params": (str, ln.attack_params)}, compact=True, filter=True,
        seed=by_seed(lambda s: s.attack_label), pair=by_pair(lambda p: p.attack)),
    named("family", lambda ln: ln.family, compact=True, filter=True, note=FAMILY, seed=by_seed(rc.family)),
    named("selection", lambda ln: ln.selection, header="targets",
          note="targets = how target pairs were selected, from the attacker's labelled data held "
               "out from the probe's training images (+probe-data: from the probe's own)"),
    named("defense", defense_label, lambda ln: {
        "defense": (str, ln.defense), "defense_label": (str, ln.defense_label),
        "defense_params": (str, ln.defense_params)}, compact=True, filter=True,
        seed=by_seed(lambda s: s.defense_label, defense_only=True)),
    Column("designed_for", "designed for", designed_for, lambda ln: {"designed_for": (str, designed_for(ln))},
           note=DESIGNED, numeric=False, defense_only=True, compact=True, filter=True, lift=True),
    Column("seeds", "seeds", lambda ln: f"{ln.seeds}" + ("" if ln.published else "*"),
           lambda ln: {"seeds": (int, ln.seeds), "published": (bool, ln.published)},
           lambda ln: ln.seeds, "* = fewer than 3 seeds (not publishable)", compact=True, lift=True,
           pair=by_pair(lambda p: str(p.seeds))),
    Column("failed", "failed", lambda ln: str(ln.failed), lambda ln: {"failed": (int, ln.failed)},
           lambda ln: ln.failed, "failed = trials with only error rows (error and traceback in the "
           "store)", compact=True, lift=True),
    Column("poisons", "poisons", _poisons, lambda ln: {"n_poisons": (float, ln.n_poisons),
                                                       "n_distinct_poisons": (float, ln.n_distinct)},
           lambda ln: ln.n_poisons, "poisons = injected images per trial (in brackets: distinct "
           "images, where the attack repeated some)"),
    Column("of_class", "of class", lambda ln: "-" if ln.class_share is None else f"{ln.class_share:.0%}",
           lambda ln: {"poison_class_share": (float, ln.class_share)}, lambda ln: ln.class_share,
           "of class = poisons / clean pre-training images of the target classes"),
    mean_of("ca", header="CA", note=ACCURACY, seed=by_seed(lambda s: rc.rate(s.view.metrics.ca))),
    mean_of("pa", header="PA", note=ACCURACY, compact=True,
            seed=by_seed(lambda s: rc.rate(s.view.metrics.pa))),
    mean_of("asr", header="ASR", note="ASR over target pairs (backdoor: over triggered inputs)",
            compact=True, seed=by_seed(lambda s: rc.rate(s.view.metrics.asr))),
    Column("hits", "hits", _hits(lambda ln: ln.successes, lambda ln: ln.triggered_hits), lambda ln: {
        "pairs": (int, ln.pairs), "successes": (int, ln.successes), "triggered": (int, ln.triggered),
        "triggered_hits": (int, ln.triggered_hits)},
        note="hits = successes / pairs over all seeds (backdoor: target-class predictions / triggered "
             "inputs)", seed=by_seed(rc.seed_hits)),
    Column("distinct_pairs", "pairs", lambda ln: f"{ln.pairs} ({ln.distinct_pairs})" if ln.pairs else "-",
           lambda ln: {"distinct_pairs": (int, ln.distinct_pairs)}, lambda ln: ln.distinct_pairs, PAIRS,
           compact=True, lift=True),
    mean_of("baseline_asr", header="clean ASR", note=CLEAN,
            seed=by_seed(lambda s: rc.rate(s.view.metrics.baseline_asr))),
    Column("clean_hits", "clean hits",
           _hits(lambda ln: ln.successes_clean, lambda ln: ln.triggered_hits_clean),
           lambda ln: {"successes_clean": (int, ln.successes_clean),
                       "triggered_hits_clean": (int, ln.triggered_hits_clean)}, note=CLEAN,
           seed=by_seed(rc.seed_clean_hits)),
    mean_of("p_target", header="p(target)", note=P_TARGET),
    mean_of("p_target_clean", header="p(target) clean", note=P_TARGET),
    mean_of("p_target_vote", header="p(target) vote", note=P_VOTE, defense_only=True),
    paired("delta_asr", "ΔASR [95% CI]", (lambda x: x.hit, lambda x: x.hit_clean), f"{DELTA}; {BACKDOOR}",
           compact=True, per_seed=_triggered_delta(lambda v: v.metrics.baseline_asr),
           seed=by_seed(lambda s: rc.delta(s.view.metrics.asr, s.view.metrics.baseline_asr), "ΔASR")),
    p_value("delta_asr", "p ΔASR"),
    paired("delta_p", "Δp(target) [95% CI]", (lambda x: x.p, lambda x: x.p_clean), DELTA),
    p_value("delta_p", "p Δp"),
    paired("delta_pa", "ΔPA [95% CI]", None, DELTA_PA, per_seed=lambda v: v.metrics.pa - v.metrics.ca,
           seed=by_seed(lambda s: rc.delta(s.view.metrics.pa, s.view.metrics.ca), "ΔPA")),
    p_value("delta_pa", "p ΔPA"),
    paired("delta_asr_versus", "ΔASR vs other [95% CI]", None, VERSUS, versus=lambda x: x.hit, board=False,
           on_versus=True),
    p_value("delta_asr_versus", "p vs other", board=False, on_versus=True),
    paired("delta_p_versus", "Δp vs other [95% CI]", None, VERSUS, versus=lambda x: x.p, board=False),
    paired("delta_asr_defense", "ΔASR vs none [95% CI]", (lambda x: x.hit, lambda x: x.hit_undefended),
           VS_NONE, defense_only=True, per_seed=_triggered_delta(lambda v: v.metrics.asr_undefended)),
    p_value("delta_asr_defense", "p vs none", defense_only=True),
    paired("delta_pa_defense", "ΔPA vs none [95% CI]", None, VS_NONE_PA,
           per_seed=lambda v: v.metrics.pa - v.metrics.pa_undefended, defense_only=True),
    p_value("delta_pa_defense", "p ΔPA vs none", defense_only=True),
    mean_of("poison_recall", header="poison recall", note=FILTER, defense_only=True),
    mean_of("poison_precision", header="poison precision", note=FILTER, defense_only=True),
    mean_of("poison_fpr", header="poison FPR", note=FILTER, defense_only=True),
    mean_of("poison_f1", header="poison F1", note=FILTER, defense_only=True),
    mean_of("poison_auroc", header="poison AUROC", note=RANKED, defense_only=True),
    mean_of("poison_auprc", header="poison AUPRC", note=RANKED, defense_only=True),
    mean_of("poison_recall_fpr1", header="recall @1% FPR", note=RANKED, defense_only=True),
    mean_of("poison_recall_fpr5", header="recall @5% FPR", note=RANKED, defense_only=True),
    mean_of("clean_removed", header="clean removed", note=FILTER, digits=1, defense_only=True),
    pooled("encoder_auroc", "encoder AUROC", lambda vs: encoder_auroc([v.defense for v in vs]),
           lambda v: f"{v:.3f}", ENCODER),
    pooled("encoder_flags", "flagged attacked · clean", lambda vs: encoder_flags([v.defense for v in vs]),
           _flags, ENCODER,
           parts=("attacked", "attacked_judged", "clean", "clean_judged")),
    mean_of("clean_used", header="clean used", note="clean used = trusted clean images a repair or "
            "detector used", digits=0, defense_only=True),
    mean_of("repair_steps", header="repair steps", note="repair steps = optimiser steps a repair took "
            "per encoder", digits=0, defense_only=True),
    mean_of("defense_cpu_s", header="CPU s", note=COST, digits=1, defense_only=True),
    mean_of("extra_steps", header="extra steps", note=COST, digits=0, defense_only=True),
    mean_of("extra_images", header="extra images", note=COST, digits=0, defense_only=True, board=False),
    mean_of("extra_train_cpu_s", header="extra train CPU s", note=COST, digits=0, defense_only=True,
            board=False),
    mean_of("pa_undefended", header="PA undefended", note=UNDEFENDED, board=False,
            seed=by_seed(lambda s: rc.rate(s.view.metrics.pa_undefended), "undefended PA",
                         defense_only=True)),
    mean_of("asr_undefended", header="ASR undefended", note=UNDEFENDED, board=False,
            seed=by_seed(lambda s: rc.rate(s.view.metrics.asr_undefended), "undefended ASR",
                         defense_only=True)),
    # the per-seed table's own: what one trial is
    listed("seed", "seed", seed=by_seed(lambda s: str(s.row.seed))),
    listed("target_class", "target class", seed=by_seed(rc.target_class)),
    listed("undefended_hits", "undefended hits", seed=by_seed(rc.undefended_hits, defense_only=True)),
    # the defense-pairs table's own: the two settings compared, and their paired differences
    listed("first", "A", pair=by_pair(lambda p: p.first)),
    listed("second", "B", pair=by_pair(lambda p: p.second)),
    listed("asr_first", "ASR A", pair=by_pair(lambda p: rc.rate(p.asr_first))),
    listed("asr_second", "ASR B", pair=by_pair(lambda p: rc.rate(p.asr_second))),
    listed("delta_asr_pair", "ΔASR (A - B) [95% CI]", pair=by_pair(lambda p: fmt_ci(p.d_asr))),
    listed("p_delta_asr_pair", "p ΔASR", pair=by_pair(lambda p: rc.p_pair(p.d_asr))),
    listed("delta_pa_pair", "ΔPA (A - B) [95% CI]", pair=by_pair(lambda p: fmt_ci(p.d_pa))),
    listed("p_delta_pa_pair", "p ΔPA", pair=by_pair(lambda p: rc.p_pair(p.d_pa))),
)
TABLE_KEYS = {c.key: c for c in TABLE}
COLUMNS = tuple(c for c in TABLE if c.line)  # a leaderboard line's
BY_KEY = {c.key: c for c in COLUMNS}
BOARD = tuple(c for c in COLUMNS if c.board)
COMPACT = tuple(c for c in COLUMNS if c.compact)
VERSUS_SHOWN = tuple(c for c in COLUMNS if c.on_versus)
SORTABLE = tuple(c.key for c in COLUMNS if c.sort is not None and not c.identity)


def pick(names: str, option: str = "--columns") -> tuple[Column, ...]:
    """Columns by key, comma-separated (`all`: every column a line has); an unknown name is a
    one-line error with a hint."""
    if names.strip() == "all":
        return COLUMNS
    chosen = []
    for name in (n.strip() for n in names.split(",")):
        if name not in BY_KEY:
            raise PeBenchError(f"{option}: unknown column {name!r}{_hint(name, list(BY_KEY))}; "
                               "pe-bench leaderboard --list-columns lists them")
        chosen.append(BY_KEY[name])
    return tuple(chosen)


def pick_view(keys: Sequence[str], view: Callable[[Column], Shown[T] | None]
              ) -> tuple[tuple[Column, Shown[T]], ...]:
    """The columns of a table other than the board (the per-seed or pair table), in its order,
    with how that table shows each (`view`: `lambda c: c.seed`); raises on a key that table
    cannot show, on import."""
    chosen = tuple((TABLE_KEYS[k], view(TABLE_KEYS[k])) for k in keys)
    missing = [c.key for c, shown in chosen if shown is None]
    if missing:
        raise ValueError(f"columns {missing} have no cell in this table")
    return tuple((c, shown) for c, shown in chosen if shown is not None)


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def footnote(columns: Sequence[Column]) -> str:
    """What the shown columns mean, in column order, each sentence once: a note joins its
    sentences with "; " as the footnote does (ΔASR's holds Δp's), so it is deduplicated by them."""
    notes = [PREAMBLE, *(c.note for c in columns if c.note)]
    return "; ".join(dict.fromkeys(part for note in notes for part in note.split("; ")))
