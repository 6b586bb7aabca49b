"""What `pe-bench list` prints: every plugin with its origin and metadata, or one plugin's
parameters (name, type, default, bounds, description) read from its `Params` model.

Torch-free: the plugin table imports only third-party plugins (to check them), and a Params
model is imported from where the registry says it lives (a built-in encoder's torch-free params
module, a built-in attack, defense or dataset module, which are torch-free too). A field's
description is its `Field(description=...)`, else the comment that explains it in the source
(trailing the field, or the comment lines right above it), as the built-ins write them.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import io
import json
import textwrap
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.markup import escape
from rich.table import Table

from pe_bench.errors import PluginError
from pe_bench.plugins.registry import REGISTRIES

# (constraint attribute, how `list --params` shows it), as pydantic stores Field(gt=..., ...)
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "len >="),
           ("max_length", "len <="), ("multiple_of", "multiple of"))


@dataclass(frozen=True)
class ParamRow:
    """One parameter as `pe-bench list --params` shows it."""

    name: str
    type: str
    default: str
    bounds: str
    description: str


def plugins_table(kinds: Sequence[str]) -> Table:
    """Every plugin of `kinds` with the code it comes from and its metadata; a plugin that
    cannot be used says why. The metadata wraps, so the table fits the console's width."""
    table = Table("kind", "name", "from", "metadata")
    for column in table.columns[:3]:  # whole, to be copied; the metadata takes what is left
        column.no_wrap = True
    table.columns[3].overflow = "fold"
    for kind in kinds:
        registry = REGISTRIES[kind]
        for name in registry.names():
            problem = registry.check(name)
            if problem is not None:
                table.add_row(kind, name, escape(registry.infos()[name].origin),
                              f"[red]unusable: {escape(problem)}[/red]")
            else:
                table.add_row(kind, name, escape(registry.provenance(name)),
                              escape(registry.metadata(name).summary()))
    return table


def resolve(query: str, kind: str | None = None) -> tuple[str, str]:
    """(kind, name) of the plugin `query` names: `NAME`, or `KIND/NAME` where a name is
    claimed by several kinds (`none` is an attack and a defense). Unknown or ambiguous names are
    a one-line PluginError with a did-you-mean."""
    if "/" in query:
        given, _, query = query.partition("/")
        kind = _kind(given, kind)
    kinds = [kind] if kind else list(REGISTRIES)
    found = [k for k in kinds if query in REGISTRIES[k]]
    if len(found) == 1:
        return found[0], query
    if found:
        return _ambiguous(query, found)
    if kind:
        raise PluginError(REGISTRIES[kind].unknown_message(query))
    known = sorted({n for k in kinds for n in REGISTRIES[k].names()})
    close = difflib.get_close_matches(query, known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise PluginError(f"unknown plugin {query!r}{hint} (`pe-bench list` shows every plugin)")


def _kind(given: str, kind: str | None) -> str:
    """A kind as `KIND/NAME` spells it (`attacks` or `attack`), agreeing with a given kind."""
    named = {k: k for k in REGISTRIES} | {r.noun: k for k, r in REGISTRIES.items()}
    if given not in named:
        raise PluginError(f"unknown plugin kind {given!r} in {given}/...; kinds: {', '.join(REGISTRIES)}")
    if kind and named[given] != kind:
        raise PluginError(f"--params {given}/... names another kind than {kind!r}")
    return named[given]


def _ambiguous(name: str, kinds: list[str]) -> tuple[str, str]:
    nouns = " and ".join(f"{'an' if REGISTRIES[k].noun[0] in 'aeiou' else 'a'} {REGISTRIES[k].noun}"
                         for k in kinds)
    options = " or ".join(f"{k}/{name}" for k in kinds)
    raise PluginError(f"{name!r} names {nouns}: say which, e.g. --params {options}")


def params_table(kind: str, name: str) -> Table:
    """One plugin's parameters, from its Params model."""
    registry = REGISTRIES[kind]
    model = registry.params_model(name)
    table = Table("param", "type", "default", "bounds", "description",
                  title=escape(f"{registry.noun} {name} ({registry.provenance(name)}): {model.__name__}"))
    for column in table.columns[:1]:
        column.no_wrap = True
    rows = param_rows(model)
    for row in rows:
        cells = (row.name, row.type, row.default, row.bounds or "-", row.description or "-")
        table.add_row(*map(escape, cells))
    if not rows:
        table.caption = "no parameters"
    return table


def param_rows(model: type[BaseModel]) -> list[ParamRow]:
    """Every field of a Params model: its type, default, bounds and description."""
    comments = source_comments(model)
    return [ParamRow(field, type_name(info.annotation), _default(info), _bounds(info),
                     info.description or comments.get(field, ""))
            for field, info in model.model_fields.items()]


def type_name(annotation: Any) -> str:
    """A field's type as a suite author reads it: `float`, `int | None`, `'a' | 'b'`,
    `tuple[float, float]`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if origin is Literal:
        return " | ".join(map(repr, args))
    if origin in (Union, UnionType):
        return " | ".join(map(type_name, args))
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(map(type_name, args))}]"
    return str(getattr(annotation, "__name__", annotation)).replace("typing.", "")


def _default(info: FieldInfo) -> str:
    """The default as JSON (YAML reads it back alike), or `required`."""
    if info.is_required():
        return "required"
    return json.dumps(info.get_default(call_default_factory=True), default=str)


def _bounds(info: FieldInfo) -> str:
    return ", ".join(f"{sign} {getattr(m, attr)}" for m in info.metadata
                     for attr, sign in _BOUNDS if getattr(m, attr, None) is not None)


def source_comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the comment explaining it in the source of the model or a base model (a
    subclass's comment wins); {} where the source cannot be read."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if isinstance(cls, type) and issubclass(cls, BaseModel) and cls is not BaseModel:
            found.update(_class_comments(cls))
    return found


def _class_comments(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        node = ast.parse(source).body[0]
    except (OSError, TypeError, SyntaxError, tokenize.TokenError, IndexError):
        return {}
    comments = {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}
    lines = source.splitlines()
    out = {}
    for stmt in getattr(node, "body", []):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            end = stmt.end_lineno or stmt.lineno
            text = (comments.get(end) or comments.get(stmt.lineno)
                    or _comment_above(stmt.lineno, lines, comments))
            if text:
                out[stmt.target.id] = text
    return out


def _comment_above(lineno: int, lines: list[str], comments: dict[int, str]) -> str:
    """The comment-only lines right above line `lineno` (1-based), joined."""
    block: list[str] = []
    line = lineno - 1
    while line >= 1 and lines[line - 1].lstrip().startswith("#"):
        block.insert(0, comments.get(line, ""))
        line -= 1
    return " ".join(block)
