"""Plugins known without importing them: built-ins from the decorators in their source (`ast`:
a literal name and literal keyword arguments, the plugin's metadata), third-party plugins from
the entry points in installed packages' metadata. `pe-bench list`, `validate` and the grid read
this index, so they never import a plugin module or torch."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from pe_bench import __version__
from pe_bench.errors import PluginError

BUILTIN_ORIGIN = "pe-bench"


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin comes from, known without importing it."""

    name: str
    origin: str  # "pe-bench", a distribution name, or "module <name>" for unpackaged plugins
    target: str  # "module" (built-in, decorator inside) or "module:attr" (entry point)
    builtin: bool
    declared: Mapping[str, Any] = field(default_factory=dict)  # a built-in decorator's keywords
    version: str = ""  # the distribution's version (entry points)
    problem: str | None = None  # why the name cannot be used (e.g. claimed twice), one line


def _literal(node: ast.expr, where: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise PluginError(f"{where}: plugin metadata must be a literal (a string, number, tuple "
                          "or dict of those), so it can be read without importing") from None


def decorations(path: Path, decorator: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, keyword arguments) of each `@decorator("name", key=literal, ...)` in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and deco.args):
                continue
            func = deco.func
            fname = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            arg = deco.args[0]
            if fname == decorator and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                where = f"{path.name}:{deco.lineno}: @{decorator}({arg.value!r})"
                found.append((arg.value, {str(k.arg): _literal(k.value, where) for k in deco.keywords}))
    return found


def module_files(module: str) -> list[tuple[str, Path]]:
    """(module name, source file) for a module, or for every module directly in a package."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise PluginError(f"built-in plugin module {module!r} is not importable")
    if spec.submodule_search_locations:
        return [(f"{module}.{path.stem}", path) for loc in spec.submodule_search_locations
                for path in sorted(Path(loc).glob("*.py")) if path.stem != "__init__"]
    return [(module, Path(str(spec.origin)))]


def import_target(target: str) -> Any:
    """The object a "module:attr" target (an entry point's value) names, importing it."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def build_index(builtin_modules: Iterable[str], decorator: str, group: str) -> dict[str, PluginInfo]:
    """Built-ins (from source) and entry points of `group` (from package metadata); a name
    claimed twice is kept with its `problem`."""
    index: dict[str, PluginInfo] = {}
    for module in builtin_modules:
        for modname, path in module_files(module):
            for name, declared in decorations(path, decorator):
                index[name] = PluginInfo(name, BUILTIN_ORIGIN, modname, True, declared, __version__)
    by_name: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=group):
        if ep.dist is None or ep.dist.name != BUILTIN_ORIGIN:
            by_name.setdefault(ep.name, []).append(ep)
    for name, eps in sorted(by_name.items()):
        dists = sorted({f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?" for ep in eps})
        if name in index:
            index[name] = replace(index[name], problem=(
                f"is claimed by the built-in ({index[name].target}) and by {', '.join(dists)}: "
                "uninstall that package or rename its entry point"))
        elif len(dists) > 1:
            index[name] = PluginInfo(name, " and ".join(dists), "", False,
                                     problem=f"is claimed by two packages: {' and '.join(dists)}")
        else:
            dist = eps[0].dist
            index[name] = PluginInfo(name, dist.name if dist else "?", eps[0].value, False,
                                     version=dist.version if dist else "")
    return index
