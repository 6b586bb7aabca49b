"""Plugin registries: decorator registration, entry points, lazy loading, did-you-mean.

Built-in plugins are found by reading the source of pe-bench's own plugin modules with `ast`
(decorator calls with a literal name), so `pe-bench list` knows every name and origin without
importing torch or the plugin modules. Third-party plugins come from the entry-point group
`pe_bench.<kind>`; the entry-point name is the registry name. A plugin module imported by hand
(a suite's `plugins:` list) registers itself through the decorator.

Clash rules: a built-in name wins over an entry point (the entry point is reported as shadowed);
two entry points from different distributions claiming one name, or two different objects
decorated with one name, are errors naming both origins.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import importlib.util
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from pe_bench.errors import PluginError

T = TypeVar("T")
BUILTIN_ORIGIN = "pe-bench"


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin comes from, known without importing it."""

    name: str
    origin: str  # distribution name, or "module <name>" for unpackaged plugins
    target: str  # "module" (built-in, decorator inside) or "module:attr" (entry point)
    builtin: bool


def _decorated_names(path: Path, decorator: str) -> list[str]:
    """Names passed as literal first argument to `@decorator("name")` in a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
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
                names.append(arg.value)
    return names


def _module_files(module: str) -> list[tuple[str, Path]]:
    """(module name, source file) for a module, or for every module directly in a package."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise PluginError(f"built-in plugin module {module!r} is not importable")
    if spec.submodule_search_locations:
        out = []
        for loc in spec.submodule_search_locations:
            for path in sorted(Path(loc).glob("*.py")):
                if path.stem != "__init__":
                    out.append((f"{module}.{path.stem}", path))
        return out
    return [(module, Path(str(spec.origin)))]


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _origin_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    top = module.split(".")[0]
    if top == "pe_bench":
        return BUILTIN_ORIGIN
    dists = _distributions().get(top)
    return dists[0] if dists else f"module {module}"


class Registry(Generic[T]):
    """One registry per plugin kind (attacks, defenses, encoders, datasets)."""

    def __init__(self, kind: str, builtin_modules: Iterable[str], decorator: str) -> None:
        self.kind = kind
        self.group = f"pe_bench.{kind}"
        self._builtin_modules = tuple(builtin_modules)
        self._decorator = decorator
        self._loaded: dict[str, tuple[T, str]] = {}
        self._index: dict[str, PluginInfo] | None = None

    # -- registration -------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        """Class/function decorator: `@register_attack("name")`."""

        def deco(obj: T) -> T:
            self.add(name, obj, _origin_of(obj))
            return obj

        return deco

    def add(self, name: str, obj: T, origin: str) -> None:
        present = self._loaded.get(name)
        if present is not None and present[0] is not obj:
            raise PluginError(
                f"{self.kind[:-1]} {name!r} is registered twice: by {present[1]} and by {origin}"
            )
        self._loaded[name] = (obj, origin)

    # -- discovery without import ----------------------------------------------------------
    def infos(self) -> dict[str, PluginInfo]:
        """Every known plugin, built-ins first; imports neither plugins nor torch."""
        if self._index is None:
            self._index = self._build_index()
        extra = {
            n: PluginInfo(n, origin, "", False)
            for n, (_, origin) in self._loaded.items()
            if n not in self._index
        }
        return {**self._index, **extra}

    def _build_index(self) -> dict[str, PluginInfo]:
        index: dict[str, PluginInfo] = {}
        for module in self._builtin_modules:
            for modname, path in _module_files(module):
                for name in _decorated_names(path, self._decorator):
                    index[name] = PluginInfo(name, BUILTIN_ORIGIN, modname, True)
        by_name: dict[str, list[metadata.EntryPoint]] = {}
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            if dist == BUILTIN_ORIGIN:
                continue
            by_name.setdefault(ep.name, []).append(ep)
        for name, eps in sorted(by_name.items()):
            dists = sorted({ep.dist.name if ep.dist else "?" for ep in eps})
            if name in index:
                warnings.warn(
                    f"{self.kind[:-1]} {name!r} from {', '.join(dists)} is shadowed by the "
                    "built-in of the same name",
                    stacklevel=2,
                )
                continue
            if len(dists) > 1:
                origin = " and ".join(dists)
                index[name] = PluginInfo(name, f"CLASH: {origin}", "", False)
                continue
            index[name] = PluginInfo(name, dists[0], eps[0].value, False)
        return index

    def names(self) -> list[str]:
        return sorted(self.infos())

    # -- lookup ----------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The plugin registered under `name`, importing its module on first use."""
        if name in self._loaded:
            return self._loaded[name][0]
        info = self.infos().get(name)
        if info is None:
            raise PluginError(self._unknown_message(name))
        if info.origin.startswith("CLASH: "):
            raise PluginError(
                f"{self.kind[:-1]} {name!r} is claimed by two packages: {info.origin[7:]}"
            )
        if info.builtin:
            importlib.import_module(info.target)
        else:
            self._load_entry_point(name)
        if name not in self._loaded:
            raise PluginError(f"{self.kind[:-1]} {name!r}: {info.target} did not register it")
        return self._loaded[name][0]

    def _load_entry_point(self, name: str) -> None:
        for ep in metadata.entry_points(group=self.group, name=name):
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin: say which one
                raise PluginError(
                    f"{self.kind[:-1]} {name!r} from {dist} failed to import: "
                    f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
                ) from exc
            self._loaded.pop(name, None)  # the decorator may have registered it by module
            self.add(name, obj, dist)
            return

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind[:-1]} {name!r}{hint} (known: {', '.join(known) or 'none'})"


ATTACKS: Registry[Any] = Registry("attacks", ["pe_bench.attacks"], "register_attack")
DEFENSES: Registry[Any] = Registry("defenses", ["pe_bench.defenses"], "register_defense")
ENCODERS: Registry[Any] = Registry("encoders", ["pe_bench.encoders"], "register_encoder")
DATASETS: Registry[Any] = Registry("datasets", [
    "pe_bench.datasets", "pe_bench.datasets_extra", "pe_bench.datasets_folders"], "register_dataset")
REGISTRIES: dict[str, Registry[Any]] = {
    r.kind: r for r in (ATTACKS, DEFENSES, ENCODERS, DATASETS)
}

register_attack = ATTACKS.register
register_defense = DEFENSES.register
register_encoder = ENCODERS.register
register_dataset = DATASETS.register
