"""`pe-bench` command line: the arguments and their dispatch; each command's work and output is
in commands.py (which calls api.py for runs and the report package for tables).

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

from pe_bench.commands import (KINDS, cmd_list, cmd_plot, cmd_publish, cmd_run, cmd_validate, list_columns,
                               print_leaderboard, print_trial_table)
from pe_bench.engines.named import ENGINES
from pe_bench.errors import PeBenchError, StoreWriteError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pe-bench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="registered plugins and where they come from")
    ls.add_argument("kind", nargs="?", choices=KINDS)
    ls.add_argument("--applicability", action="store_true", help="the attack x encoder x defense table "
                    "of which cells can run (Markdown; docs/applicability.md)")
    ls.add_argument("--params", metavar="[KIND/]NAME", help="one plugin's parameters: name, type, default, "
                    "bounds, description (KIND/NAME, or the kind argument, where a name has several kinds)")
    val = sub.add_parser("validate", help="check a suite and its data, print its expanded grid")
    val.add_argument("suite")
    _add_overrides(val)
    val.add_argument("--data-dir", help="datasets folder (default $PE_BENCH_DATA, then the user cache)")
    val.add_argument("--budgets", action="store_true",
                     help="craft each attack setting's poisons once (loads the data, imports torch) and "
                          "name those that repeat images because the attacker's data cannot supply them")
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
    lb.add_argument("--sort", help="a line table ordered by a column, e.g. asr, pa, delta_asr_defense, "
                                   "poison_recall, defense_cpu_s; descending: --sort=-asr")
    lb.add_argument("--columns", metavar="A,B,C", help="a line table of these columns (keys from "
                    "--list-columns; `all`: every column) instead of the default matrix board")
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
    pub = sub.add_parser("publish", help="leaderboard md/csv/parquet and an offline static site "
                         "(index.html, a page per suite)")
    pub.add_argument("--store", default="results")
    pub.add_argument("--out", required=True, help="output directory")
    pub.add_argument("--suite", help="only this suite (default: every suite in the store)")


def _add_run(run: argparse.ArgumentParser) -> None:
    run.add_argument("suites", nargs="+", metavar="suite",
                     help="suite file(s); several run in order into one store, each board at the end")
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
    run.add_argument("--redeclare", action="store_true",
                     help="replace the comparisons recorded in the store with the suite's (the board "
                          "then says they changed after results existed)")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="change the suite before it is validated, e.g. train.epochs=1, "
                             "datasets.0.pretrain.max_images=200, 'seeds=[0]' (VALUE is YAML; repeatable)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list(args.kind, args.applicability, args.params)
        if args.command == "validate":
            return cmd_validate(args.suite, args.overrides, args.data_dir, args.budgets)
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
