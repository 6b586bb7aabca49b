"""mypy over the installed package `pe_bench`, strict for the engine (benchmark/).

The source folders are not named like the package (`package-dir` maps pe_bench=benchmark,
pe_bench.attacks=attacks, ...), which mypy cannot follow, so the check runs on a mirror of
symlinks named as the package is imported. Settings are pyproject.toml's [tool.mypy]; the
cache lives in the repository's .mypy_cache, so a second run takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SUBPACKAGES = ("attacks", "defenses", "encoders")


def _mirror(into: Path) -> Path:
    package = into / "pe_bench"
    package.mkdir()
    for entry in (ROOT / "benchmark").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name in SUBPACKAGES:
        (package / name).symlink_to(ROOT / name)
    return into


def test_mypy_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is installed by the [test] extra")
    monkeypatch.chdir(_mirror(tmp_path))
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "pe_bench"])
    assert status == 0, out + err
