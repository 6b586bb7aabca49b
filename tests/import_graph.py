"""pe_bench's import graph read from source (`ast`), the package-dir mapped folders included:
what `tests/unit/test_architecture.py` checks the import contracts on. import-linter cannot see
`attacks/`, `defenses/` and `encoders/` as `pe_bench.*` (they are mapped in by pyproject's
package-dir), so the graph is built here from the same mapping."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# pyproject's [tool.setuptools.package-dir]: folder -> package
FOLDERS = {"benchmark": "pe_bench", "attacks": "pe_bench.attacks", "defenses": "pe_bench.defenses",
           "encoders": "pe_bench.encoders"}


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` (a pe_bench module, or a third-party top-level name) at `line`;
    `type_only`: under `if TYPE_CHECKING`; `lazy`: inside a function (runs only when called)."""

    source: str
    target: str
    line: int
    type_only: bool
    lazy: bool


def module_files() -> dict[str, Path]:
    """Every pe_bench module and the file it comes from."""
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts[:-1], *(() if parts[-1] == "__init__" else parts[-1:])))
            found.setdefault(name, path)  # benchmark/attacks does not exist: no clash
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, type_only: bool, lazy: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, type_only, lazy
        inner_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        inner_type = type_only or (isinstance(child, ast.If) and _is_type_checking(child.test))
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.body:
                yield sub, True, lazy
                yield from _walk(sub, True, inner_lazy)
            for sub in child.orelse:
                yield sub, type_only, lazy
                yield from _walk(sub, type_only, inner_lazy)
            continue
        yield from _walk(child, inner_type, inner_lazy)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _targets(node: ast.AST, module: str, path: Path, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = _package_of(module, path)
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".")
    subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    return subs if len(subs) == len(node.names) else [base, *subs]


def _resolve(target: str, known: set[str]) -> str:
    """The pe_bench module a dotted import name lands on (its longest known prefix), or the
    third-party top-level name."""
    if not target.startswith("pe_bench"):
        return target.partition(".")[0]
    while target not in known and "." in target:
        target = target.rpartition(".")[0]
    return target


def edges() -> list[Edge]:
    files = module_files()
    known = set(files)
    found = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, type_only, lazy in _walk(tree, False, False):
            for target in _targets(node, module, path, known):
                resolved = _resolve(target, known)
                if resolved != module:
                    found.append(Edge(module, resolved, getattr(node, "lineno", 0), type_only, lazy))
    return found
