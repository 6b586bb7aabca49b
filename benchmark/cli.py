"""`pe-bench` command line: argument parsing only; the work is in api.py.

Exit status: 0 success; 1 the run finished but some trials failed (their error rows are in the
store), or the store could not be written (the run stopped; rows written before stay); 2 bad
input (suite, `--set`, plugin, data location), reported as one line without a traceback.

`pe-bench run` is the top of the run layers: cli -> api.run_suite -> Engine.run ->
trial.execute -> pipeline.run_trial (pe_bench.engines.base describes each).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pe_bench.engines.named import ENGINES
from pe_bench.errors import PeBenchError, StoreWriteError

KINDS = ("attacks", "defenses", "encoders", "datasets")
SHOWN_CELLS = 8  # excluded cells `validate` names per reason


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pe-bench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="registered plugins and where they come from")
    ls.add_argument("kind", nargs="?", choices=KINDS)
    ls.add_argument("--applicability", action="store_true", help="the attack x encoder x defense table "
                    "of which cells can run (Markdown; docs/applicability.md)")
    val = sub.add_parser("validate", help="check a suite and print its expanded grid")
    val.add_argument("suite")
    _add_overrides(val)
    _add_run(sub.add_parser("run", help="run a suite (through Ray Tune, or --in-process)"))
    _results_commands(sub)
    return p


def _results_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`leaderboard`, `plot` and `publish`: they read the store, never run anything."""
    lb = sub.add_parser("leaderboard", help="aggregate the store into a leaderboard")
    lb.add_argument("--store", default="results")
    lb.add_argument("--suite", help="only this suite")
    lb.add_argument("--run", help="only this run id")
    lb.add_argument("--format", choices=("terminal", "md", "csv"), default="terminal")
    lb.add_argument("--out", help="write to this file (md/csv) instead of stdout")
    lb.add_argument("--sort", help="order lines by a column, e.g. asr, pa, delta_asr_defense, "
                                   "poison_recall, defense_cpu_s; descending: --sort=-asr")
    lb.add_argument("--columns", metavar="A,B,C", help="show these columns (keys from --list-columns) "
                                                      "instead of the default set")
    lb.add_argument("--list-columns", action="store_true", help="list the columns --columns and --sort take")
    lb.add_argument("--versus", metavar="ATTACK", help="compare every other attack with ATTACK at the "
                                                       "same setting, seeds and target pairs")
    lb.add_argument("--by-seed", action="store_true",
                    help="one line per trial and task: what each line aggregates "
                         "(target class, hits, ΔASR, ΔPA)")
    lb.add_argument("--defense-pairs", action="store_true",
                    help="every two defense settings of one attack compared paired by seed "
                         "(ΔASR, ΔPA A - B; which defenses the board separates)")
    plot = sub.add_parser("plot", help="ASR-vs-PA trade-off figure (PREFIX.png, PREFIX.svg)")
    plot.add_argument("--store", default="results")
    plot.add_argument("--suite", help="only this suite")
    plot.add_argument("--run", help="only this run id")
    plot.add_argument("--out", required=True, metavar="PREFIX", help="output path without extension")
    pub = sub.add_parser("publish", help="leaderboard md/csv/parquet and a self-contained index.html")
    pub.add_argument("--store", default="results")
    pub.add_argument("--out", required=True, help="output directory")
    pub.add_argument("--suite", help="only this suite (default: every suite in the store)")


def _add_run(run: argparse.ArgumentParser) -> None:
    run.add_argument("suite")
    _add_overrides(run)
    run.add_argument("--store", default="results", help="results directory (default ./results)")
    run.add_argument("--data-dir", help="datasets folder (default $PE_BENCH_DATA, then the user cache)")
    run.add_argument("--address", help="join an existing Ray cluster, e.g. ray://head:10001 or auto")
    run.add_argument("--resume", action="store_true", help="skip cells that already have an ok row")
    run.add_argument("--retry-failed", action="store_true",
                     help="run only cells whose latest row is an error (implies --resume)")
    run.add_argument("--cache", help="encoder cache: a directory or a URI such as s3://bucket/prefix "
                                     "(default STORE/_cache)")
    run.add_argument("--run-id", help="name of this run in the store (default: timestamp)")
    run.add_argument("--engine", choices=tuple(ENGINES), default="ray",
                     help="what runs the trials: ray (Ray Tune, default) or in-process")
    run.add_argument("--in-process", dest="engine", action="store_const", const="in-process",
                     help="= --engine in-process: the trials one after another in this process, without "
                          "Ray (debugging; a machine without Ray); same rows, store and cache")
    run.add_argument("--no-leaderboard", action="store_true")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="change the suite before it is validated, e.g. train.epochs=1, "
                             "datasets.0.pretrain.max_images=200, 'seeds=[0]' (VALUE is YAML; repeatable)")


