"""What each `pe-bench` command does once its arguments are parsed (cli.py): list plugins,
validate and run suites (through api.py), print leaderboards and the per-seed and defense-pair
tables (the report package renders them; the flag rules between them live here), plot, publish.
Output goes to stdout (tables) and stderr (run summaries); errors are `PeBenchError`s, which the
CLI prints as one line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pe_bench.errors import PeBenchError

if TYPE_CHECKING:
    from pe_bench.store.schema import TrialRow

KINDS = ("attacks", "defenses", "encoders", "datasets")
SHOWN_CELLS = 8  # excluded cells `validate` names per reason


def cmd_list(kind: str | None, applicable: bool = False, params: str | None = None) -> int:
    """Every plugin with the code it comes from and its metadata; third-party plugins are
    imported to check them, and any that cannot be used is flagged with the reason.
    `applicable`: the applicability table of pe-bench's own plugins instead (Markdown);
    `params`: one plugin's parameters (pe_bench.plugins.describe)."""
    from pe_bench.config.grid import applicability
    from pe_bench.plugins import describe

    if applicable:
        print(applicability(), end="")
        return 0
    if params:
        _console().print(describe.params_table(*describe.resolve(params, kind)))
        return 0
    _console().print(describe.plugins_table([kind] if kind else KINDS))
    return 0


def cmd_validate(path: str, overrides: Sequence[str] = (), data_dir: str | None = None,
                 budgets: bool = False) -> int:
    from pe_bench.api import validate_suite

    plan = validate_suite(path, overrides, data_dir=data_dir, check_data=True)
    suite, grid = plan.suite, plan.grid
    runs = grid.pretraining()
    print(f"suite {suite.name}: {len(grid.trials)} trials, {grid.pretrain_runs()} clean pre-training runs")
    pretrainings = runs["clean"] + runs["poisoned"] + runs["defense"]
    print(f"  unique pre-training runs: {pretrainings} ({runs['clean']} clean twins, "
          f"{runs['poisoned']} poisoned, {runs['defense']} trained by defenses), plus "
          f"{runs['encoder_stage']} encoder-stage fine-tunes and {runs['repair']} post-processing "
          "repairs; every other cell reuses them from the cache")
    axes = {
        "datasets": [d.name for d in suite.datasets],
        "encoders": [e.name for e in suite.encoders],
        "attacks": [a.name for a in suite.attacks],
        "defenses": [d.name for d in suite.defenses],
        "seeds": [str(s) for s in suite.seeds],
    }
    axes.update({f"seeds of {d.name}": [str(s) for s in d.seeds] for d in suite.datasets if d.seeds})
    for axis, values in axes.items():
        print(f"  {axis} ({len(values)}): {', '.join(values)}")
    _print_cells("excluded", Counter(e.reason for e in grid.excluded), grid.excluded_cells())
    _print_cells("off-target (run, labelled)", Counter(o.reason for o in grid.off_target()),
                 grid.off_target_cells())
    _print_comparisons(suite, grid)
    if suite.evidence:
        print(f"  evidence: {plan.evidence_line}")
    for line in plan.data.report() if plan.data else ():
        print(line)
    if budgets and plan.data and not plan.data.skipped:
        _print_budgets(grid.trials, plan.data.data_dir)
    elif any(t.attack.name != "none" for t in grid.trials):
        print("  poison budgets: --budgets crafts each attack setting once (torch, the data) and names "
              "those that repeat images")
    return 0


def _print_comparisons(suite: Any, grid: Any) -> None:
    """The suite's comparison families with how many comparisons each holds in the grid."""
    from pe_bench.config.comparisons import declared, describe
    from pe_bench.plugins.registry import DEFENSES

    detectors = {d.name for d in suite.defenses  # score an encoder, change none: no vs-none test
                 if d.name != "none" and set(DEFENSES.get(d.name).implements()) <= {"score_encoder"}}
    cells = {(t.dataset, t.encoder.name, t.attack.name, t.defense.name, json.dumps(t.attack.params, sort_keys=True),
              json.dumps(t.defense.params, sort_keys=True)) for t in grid.trials}
    seeds = max(len(d.seeds or suite.seeds) for d in suite.datasets)
    for line in describe(declared(suite.comparisons), bool(suite.comparisons), cells, detectors, seeds):
        print(f"  {line}")


