"""0.1's import paths keep working for one minor version, each with a DeprecationWarning naming
the new path: every moved module's old name, the old `pe_bench.plugins` names, and a plugin
package written against them, installed and run end to end."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pe_bench import _moved
from tests.helpers import tiny_suite, write_dist_info

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "old_paths_plugin"
SUITE = tiny_suite("old-paths", "[{name: duplicate, params: {poison_rate: 0.05, targets_per_task: 2}}]",
                   "[{name: old-random-drop, params: {fraction: 0.2}}]")

@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_every_old_module_path_imports_with_a_warning_naming_the_new_one(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*import {_moved.MOVED[old][0]}"):
        module = importlib.import_module(old)
    home = importlib.import_module(_moved.MOVED[old][0])
    public = [n for n in vars(home) if not n.startswith("_")]
    assert public and all(getattr(module, n) is getattr(home, n) for n in public)


def test_old_plugins_names_resolve_to_the_same_classes() -> None:
    from pe_bench.attacks.base import Attack
    from pe_bench.defenses.base import Defense

    with pytest.warns(DeprecationWarning, match="pe_bench.defenses.base.Defense"):
        from pe_bench.plugins import Defense as old_defense
    with pytest.warns(DeprecationWarning, match="pe_bench.attacks.base.Attack"):
        from pe_bench.plugins import Attack as old_attack
    assert (old_defense, old_attack) == (Defense, Attack)
    with pytest.raises(ImportError, match="cannot import name 'Nothing'"):
        from pe_bench.plugins import Nothing  # noqa: F401


def test_a_module_that_never_existed_is_still_an_import_error() -> None:
    with warnings.catch_warnings(), pytest.raises(ModuleNotFoundError):
        importlib.import_module("pe_bench.no_such_module")


def test_a_plugin_package_written_against_the_old_paths_installs_and_runs(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_dist_info(site, "pe-bench-old-paths", "0.0.1", "pe_bench.defenses",
                    {"old-random-drop": "pe_bench_old_paths:OldRandomDrop"})
    (site / "pe_bench_old_paths.pth").write_text(f"{FIXTURE}\n", encoding="utf-8")
    suite, store = tmp_path / "old.yaml", tmp_path / "store"
    suite.write_text(SUITE, encoding="utf-8")
    run = ("import site, sys; site.addsitedir(sys.argv[1]); from pe_bench.cli import main; "
           "sys.exit(main(['run', sys.argv[2], '--in-process', '--store', sys.argv[3], '--no-leaderboard']))")
    done = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c", run, str(site),
                           str(suite), str(store)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for old, new in [("pe_bench.plugins.Defense", "pe_bench.defenses.base.Defense"),
                     ("pe_bench.targets", "pe_bench.attacks.targets"),
                     ("pe_bench.spec", "pe_bench.config.spec")]:
        assert f"{old} is deprecated and goes in pe-bench {_moved.REMOVED_IN}: import {new}" in done.stderr
    rows = [r for f in sorted(store.rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert [(r["defense"], r["status"]) for r in rows] == [("old-random-drop", "ok")]
