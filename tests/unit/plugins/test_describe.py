"""`pe-bench list --params` reads a plugin's parameters from its Params model (issue 21, point
6c): type, default, bounds and the description (a `Field(description=...)`, else the comment
explaining the field in the source); names are resolved across kinds with a did-you-mean."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from pe_bench.attacks.targets import TargetedParams
from pe_bench.errors import PluginError
from pe_bench.plugins.describe import param_rows, resolve, type_name
from pe_bench.plugins.types import PluginParams


class Commented(PluginParams):
    rate: float = Field(0.1, gt=0, le=1)  # the trailing comment
    # the comment block
    # right above
    size: int = Field(3, ge=1)
    described: int = Field(2, description="the Field description")  # not this comment
    bare: bool = False
    choice: Literal["a", "b"] = "a"
    pair: tuple[float, float] | None = (0.0, 1.0)


def test_rows_give_type_default_bounds_and_description() -> None:
    rows = {r.name: r for r in param_rows(Commented)}
    assert (rows["rate"].type, rows["rate"].default, rows["rate"].bounds) == ("float", "0.1", "> 0, <= 1")
    assert rows["rate"].description == "the trailing comment"
    assert rows["size"].description == "the comment block right above" and rows["size"].bounds == ">= 1"
    assert rows["described"].description == "the Field description"
    assert rows["bare"].description == "" and rows["bare"].default == "false"
    assert rows["choice"].type == "'a' | 'b'" and rows["choice"].default == '"a"'
    assert rows["pair"].type == "tuple[float, float] | None" and rows["pair"].default == "[0.0, 1.0]"


def test_builtin_comments_become_descriptions_and_subclasses_inherit_them() -> None:
    rows = {r.name: r for r in param_rows(TargetedParams)}
    assert rows["poison_rate"].description == "total poisons / clean pre-training images"
    assert rows["attacker_data"].description.startswith("the attacker's labelled data")
    assert rows["poison_rate"].default == "0.01" and rows["poison_rate"].bounds == "> 0, <= 1"
    assert type_name(int | None) == "int | None"


@pytest.mark.parametrize(("query", "kind", "expected"), [
    ("duplicate", None, ("attacks", "duplicate")),
    ("attacks/none", None, ("attacks", "none")),
    ("defense/none", None, ("defenses", "none")),
    ("none", "defenses", ("defenses", "none")),
    ("simclr", None, ("encoders", "simclr")),
])
def test_resolve(query: str, kind: str | None, expected: tuple[str, str]) -> None:
    assert resolve(query, kind) == expected


@pytest.mark.parametrize(("query", "kind", "fragment"), [
    ("none", None,
     "'none' names an attack and a defense: say which, e.g. --params attacks/none or defenses/none"),
    ("dupliate", None, "unknown plugin 'dupliate'; did you mean 'duplicate'?"),
    ("dupliate", "attacks", "unknown attack 'dupliate'; did you mean 'duplicate'?"),
    ("widgets/none", None, "unknown plugin kind 'widgets'"),
    ("attacks/none", "defenses", "names another kind than 'defenses'"),
])
def test_resolve_errors_are_one_line(query: str, kind: str | None, fragment: str) -> None:
    with pytest.raises(PluginError) as err:
        resolve(query, kind)
    assert fragment in str(err.value) and "\n" not in str(err.value)
