"""Who claims a plugin name: pe-bench itself, an installed distribution, or an unpackaged module
(with a hash of its source), and how an object that is no plugin class is named in an error.
The registry records one claim per name and refuses a second."""

from __future__ import annotations

import functools
import hashlib
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pe_bench import __version__
from pe_bench.plugins.index import BUILTIN_ORIGIN, PluginInfo


@dataclass(frozen=True)
class Claim:
    """A registered object, who registered it (`origin`) and the code behind it (`provenance`:
    "<distribution> <version>", or "module <name> sha256:<hash>")."""

    obj: Any
    origin: str
    provenance: str


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _source_hash(module: str) -> str:
    source = getattr(sys.modules.get(module), "__file__", None)
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16] if source else "unknown"
    return f"sha256:{digest}"


def claim_of(obj: Any) -> Claim:
    """Who registers `obj`: pe-bench, an installed distribution, or an unpackaged module."""
    module = getattr(obj, "__module__", "") or ""
    top = module.split(".")[0]
    if top == "pe_bench":
        return Claim(obj, BUILTIN_ORIGIN, f"{BUILTIN_ORIGIN} {__version__}")
    dists = _distributions().get(top)
    if dists:
        return Claim(obj, dists[0], f"{dists[0]} {metadata.version(dists[0])}")
    return Claim(obj, f"module {module}", f"module {module} {_source_hash(module)}")


def describe(obj: Any) -> str:
    """What an object is, for a one-line error: a function, or a class and its pe-bench base."""
    if not isinstance(obj, type):
        return f"a {type(obj).__name__} ({getattr(obj, '__qualname__', obj)!s})"
    base = next((c for c in obj.__mro__[1:] if c.__module__.startswith("pe_bench.")), None)
    return f"class {obj.__qualname__}" + (f" (a {base.__qualname__})" if base else "")


def same_claimant(info: PluginInfo, obj: Any) -> bool:
    """Whether `obj` is the plugin the index knows under its name: the built-in's own module,
    or a module of the entry point's top-level package."""
    module = str(getattr(obj, "__module__", ""))
    if info.builtin:
        return module == info.target
    return bool(info.target) and module.split(".")[0] == info.target.split(".")[0].split(":")[0]
