"""The default board: per setup (dataset, encoder, task, attack family) an attack × defense matrix
of the effect, then small tables for the effect's intervals and tests, utility, detection and cost.

Built from the board's lines (pe_bench.report.leaderboard.aggregate): nothing here computes a
statistic; every mark reads the verdict its line's interval already carries (pe_bench.report.stats:
`Interval.verdict`, corrected within the suite's declared family). A matrix cell is the line's
ΔASR vs its clean twin; its mark is the verdict of the cell's declared test: the attack vs its
twin in the undefended row, the defense vs no defense in a defense's row. Every table has
at most `MAX_COLUMNS` columns (a matrix with more attacks is split, repeating the defense column);
the full line table is `--columns all`, the CSV and the Parquet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pe_bench.report.column_kinds import fmt_ci
from pe_bench.report.columns import BY_KEY
from pe_bench.report.lines import Line
from pe_bench.report.stats import Interval

MAX_COLUMNS = 12
MARKS = {"supported": " ✓", "n.s.": " ns", "exploratory": " ?"}
LEGEND = (  # at most five lines, each under 120 characters
    "cell = ΔASR vs the paired clean twin, mean over seeds; mark = the cell's declared test, Holm within its family:",
    "✓ supported · ns not supported · ? exploratory (no declared test), never a verdict · = no test (zero by construction)",
    "none row: the attack vs its clean twin; a defense's row: the defense vs no defense (✓: ASR changed); (n): n < 3 seeds",
    "CA, PA = clean accuracy of the twin, of this encoder; ΔPA = PA - CA; recall @k% = poisons flagged at k% clean FPR",
    "every column, interval and raw p: --columns all, --format csv, pe-bench publish; definitions: docs/metrics.md",
)


@dataclass(frozen=True)
class Table:
    """One small table of the board: a title, headers and string cells."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Setup = tuple[str, str, str, str]  # dataset, encoder, task, attack family


def setup_of(line: Line) -> Setup:
    return (line.dataset, line.encoder, line.task, line.family)


def _setup_title(setup: Setup) -> str:
    dataset, encoder, task, family = setup
    return f"{dataset} · {encoder}" + (f" · task {task}" if task != dataset else "") + f" · {family}"


def _attack_label(line: Line, lines: Sequence[Line]) -> str:
    """The attack's label, with its target selection where one attack runs at several."""
    label = line.attack_label or line.attack
    selections = {ln.selection for ln in lines if (ln.attack_label or ln.attack) == label}
    return f"{label} [{line.selection}]" if len(selections) > 1 else label


def _defense_label(line: Line) -> str:
    return line.defense_label or line.defense


def mark(line: Line) -> str:
    """The cell's verdict mark: the attack vs its twin (undefended), the defense vs none."""
    if line.defense == "none":
        test = line.intervals.get("delta_asr")
    else:
        test = line.intervals.get("delta_asr_defense")
        if test is None:
            return " ="
    return "" if test is None else MARKS[test.verdict]


def effect_cell(line: Line | None) -> str:
    """ΔASR vs the twin with its mark; `-` where the grid has no such cell."""
    if line is None:
        return "-"
    effect = line.intervals.get("delta_asr")
    if effect is None:
        return "-"
    few = "" if line.published else f" ({line.seeds})"
    return f"{effect.mean:+.2f}{mark(line)}{few}"


def setups(lines: Sequence[Line]) -> dict[Setup, list[Line]]:
    """The lines by setup, in order. The clean twins' own lines (attack `none`, filed as targeted)
    join the attacked lines of their dataset, encoder and task when none of those is targeted
    (a backdoor-only grid), so no setup holds the twins alone."""
    attacked: dict[tuple[str, str, str], list[str]] = {}
    for ln in lines:
        if ln.attack != "none":
            attacked.setdefault(setup_of(ln)[:3], []).append(ln.family)
    out: dict[Setup, list[Line]] = {}
    for ln in lines:
        setup = setup_of(ln)
        families = attacked.get(setup[:3])
        if ln.attack == "none" and families and ln.family not in families:
            setup = (*setup[:3], families[0])
        out.setdefault(setup, []).append(ln)
    return out


def effect_matrices(lines: Sequence[Line]) -> list[Table]:
    """Per setup, the defense × attack matrix of attacked lines (a row per defense, `none` first;
    a column per attack: attacks are few, defense settings many and long-named), split so that
    no table has more than MAX_COLUMNS columns."""
    out = []
    for setup, cells in cell_lines(lines).items():
        defenses = list(dict.fromkeys(d for d, _ in cells))
        attacks = list(dict.fromkeys(a for _, a in cells))
        step = MAX_COLUMNS - 1
        for start in range(0, len(attacks), step):
            shown = attacks[start:start + step]
            part = f" ({start // step + 1}/{-(-len(attacks) // step)})" if len(attacks) > step else ""
            rows = tuple((d, *(effect_cell(cells.get((d, a))) for a in shown)) for d in defenses)
            out.append(Table(f"{_setup_title(setup)}: ΔASR vs clean twin{part}", ("defense", *shown), rows))
    return out


def cell_lines(lines: Sequence[Line]) -> dict[Setup, dict[tuple[str, str], Line]]:
    """Per setup with attacked lines, the line behind each cell of its effect matrix, keyed by
    (defense, attack) as the matrix labels them (its first column, its headers): what
    `effect_matrices` reads each cell from."""
    out = {}
    for setup, members in setups(lines).items():
        attacked = [ln for ln in members if ln.attack != "none"]
        if attacked:
            out[setup] = {(_defense_label(ln), _attack_label(ln, attacked)): ln for ln in attacked}
    return out