def cmd_list(kind: str | None, applicable: bool = False) -> int:
    """Every plugin with the code it comes from and its metadata; third-party plugins are
    imported to check them, and any that cannot be used is flagged with the reason.
    `applicable`: the applicability table of pe-bench's own plugins instead (Markdown)."""
    from rich.console import Console
    from rich.table import Table

    from pe_bench.config.grid import applicability
    from pe_bench.plugins.registry import REGISTRIES

    if applicable:
        print(applicability(), end="")
        return 0

    table = Table("kind", "name", "from", "metadata")
    for column in table.columns[:3]:
        column.no_wrap = True
    table.columns[3].min_width = 36  # `family: ..., stage: ..., modalities: ...` on two lines
    for k in [kind] if kind else KINDS:
        registry = REGISTRIES[k]
        for name in registry.names():
            problem = registry.check(name)
            if problem is not None:
                table.add_row(k, name, registry.infos()[name].origin, f"[red]unusable: {problem}[/red]")
            else:
                table.add_row(k, name, registry.provenance(name), registry.metadata(name).summary())
    Console().print(table)
    return 0


def cmd_validate(path: str, overrides: Sequence[str] = ()) -> int:
    from pe_bench.api import validate_suite

    plan = validate_suite(path, overrides)
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
    return 0


def _print_cells(label: str, counts: Counter[str], cells_by_reason: dict[str, list[str]]) -> None:
    """Per reason: how many trials it covers, then its first cells (every axis but the seed)."""
    for reason, cells in cells_by_reason.items():
        n = len(cells)
        print(f"  {label}: {counts[reason]} trials ({n} cell{'s' * (n != 1)}): {reason}")
        more = f"; and {n - SHOWN_CELLS} more" if n > SHOWN_CELLS else ""
        print(f"    dataset × encoder × attack × defense: {'; '.join(cells[:SHOWN_CELLS])}{more}")


def print_leaderboard(store: str, suite: str | None, run: str | None, fmt: str, out: str | None,
                      sort: str | None = None, columns: str | None = None, versus: str | None = None) -> int:
    from pe_bench.report.columns import pick
    from pe_bench.report.leaderboard import from_store, sort_lines, to_csv, to_markdown, to_rich
    from pe_bench.store.results import no_ok_rows

    chosen = pick(columns) if columns else None
    lines = from_store(store, suite, run, versus)
    if versus and not any(ln.attack == versus for ln in lines):
        raise PeBenchError(f"--versus: no lines of attack {versus!r} in store {store!r}")
    if sort:
        lines = sort_lines(lines, sort)
    title = (f"pe-bench leaderboard: {suite or 'all suites'}" + (f", run {run}" if run else "")
             + (f", other = {versus}" if versus else ""))
    if not lines:
        raise no_ok_rows(store, suite)
    if fmt == "terminal":
        console = _console()
        console.print(to_rich(lines, title, chosen, console.width))
        return 0
    if fmt == "md":
        text = to_markdown(lines, title, chosen, _source(store, suite, run))
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
    lines = per_seed.seed_lines(rows) if args.by_seed else defense_pairs.pair_lines(rows)
    if not lines:  # --by-seed has a line per ok row
        raise PeBenchError(f"{option}: no two defense settings of one attack in store {args.store!r}"
                           + (f" for suite {args.suite!r}" if args.suite else ""))
    title = f"pe-bench {what}: {args.suite or 'all suites'}" + (f", run {args.run}" * bool(args.run))
    if args.format == "terminal":
        _console().print(view.to_rich(lines, title))
        return 0
    source = source_note(rows, f"pe-bench leaderboard {option} --format md")
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


def _source(store: str, suite: str | None, run: str | None) -> str:
    from pe_bench.store.results import ok_rows, source_note

    return source_note(ok_rows(store, suite, run))


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
    from pe_bench.api import run_suite

    plan, summary = run_suite(args.suite, store=args.store, data_dir=args.data_dir, engine=args.engine,
                              address=args.address, resume=args.resume, run_id=args.run_id,
                              retry_failed=args.retry_failed, cache=args.cache,
                              overrides=args.overrides)
    skipped = len(plan.grid.trials) - summary.ok - summary.errors
    print(f"run {summary.run_id}: {summary.ok} ok, {summary.errors} failed, {skipped} already done; "
          f"{summary.cache_hits} encoder cache hits; {summary.seconds:.0f} s", file=sys.stderr)
    for message in summary.error_messages:
        print(f"  error {message}", file=sys.stderr)
    if not args.no_leaderboard and summary.ok + skipped > 0:
        print_leaderboard(args.store, plan.suite.name, None, "terminal", None)
    return 1 if summary.errors else 0


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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list(args.kind, args.applicability)
        if args.command == "validate":
            return cmd_validate(args.suite, args.overrides)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "plot":
            return cmd_plot(args)
        if args.command == "publish":
            return cmd_publish(args)
        if args.list_columns:
            return list_columns()
        if args.by_seed or args.defense_pairs:
            return print_trial_table(args)
        return print_leaderboard(args.store, args.suite, args.run, args.format, args.out, args.sort,
                                 args.columns, args.versus)
    except StoreWriteError as exc:  # the run stopped; what it wrote before stays
        print(f"pe-bench: error: {exc}", file=sys.stderr)
        return 1
    except PeBenchError as exc:
        print(f"pe-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pe-bench: interrupted; finished trials are in the store (use --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pe-bench ... | head`: the reader left; quiet exit 1, as rich's own
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout already replaced or closed
        pass


if __name__ == "__main__":
    sys.exit(main())
