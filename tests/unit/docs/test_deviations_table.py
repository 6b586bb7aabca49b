"""Every built-in plugin declares its deviations from its paper as structured metadata
(`DEVIATIONS`, a tuple of `pe_bench.plugins.deviations.Deviation`), and docs/builtins.md shows
them in tables generated from the plugins, so a docstring or a hand-written table cannot drift.
Regenerate with `python -m pe_bench.plugins.deviations --write docs/builtins.md`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pe_bench.plugins.deviations import (END, KINDS, START, Deviation, builtins, main, problems, region,
                                         render, replace_region)
from pe_bench.plugins.registry import REGISTRIES

BUILTINS_DOC = Path(__file__).resolve().parents[3] / "docs" / "builtins.md"
REGENERATE = "python -m pe_bench.plugins.deviations --write docs/builtins.md"


def _builtin_names(kind: str) -> list[str]:
    return sorted(n for n, info in REGISTRIES[kind].infos().items() if info.builtin)


def test_the_docs_region_is_the_rendered_tables() -> None:
    text = BUILTINS_DOC.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, "docs/builtins.md needs one marked region"
    assert region(text) == render(), f"docs/builtins.md's deviations are stale: run `{REGENERATE}`"


@pytest.mark.parametrize("kind", KINDS)
def test_every_builtin_declares_its_deviations(kind: str) -> None:
    plugins = builtins(kind)
    assert [name for name, _ in plugins] == _builtin_names(kind)
    assert {name: problems(plugin) for name, plugin in plugins if problems(plugin)} == {}
    for name, plugin in plugins:
        declared = vars(plugin)["DEVIATIONS"]
        assert isinstance(declared, tuple) and all(isinstance(d, Deviation) for d in declared), name
        assert all(d.what.strip() and d.why.strip() and d.effect.strip() for d in declared), name


def test_attacks_and_defenses_that_follow_a_paper_declare_something() -> None:
    """Only plugins of our own (the `none`s) may declare an empty tuple."""
    empty = {(kind, name) for kind in ("attacks", "defenses") for name, plugin in builtins(kind)
             if not plugin.DEVIATIONS}
    assert empty <= {("attacks", "none"), ("defenses", "none")}


def test_each_builtin_has_a_row_in_the_table() -> None:
    rendered = render()
    for kind in KINDS:
        for name in _builtin_names(kind):
            assert f"| `{name}` |" in rendered, (kind, name)


def test_a_plugin_without_its_own_deviations_fails_the_check() -> None:
    base = REGISTRIES["attacks"].get("poisoned-encoder")

    class Undeclared(base):  # type: ignore[misc, valid-type]
        """Inherits the parent's DEVIATIONS, which do not describe a subclass."""

    class Bare:
        pass

    assert problems(Undeclared) == ["test_a_plugin_without_its_own_deviations_fails_the_check."
                                    "<locals>.Undeclared declares no DEVIATIONS of its own"]
    assert problems(Bare) and problems(object()) and problems(base) == []


def test_malformed_deviations_fail_the_check() -> None:
    class NotATuple:
        DEVIATIONS: ClassVar[Any] = [Deviation("a", "b")]

    class NotDeviations:
        DEVIATIONS: ClassVar[Any] = ("a string",)

    class EmptyWhy:
        DEVIATIONS: ClassVar[Any] = (Deviation("what", " "), Deviation("", "why", ""))

    assert "not a tuple" in problems(NotATuple)[0]
    assert "not a Deviation" in problems(NotDeviations)[0]
    assert [p.rsplit(".", 1)[1] for p in problems(EmptyWhy)] == [
        "why is not a non-empty string", "what is not a non-empty string", "effect is not a non-empty string"]


def test_a_deviation_is_frozen_and_unmeasured_by_default() -> None:
    d = Deviation("what", "why")
    assert d.effect == "not measured"
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.what = "else"  # type: ignore[misc]


def test_the_table_escapes_pipes_and_lists_empty_declarations() -> None:
    class Ours:
        DEVIATIONS: ClassVar[tuple[Deviation, ...]] = ()

    class Piped:
        DEVIATIONS = (Deviation("N = round(r × |D|)", "one\n   line"),)

    from pe_bench.plugins.deviations import table

    lines = table([("ours", Ours), ("piped", Piped)])
    assert lines[2] == "| `ours` | none: no paper to depart from | — | — |"
    assert lines[3] == "| `piped` | N = round(r × \\|D\\|) | one line | not measured |"


def test_write_replaces_only_the_marked_region(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{START}\nstale\n{END}\nafter\n", encoding="utf-8")
    assert main(["--check", str(doc)]) == 1
    assert main(["--write", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith(f"before\n{START}\n") and text.endswith(f"{END}\nafter\n")
    assert region(text) == render() and main(["--check", str(doc)]) == 0
    assert replace_region(text, render()) == text


def test_a_document_without_markers_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("no markers\n", encoding="utf-8")
    assert main(["--write", str(doc)]) == 2
    assert doc.read_text(encoding="utf-8") == "no markers\n"
    with pytest.raises(ValueError, match="region"):
        region(f"{END}\n{START}\n")
