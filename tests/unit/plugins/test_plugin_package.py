"""The example third-party defense package, found through its entry point.

Works whether or not the package is pip-installed: a fake `*.dist-info` is written from the
package's own pyproject.toml into a temporary site folder, the way pip would install it, and a
fresh `pe_bench.defenses` registry must find it with the package as origin."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pe_bench.plugins.types import DefenseMeta
from pe_bench.plugins.registry import Registry
from pe_bench.testing import check_defense
from tests.helpers import write_dist_info

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pe-bench-defense-example"


def fake_install(site: Path) -> tuple[str, dict[str, str]]:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    eps = meta["entry-points"]["pe_bench.defenses"]
    write_dist_info(site, meta["name"], meta["version"], "pe_bench.defenses", eps)
    (site / "pe_bench_defense_example.pth").write_text(str(EXAMPLE / "src") + "\n", encoding="utf-8")
    return meta["name"], eps


def test_example_defense_is_found_through_its_entry_point(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dist, eps = fake_install(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    importlib.invalidate_caches()
    registry = Registry("defenses", ["pe_bench.defenses"], "register_defense", DefenseMeta,
                        "pe_bench.defenses.base:Defense")
    (name,) = eps
    assert registry.infos()[name].origin == dist and not registry.infos()[name].builtin
    cls = registry.get(name)
    assert cls.__module__ == "pe_bench_defense_example"
    check_defense(cls)


def test_listed_by_the_cli_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """`pe-bench list defenses` in a new process whose site includes only the fake install."""
    dist, eps = fake_install(tmp_path)
    env_path = f"{tmp_path}:{EXAMPLE / 'src'}"
    out = subprocess.run([sys.executable, "-c", "import sys; sys.path[:0] = sys.argv[1].split(':');"
                          "from pe_bench.cli import main; main(['list', 'defenses'])", env_path],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    (name,) = eps
    assert any(name in line and dist in line for line in out.splitlines())