def _print_budgets(trials: Sequence[Any], data_dir: Path) -> None:
    """Each data-poisoning attack setting's poisons and distinct images at its first seed (the
    attack crafted as a run would), naming those the attacker's data cannot supply."""
    from pe_bench.plugins.registry import ATTACKS
    from pe_bench.worker.supply import supply

    first: dict[tuple[str, str], Any] = {}
    for t in trials:
        if t.attack.name != "none" and ATTACKS.get(t.attack.name).stage == "data":
            first.setdefault((t.dataset, f"{t.attack.name}{t.attack.params}"), t)
    if not first:
        return
    from pe_bench.report.labels import varying

    labels = varying([(t.attack.name, json.dumps(t.attack.params)) for t in first.values()])
    short = []
    for t, label in zip(first.values(), labels, strict=True):
        try:
            n, distinct = supply(t, data_dir)
        except PeBenchError as exc:  # data found but unreadable here: the run would say so too
            print(f"  poison budgets not checked: {exc}")
            return
        if distinct < n:
            short.append(f"    {t.dataset} × {label}: {n} poisons, {distinct} distinct (seed {t.seed})")
    print(f"  poison budgets (each attack setting crafted at its first seed): {len(first)} checked, "
          f"{len(short)} repeat images (a copying baseline by design; any other attack because the "
          "attacker's data cannot supply its budget); rows record the distinct count")
    for line in short:
        print(line)


def _print_cells(label: str, counts: Counter[str], cells_by_reason: dict[str, list[str]]) -> None:
    """Per reason: how many trials it covers, then its first cells (every axis but the seed)."""
    for reason, cells in cells_by_reason.items():
        n = len(cells)
        print(f"  {label}: {counts[reason]} trials ({n} cell{'s' * (n != 1)}): {reason}")
        more = f"; and {n - SHOWN_CELLS} more" if n > SHOWN_CELLS else ""
        print(f"    dataset × encoder × attack × defense: {'; '.join(cells[:SHOWN_CELLS])}{more}")


def print_leaderboard(store: str, suite: str | None, run: str | None, fmt: str, out: str | None,
                      sort: str | None = None, columns: str | None = None, versus: str | None = None) -> int:
    """The leaderboard of a store: its board (pe_bench.report.board, one read of the store) as the
    matrix (the default), a line table (`columns`, `sort`, `versus`) or CSV."""
    from pe_bench.report import matrix
    from pe_bench.report.board import load
    from pe_bench.report.columns import pick
    from pe_bench.report.leaderboard import to_csv, to_markdown, to_rich
    from pe_bench.store.results import no_ok_rows

    chosen = pick(columns) if columns else None
    board = load(store, suite, run, versus, sort)
    lines = list(board.lines)
    as_matrix = fmt != "csv" and not (chosen or sort)
    if fmt == "terminal":
        console = _console()
        console.print(matrix.to_rich(matrix.board(lines), board.title, console.width) if as_matrix
                      else to_rich(lines, board.title, chosen, console.width))
        sys.stdout.flush()  # the notes on stderr come before the closing lines, as a terminal shows them
        if board.mixed:
            print(f"pe-bench: note: this board mixes plugin versions: {'; '.join(board.mixed)}", file=sys.stderr)
        print(f"pe-bench: {board.comparisons}", file=sys.stderr)
        for note in (board.description, board.labels, board.seeds_note, board.evidence):  # evidence: last
            if note:
                console.print(note)
        return 0
    if fmt == "md":
        if not board.rows:  # lines of trials that only failed: no run to name
            raise no_ok_rows(store, suite)
        text = (matrix.to_markdown(matrix.board(lines), board.title, board.source()) if as_matrix
                else to_markdown(lines, board.title, chosen, board.source()))
    else:
        text = to_csv(lines, chosen)
    return _emit(text, out)


