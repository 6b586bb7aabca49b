"""Old import paths of moved modules, kept working for one minor version.

Modules that moved into pe_bench's subpackages (and the two 0.1 paths the plugin-base split
removed, `pe_bench.plugins` names and `pe_bench.targets`) still import from their old
dotted names: a finder on `sys.meta_path` answers each old name with a small module that
warns once (`DeprecationWarning` naming the new path) and hands every attribute over from its
new home. They go in 0.2. The old name is a view, not the module: patch the new path in tests.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

REMOVED_IN = "0.2"

# old module -> the modules its names now live in (first match wins)
MOVED: dict[str, tuple[str, ...]] = {
    "pe_bench.suite": ("pe_bench.config.suite",),
    "pe_bench.overrides": ("pe_bench.config.overrides",),
    "pe_bench.spec": ("pe_bench.config.spec",),
    "pe_bench.grid": ("pe_bench.config.grid",),
    "pe_bench.registry": ("pe_bench.plugins.registry",),
    "pe_bench.plugin_index": ("pe_bench.plugins.index",),
    "pe_bench.plugin_types": ("pe_bench.plugins.types",),
    "pe_bench.engine": ("pe_bench.engines.base", "pe_bench.engines.named"),
    "pe_bench.engine_ray": ("pe_bench.engines.ray_tune",),
    "pe_bench.engine_inprocess": ("pe_bench.engines.in_process",),
    "pe_bench.trial": ("pe_bench.engines.trial",),
    "pe_bench.sink": ("pe_bench.engines.sink",),
    "pe_bench.pipeline": ("pe_bench.worker.pipeline",),
    "pe_bench.train": ("pe_bench.worker.train",),
    "pe_bench.augment": ("pe_bench.worker.augment",),
    "pe_bench.evaluate": ("pe_bench.worker.evaluate",),
    "pe_bench.defend": ("pe_bench.worker.defend",),
    "pe_bench.cached_training": ("pe_bench.worker.cached_training",),
    "pe_bench.stages": ("pe_bench.worker.cached_training",),
    "pe_bench.cache": ("pe_bench.worker.cache",),
    "pe_bench.data": ("pe_bench.datasets.loading",),
    "pe_bench.metrics": ("pe_bench.store.metrics",),
    "pe_bench.schema": ("pe_bench.store.schema",),
    "pe_bench.results": ("pe_bench.store.results",),
    "pe_bench.detection": ("pe_bench.store.detection",),
    "pe_bench.leaderboard": ("pe_bench.report.leaderboard", "pe_bench.report.lines"),
    "pe_bench.columns": ("pe_bench.report.columns",),
    "pe_bench.column_kinds": ("pe_bench.report.column_kinds",),
    "pe_bench.pairing": ("pe_bench.report.pairing", "pe_bench.report.lines"),
    "pe_bench.stats": ("pe_bench.report.stats",),
    "pe_bench.per_seed": ("pe_bench.report.per_seed",),
    "pe_bench.defense_pairs": ("pe_bench.report.defense_pairs",),
    "pe_bench.text_table": ("pe_bench.report.text_table",),
    "pe_bench.publish": ("pe_bench.report.publish",),
    "pe_bench.plot": ("pe_bench.report.plot.figure", "pe_bench.report.plot.points"),
    "pe_bench.plot_draw": ("pe_bench.report.plot.draw",),
    "pe_bench.plot_panels": ("pe_bench.report.plot.panels",),
    "pe_bench.targets": ("pe_bench.attacks.targets",),
    "pe_bench.captions": ("pe_bench.plugins.captions",),
    "pe_bench.encoders.captions": ("pe_bench.plugins.captions",),
}

# names the 0.1 module `pe_bench.plugins` held (now a package of the plugin machinery)
OLD_PLUGINS_NAMES: dict[str, str] = {
    "PluginParams": "pe_bench.plugins.types", "Plugin": "pe_bench.plugins.types",
    "Task": "pe_bench.plugins.types", "TargetPair": "pe_bench.attacks.base",
    "PoisonSet": "pe_bench.attacks.base", "AttackContext": "pe_bench.attacks.base",
    "Attack": "pe_bench.attacks.base", "PretrainData": "pe_bench.defenses.base",
    "RepairContext": "pe_bench.defenses.base", "Defense": "pe_bench.defenses.base",
}


def warn(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} is deprecated and goes in pe-bench {REMOVED_IN}: import {new} instead",
                  DeprecationWarning, stacklevel=stacklevel)


def old_plugins_name(name: str) -> Any:
    """An attribute of the 0.1 `pe_bench.plugins` module, from where it lives now."""
    home = OLD_PLUGINS_NAMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pe_bench.plugins' has no attribute {name!r}")
    warn(f"pe_bench.plugins.{name}", f"{home}.{name}", stacklevel=4)
    return getattr(importlib.import_module(home), name)


def _forwarding(old: str, homes: Sequence[str]) -> types.ModuleType:
    module = types.ModuleType(old, f"Deprecated: moved to {', '.join(homes)}.")

    def __getattr__(name: str) -> Any:
        for home in homes:
            target = importlib.import_module(home)
            if hasattr(target, name):
                return getattr(target, name)
        raise AttributeError(f"module {old!r} (moved to {', '.join(homes)}) has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({n for home in homes for n in dir(importlib.import_module(home))})

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    return module


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        homes = MOVED[spec.name]
        warn(spec.name, " or ".join(homes), stacklevel=7)
        return _forwarding(spec.name, homes)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module forwards every attribute."""


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader())


def install() -> None:
    """Answer the old paths (once per interpreter)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
