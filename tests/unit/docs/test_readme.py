"""The suite examples in the README and docs/running.md are valid suites (docs that drift fail here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pe_bench.api import validate_suite

ROOT = Path(__file__).resolve().parents[3]


def _example(doc: str, tmp_path: Path) -> Path:
    block = re.search(r"```yaml\n(name: example.*?)```", (ROOT / doc).read_text(encoding="utf-8"), re.S)
    if block is None:
        pytest.fail(f"{doc} lost its suite example")
    path = tmp_path / "example.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    return path


def test_readme_suite_example_validates(tmp_path: Path) -> None:
    plan = validate_suite(_example("README.md", tmp_path))
    assert len(plan.grid.trials) == 3 * 2 * 3 - 3
    assert [e.reason for e in plan.grid.excluded] == ["nothing to remove"] * 3


def test_running_doc_suite_example_validates(tmp_path: Path) -> None:
    plan = validate_suite(_example("docs/running.md", tmp_path))
    # the setting's own 6 seeds replace the suite's 3: 3 attacks (blend excluded) x 6 seeds
    assert len(plan.grid.trials) == 3 * 6 and {t.seed for t in plan.grid.trials} == set(range(6))
    assert [e.reason for e in plan.grid.excluded] == ["not needed here"] * 6
