"""The import contracts of docs/architecture.md, checked on the import graph read from source
(tests/import_graph.py; every module of pe_bench, the package-dir mapped plugin folders
included). Each contract has a test that builds a graph breaking it, so none can pass vacuously."""

from __future__ import annotations

import graphlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

import pytest

from tests.import_graph import Edge, edges

# bottom to top: a module imports only from its own layer or a lower one. Packages on one line
# are independent of each other (the plugin kinds; the engines and the report).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("pe_bench.errors", "pe_bench._moved"),
    ("pe_bench.plugins",),
    ("pe_bench.config",),
    ("pe_bench.store",),
    ("pe_bench.datasets", "pe_bench.attacks", "pe_bench.defenses", "pe_bench.encoders"),
    ("pe_bench.worker",),
    ("pe_bench.engines", "pe_bench.report", "pe_bench.testing"),
    ("pe_bench.progress",),
    ("pe_bench.api",),
    ("pe_bench.commands",),
    ("pe_bench.cli",),
)
# may never import torch or Ray, not even through another module, at import time
TORCH_FREE = ("pe_bench.config", "pe_bench.plugins.index", "pe_bench.plugins.registry",
              "pe_bench.plugins.types", "pe_bench.plugins.claims", "pe_bench.plugins.describe",
              "pe_bench.store", "pe_bench.report", "pe_bench.api", "pe_bench.commands", "pe_bench.cli")
HEAVY = ("torch", "torchvision", "ray")
RAY_ONLY_IN = "pe_bench.engines.ray_tune"
# the report reads stored rows only: what it needs of the plugins or the suite is in the rows,
# so rendering a board never resolves a plugin or parses a suite
REPORT_READS_ONLY = ("pe_bench.errors", "pe_bench.store", "pe_bench.report")
# the package's own __init__ (version, the deprecation finder) sits below every layer
ROOT_MODULE = "pe_bench"


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, the package it belongs to) or None for the package root."""
    for level, packages in enumerate(LAYERS):
        for package in packages:
            if _within(module, package):
                return level, package
    return None


def layer_violations(graph: Iterable[Edge]) -> list[str]:
    found = []
    for e in graph:
        if not e.target.startswith(ROOT_MODULE) or ROOT_MODULE in (e.source, e.target):
            continue
        src, dst = layer_of(e.source), layer_of(e.target)
        if src is None or dst is None:
            found.append(f"{e.source}:{e.line} -> {e.target}: module outside every layer")
        elif dst[0] > src[0] or (dst[0] == src[0] and dst[1] != src[1]):
            found.append(f"{e.source}:{e.line} -> {e.target}")
    return found


def cycles(graph: Iterable[Edge]) -> list[str]:
    deps: dict[str, set[str]] = defaultdict(set)
    for e in graph:
        if e.target.startswith(ROOT_MODULE):
            deps[e.source].add(e.target)
    try:
        tuple(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as exc:
        return [" -> ".join(exc.args[1])]
    return []


def heavy_reach(graph: Sequence[Edge], roots: Sequence[str]) -> list[str]:
    """Chains by which a TORCH_FREE module reaches torch or Ray through import-time imports."""
    eager: dict[str, set[str]] = defaultdict(set)
    for e in graph:
        if not (e.type_only or e.lazy):
            eager[e.source].add(e.target)
    found = []
    for start in sorted({e.source for e in graph if any(_within(e.source, r) for r in roots)}):
        seen, stack = {start: [start]}, [start]
        while stack:
            here = stack.pop()
            for nxt in eager[here]:
                if nxt in seen:
                    continue
                seen[nxt] = [*seen[here], nxt]
                if nxt in HEAVY:
                    found.append(" -> ".join(seen[nxt]))
                else:
                    stack.append(nxt)
    return found


def report_reaches_beyond_rows(graph: Iterable[Edge]) -> list[str]:
    return [f"{e.source}:{e.line} -> {e.target}" for e in graph
            if _within(e.source, "pe_bench.report") and e.target.startswith(ROOT_MODULE)
            and not any(_within(e.target, ok) for ok in REPORT_READS_ONLY)]


def ray_importers(graph: Iterable[Edge]) -> set[str]:
    return {e.source for e in graph if e.target == "ray"}


@pytest.fixture(scope="module")
def graph() -> list[Edge]:
    return edges()


def test_layers_in_order(graph: list[Edge]) -> None:
    assert layer_violations(graph) == []


def test_zero_import_cycles_type_only_and_lazy_imports_included(graph: list[Edge]) -> None:
    assert cycles(graph) == []


def test_control_plane_never_imports_torch_or_ray(graph: list[Edge]) -> None:
    assert heavy_reach(graph, TORCH_FREE) == []


def test_the_report_reads_rows_not_plugins_or_suites(graph: list[Edge]) -> None:
    assert report_reaches_beyond_rows(graph) == []


def test_only_the_ray_engine_imports_ray(graph: list[Edge]) -> None:
    assert ray_importers(graph) == {RAY_ONLY_IN}


def test_the_graph_sees_the_mapped_plugin_folders(graph: list[Edge]) -> None:
    sources = {e.source for e in graph}
    for kind in ("attacks", "defenses", "encoders"):
        assert f"pe_bench.{kind}.base" in sources


def _edge(source: str, target: str, **kw: bool) -> Edge:
    return Edge(source, target, 1, kw.get("type_only", False), kw.get("lazy", False))


def test_each_contract_catches_its_breach() -> None:
    # a worker importing an engine, a plugin importing the worker, one kind importing another
    for src, dst in [("pe_bench.worker.train", "pe_bench.engines.trial"),
                     ("pe_bench.attacks.ctrl", "pe_bench.worker.augment"),
                     ("pe_bench.defenses.roclip", "pe_bench.encoders.captions"),
                     ("pe_bench.report.columns", "pe_bench.engines.base")]:
        assert layer_violations([_edge(src, dst)]), (src, dst)
    assert cycles([_edge("pe_bench.report.a", "pe_bench.report.b"),
                   _edge("pe_bench.report.b", "pe_bench.report.a", type_only=True)])
    chain = [_edge("pe_bench.report.columns", "pe_bench.store.detection"),
             _edge("pe_bench.store.detection", "torch")]
    assert "pe_bench.report.columns -> pe_bench.store.detection -> torch" in heavy_reach(chain, TORCH_FREE)
    assert heavy_reach([_edge("pe_bench.report.columns", "torch", lazy=True)], TORCH_FREE) == []
    assert ray_importers([_edge("pe_bench.worker.train", "ray", lazy=True)]) == {"pe_bench.worker.train"}
    assert report_reaches_beyond_rows([_edge("pe_bench.report.columns", "pe_bench.config.grid", lazy=True)])