def print_trial_table(args: argparse.Namespace) -> int:
    """`leaderboard --by-seed` (one line per trial and task, pe_bench.report.per_seed) or
    `--defense-pairs` (defense settings compared paired, pe_bench.report.defense_pairs)."""
    from pe_bench.report import defense_pairs
    from pe_bench.report import per_seed
    from pe_bench.store.results import ok_rows, source_note

    view: Any
    if args.by_seed:
        option, view, what, why = "--by-seed", per_seed, "per-seed table", "it shows every trial as stored"
    else:
        option, view, what, why = ("--defense-pairs", defense_pairs, "defense pairs",
                                   "it compares every two defense settings")
    given = {"--sort": args.sort, "--columns": args.columns, "--versus": args.versus,
             "--defense-pairs": args.defense_pairs}
    mixed = [flag for flag, value in given.items() if value and flag != option]
    if mixed:
        raise PeBenchError(f"{option}: does not take {', '.join(mixed)} ({why})")
    rows = ok_rows(args.store, args.suite, args.run)
    from pe_bench.report.leaderboard import store_families

    lines = (per_seed.seed_lines(rows) if args.by_seed
             else defense_pairs.pair_lines(rows, store_families(args.store)))
    if not lines:  # --by-seed has a line per ok row
        raise PeBenchError(f"{option}: no two defense settings of one attack in store {args.store!r}"
                           + (f" for suite {args.suite!r}" if args.suite else ""))
    title = f"pe-bench {what}: {args.suite or 'all suites'}" + (f", run {args.run}" * bool(args.run))
    labels = per_seed.labels_note(rows)  # both tables label settings as the per-seed lines do
    if args.format == "terminal":
        console = _console()
        console.print(view.to_rich(lines, title, console.width))
        if labels:
            console.print(labels)
        return 0
    source = "\n\n".join(p for p in (source_note(rows, f"pe-bench leaderboard {option} --format md"), labels) if p)
    text = view.to_markdown(lines, title, source) if args.format == "md" else view.to_csv(lines)
    return _emit(text, args.out)


def _emit(text: str, out: str | None) -> int:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0


def list_columns() -> int:
    """The columns `--columns` and `--sort` take, which the terminal shows by default, and what
    each means."""
    from rich.table import Table

    from pe_bench.report.columns import COLUMNS, SORTABLE

    table = Table("column", "header", "default", "sort", "meaning", box=None)
    for c in COLUMNS:
        table.add_row(c.key, c.header, "yes" if c.compact else "", "yes" if c.key in SORTABLE else "",
                      c.note or "-")
    _console().print(table)
    return 0


def _console() -> Any:
    """The terminal's width (or $COLUMNS); 120 columns when the output is not a terminal."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=120)


def cmd_run(args: argparse.Namespace) -> int:
    """Run one suite or several in order into one store (every file and its data checked before
    the first trial), then each suite's board (which ends with the suites its `evidence` names)."""
    from pe_bench.api import remote_data_note, run_suite, validate_suite

    note = remote_data_note(args.engine, args.address)
    if note:
        print(f"pe-bench: note: {note}", file=sys.stderr)
    plans = [validate_suite(path, args.overrides, data_dir=args.data_dir, check_data=note is None)
             for path in args.suites]
    names = [p.suite.name for p in plans]
    if (twice := next((n for n in names if names.count(n) > 1), None)) is not None:
        raise PeBenchError(f"run: suite {twice!r} is given twice (a store keeps one suite per name)")
    done = []
    for path in args.suites:
        plan, summary = run_suite(path, store=args.store, data_dir=args.data_dir, engine=args.engine,
                                  address=args.address, resume=args.resume, run_id=args.run_id,
                                  retry_failed=args.retry_failed, cache=args.cache,
                                  overrides=args.overrides, redeclare=args.redeclare)
        if summary.stale:
            print(f"pe-bench: note: --resume runs {summary.rerun_stale} finished trials again: plugins "
                  f"changed version since ({'; '.join(summary.stale)})", file=sys.stderr)
        print(f"{plan.suite.name}: " * (len(args.suites) > 1) + run_line(summary), file=sys.stderr)
        for message in summary.error_messages:
            print(f"  error {message}", file=sys.stderr)
        done.append((plan, summary))
    for plan, summary in done if not args.no_leaderboard else ():
        if summary.ok + summary.already_done > 0:
            print_leaderboard(args.store, plan.suite.name, None, "terminal", None)
    return 1 if any(summary.errors for _, summary in done) else 0


def run_line(summary: Any) -> str:
    """What a run did: ok, failed, already done before it, and (a run stopped part-way) not run."""
    unfinished = summary.planned - summary.ok - summary.errors
    left = f", {unfinished} not run (stopped: --resume runs them)" if unfinished > 0 else ""
    return (f"run {summary.run_id}: {summary.ok} ok, {summary.errors} failed, {summary.already_done} already "
            f"done{left}; {summary.cache_hits} encoder cache hits; {summary.seconds:.0f} s")


def cmd_plot(args: argparse.Namespace) -> int:
    from pe_bench.report.plot.figure import plot_store

    paths, points = plot_store(args.store, args.out, args.suite, args.run)
    print(f"wrote {', '.join(map(str, paths))} ({len(points)} points)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from pe_bench.report.publish import publish

    for path in publish(args.store, args.out, args.suite):
        print(f"wrote {path}")
    return 0
