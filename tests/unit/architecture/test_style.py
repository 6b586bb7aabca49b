"""CONTRIBUTING's size rules, checked: modules of one concept <= 300 lines, functions <= 40
lines (from `def` to the last line, docstring included), over every module of pe_bench and the
perf/ and ops/ scripts."""

from __future__ import annotations

import ast

from tests.import_graph import ROOT, module_files

MAX_MODULE, MAX_FUNCTION = 300, 40


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    scripts = {str(p.relative_to(ROOT)): p for folder in ("perf", "ops") for p in sorted((ROOT / folder).glob("*.py"))}
    for module, path in {**module_files(), **scripts}.items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE:
            too_long.append(f"{module}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION:
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert too_long == []