def _ci(line: Line, key: str) -> str:
    ci: Interval | None = line.intervals.get(key)
    return "-" if ci is None else fmt_ci(ci)


def _stat(key: str) -> Callable[[Line], str]:
    column = BY_KEY[key]
    return column.cell


def _p(key: str) -> Callable[[Line], str]:
    column = BY_KEY[f"p_{key}"]
    return column.cell


def _defended(cell: Callable[[Line], str]) -> Callable[[Line], str]:
    return lambda ln: cell(ln) if ln.defense != "none" else "-"


EFFECT: tuple[tuple[str, Callable[[Line], str]], ...] = (
    ("seeds", lambda ln: BY_KEY["seeds"].cell(ln) + (f" ({ln.failed} failed)" if ln.failed else "")),
    ("hits", BY_KEY["hits"].cell), ("clean hits", BY_KEY["clean_hits"].cell),
    ("ΔASR [95% CI]", lambda ln: _ci(ln, "delta_asr")), ("p", _p("delta_asr")),
    ("ΔASR vs none [95% CI]", _defended(lambda ln: _ci(ln, "delta_asr_defense"))),
    ("p vs none", _defended(_p("delta_asr_defense"))),
    ("Δp(target) [95% CI]", lambda ln: _ci(ln, "delta_p")),
)
VERSUS: tuple[tuple[str, Callable[[Line], str]], ...] = (  # with --versus: vs the other attack
    ("ΔASR vs other [95% CI]", lambda ln: _ci(ln, "delta_asr_versus")), ("p vs other", _p("delta_asr_versus")),
)
UTILITY: tuple[tuple[str, Callable[[Line], str]], ...] = (
    ("CA", _stat("ca")), ("PA", _stat("pa")), ("ΔPA [95% CI]", lambda ln: _ci(ln, "delta_pa")),
    ("p", _p("delta_pa")), ("ΔPA vs none [95% CI]", _defended(lambda ln: _ci(ln, "delta_pa_defense"))),
    ("p vs none", _defended(_p("delta_pa_defense"))),
)
DETECTION: tuple[tuple[str, Callable[[Line], str]], ...] = tuple(
    (BY_KEY[k].header, BY_KEY[k].cell) for k in (
        "poison_auroc", "poison_auprc", "poison_recall_fpr1", "poison_recall_fpr5", "poison_precision",
        "clean_removed", "encoder_auroc", "encoder_flags"))
COST: tuple[tuple[str, Callable[[Line], str]], ...] = tuple(
    (BY_KEY[k].header, BY_KEY[k].cell) for k in ("defense_cpu_s", "extra_steps", "clean_used", "repair_steps"))


def _small(lines: Sequence[Line], name: str, columns: tuple[tuple[str, Callable[[Line], str]], ...],
           keep: Callable[[Line], bool]) -> list[Table]:
    """Per setup, one line per (attack, defense) that `keep` keeps, the columns that have a value."""
    out = []
    for setup, members in setups(lines).items():
        found = [(ln, [cell(ln) for _, cell in columns]) for ln in members if keep(ln)]
        found = [(ln, row) for ln, row in found if any(c not in ("-", "") for c in row)]
        chosen, cells = [ln for ln, _ in found], [row for _, row in found]
        used = [i for i in range(len(columns)) if any(row[i] not in ("-", "") for row in cells)]
        if not chosen or not used:
            continue
        rows = tuple((_attack_label(ln, chosen), _defense_label(ln), *(cells[j][i] for i in used))
                     for j, ln in enumerate(chosen))
        out.append(Table(f"{_setup_title(setup)}: {name}", ("attack", "defense",
                                                             *(columns[i][0] for i in used)), rows))
    return out


def board(lines: Sequence[Line]) -> list[Table]:
    """Every table of the default board, in order: the effect matrices, then the effect's
    intervals and p-values, utility, detection and cost (each only where some line has a value)."""
    defended = lambda ln: ln.defense != "none"  # noqa: E731
    effect = EFFECT + (VERSUS if any(ln.versus for ln in lines) else ())
    out: list[Table] = []
    for members in setups(lines).values():  # one setup at a time
        out += [*effect_matrices(members),
                *_small(members, "effect", effect, lambda ln: ln.attack != "none"),
                *_small(members, "utility", UTILITY, lambda _: True),
                *_small(members, "detection", DETECTION, defended),
                *_small(members, "cost", COST, defended)]
    return out


def to_markdown(tables: Sequence[Table], title: str, source: str = "") -> str:
    """The board as Markdown: one `##` section per table, the legend (at most five lines) last."""
    out = [f"# {title}", "", *([source, ""] if source else [])]
    for t in tables:
        out += [f"## {t.title}", "", "| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.headers)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in t.rows]
        out.append("")
    return "\n".join([*out, *(f"- {line}" for line in LEGEND), ""])


def to_rich(tables: Sequence[Table], title: str, width: int = 120) -> Any:
    """The board for a terminal `width` wide: each table stacked, none wrapping or cutting a cell
    (a matrix too wide is split, repeating its defense column), the legend last."""
    from rich.console import Group
    from rich.text import Text

    from pe_bench.report import text_table

    parts: list[Any] = [Text(title, style="bold")]
    for t in tables:
        keys = 2 if t.headers[:2] == ("attack", "defense") else 1
        parts += [Text(f"\n{t.title}", style="bold"),
                  text_table.rich("", t.headers, t.rows, "", width, keys=keys, lift=False)]
    parts.append(Text("\n" + "\n".join(LEGEND)))
    return Group(*parts)
