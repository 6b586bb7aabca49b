"""Deviations from the papers, declared where they can be read.

Every built-in plugin class declares how it departs from its paper or released code as a class
attribute, `DEVIATIONS: ClassVar[tuple[Deviation, ...]]` (empty for a plugin with no paper to
depart from). docs/builtins.md holds the tables rendered from them between its
`<!-- deviations:start -->` and `<!-- deviations:end -->` markers, so the docs cannot drift from
the code: regenerate with `python -m pe_bench.plugins.deviations --write docs/builtins.md`
(`--check` exits 1 when the region is stale; tests/unit/docs/test_deviations_table.py checks it).

Torch-free at import. Rendering imports the built-in plugin modules through the registries
(attacks and defenses are torch-free; encoders import torch).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pe_bench.plugins.registry import REGISTRIES

START, END = "<!-- deviations:start -->", "<!-- deviations:end -->"
NOT_MEASURED = "not measured"
KINDS = ("attacks", "defenses", "encoders")  # the kinds whose built-ins follow papers
HEADING = "## Deviations from the papers (generated)"
INTRO = (
    "Each built-in plugin declares how it departs from its paper or released code in its "
    "`DEVIATIONS` class attribute (`pe_bench.plugins.deviations.Deviation`: what, why, measured "
    "effect); this section is generated from them by `python -m pe_bench.plugins.deviations "
    "--write docs/builtins.md`, and tests/unit/docs/test_deviations_table.py fails when it is "
    "stale. \"not measured\" means no table in docs/results or docs/performance.md isolates the "
    "deviation's effect. Choices every targeted attack shares are in `pe_bench.attacks.targets`, "
    "those every backdoor shares in `pe_bench.attacks.backdoor`."
)


@dataclass(frozen=True)
class Deviation:
    """One way a plugin departs from its paper or released code: `what` it does differently,
    `why`, and the `effect` measured (with the table or page that shows it), else "not measured"."""

    what: str
    why: str
    effect: str = NOT_MEASURED


def problems(plugin: Any) -> list[str]:
    """What is wrong with a plugin class's own `DEVIATIONS` (one line each; [] when none). An
    inherited declaration does not count: a subclass departs from its paper in its own ways."""
    name = getattr(plugin, "__qualname__", repr(plugin))
    own = vars(plugin).get("DEVIATIONS") if isinstance(plugin, type) else None
    if own is None:
        return [f"{name} declares no DEVIATIONS of its own"]
    if not isinstance(own, tuple):
        return [f"{name}.DEVIATIONS is a {type(own).__name__}, not a tuple of Deviation"]
    found = []
    for i, item in enumerate(own):
        if not isinstance(item, Deviation):
            found.append(f"{name}.DEVIATIONS[{i}] is a {type(item).__name__}, not a Deviation")
            continue
        for f in fields(Deviation):
            value = getattr(item, f.name)
            if not (isinstance(value, str) and value.strip()):
                found.append(f"{name}.DEVIATIONS[{i}].{f.name} is not a non-empty string")
    return found


def builtins(kind: str) -> list[tuple[str, Any]]:
    """(name, class) of every built-in plugin of `kind`, by name; imports their modules."""
    registry = REGISTRIES[kind]
    return [(name, registry.get(name)) for name, info in sorted(registry.infos().items()) if info.builtin]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(plugins: Sequence[tuple[str, Any]]) -> list[str]:
    """Markdown table lines: plugin | deviation | why | measured effect, a row per deviation."""
    lines = ["| plugin | deviation | why | measured effect |", "| --- | --- | --- | --- |"]
    for name, plugin in plugins:
        declared: tuple[Deviation, ...] = getattr(plugin, "DEVIATIONS", ())
        if not declared:
            lines.append(f"| `{name}` | none: no paper to depart from | — | — |")
        for d in declared:
            lines.append(f"| `{name}` | {_cell(d.what)} | {_cell(d.why)} | {_cell(d.effect)} |")
    return lines


def render(kinds: Sequence[str] = KINDS) -> str:
    """The generated section: heading, note, one table per kind; ends with a newline."""
    parts = [HEADING, "", INTRO]
    for kind in kinds:
        parts += ["", f"### {kind.capitalize()}", "", *table(builtins(kind))]
    return "\n".join(parts) + "\n"


def _bounds(text: str) -> tuple[int, int]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {START} ... {END} region")
    return start + len(START), end


def region(text: str) -> str:
    """What a document holds between the markers (the newline after the start marker excluded)."""
    start, end = _bounds(text)
    return text[start:end].removeprefix("\n")


def replace_region(text: str, body: str) -> str:
    """`text` with the marked region replaced by `body`; the markers and the rest are kept."""
    start, end = _bounds(text)
    return f"{text[:start]}\n{body}{text[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pe_bench.plugins.deviations",
        description="Render the built-in plugins' DEVIATIONS as Markdown tables (to stdout by default).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--write", type=Path, metavar="FILE", help="replace the marked region of FILE")
    where.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE's region is stale")
    args = parser.parse_args(argv)
    body = render()
    path: Path | None = args.write or args.check
    if path is None:
        sys.stdout.write(body)
        return 0
    try:
        text = path.read_text(encoding="utf-8")
        if args.check:
            stale = region(text) != body
            print(f"{path}: deviations {'stale: regenerate with --write' if stale else 'up to date'}")
            return int(stale)
        path.write_text(replace_region(text, body), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # run as the package's module, so its Deviation is the plugins' one
    from pe_bench.plugins.deviations import main as _main

    raise SystemExit(_main())
