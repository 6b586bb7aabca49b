"""The suite example in the README is a valid suite (docs that drift fail here)."""

from __future__ import annotations

import re
from pathlib import Path

from pe_bench.api import validate_suite

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_suite_example_validates(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(name: example.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README lost its suite example"
    path = tmp_path / "example.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    plan = validate_suite(path)
    assert len(plan.grid.trials) == 3 * 3
    assert [e.reason for e in plan.grid.excluded] == ["not needed here"] * 3
