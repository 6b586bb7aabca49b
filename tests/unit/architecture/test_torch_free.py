"""The control plane never imports torch or Ray: `pe-bench list`, `validate` (every suite in
suites/, which together name every built-in plugin), `leaderboard`, `plot` and `publish` run in
a process where importing either raises ImportError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pe_bench.cli import main
from tests.helpers import placeholder_data, tiny_suite

REPO = Path(__file__).resolve().parents[3]
SUITES = sorted((REPO / "suites").glob("*.yaml"))
# installs a meta-path finder that refuses torch and Ray, then runs the CLI once per argv
BLOCKED = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "ray"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Refuse())
from pe_bench.cli import main
for argv in sys.argv[1:]:
    status = main(argv.split("\\x1f"))
    if status:
        sys.exit(status)
"""
TINY = tiny_suite("tiny", "[none, {name: duplicate, params: {poison_rate: 0.05, targets_per_task: 2}}]")


def blocked(*commands: list[str | Path]) -> subprocess.CompletedProcess[str]:
    argv = ["\x1f".join(map(str, command)) for command in commands]
    return subprocess.run([sys.executable, "-c", BLOCKED, *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small store written by a real in-process run (this process may import torch)."""
    root = tmp_path_factory.mktemp("torch-free")
    suite, store = root / "tiny.yaml", root / "store"
    suite.write_text(TINY, encoding="utf-8")
    assert main(["run", str(suite), "--in-process", "--store", str(store), "--no-leaderboard"]) == 0
    return store


def test_the_blocker_blocks() -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCKED.replace("from pe_bench.cli", "import torch #")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode != 0 and "torch is blocked in this test" in proc.stderr


def test_list_and_validate_every_suite(tmp_path: Path) -> None:
    assert len(SUITES) >= 5
    data = placeholder_data(tmp_path / "data")  # validate locates the data (reading none of it)
    proc = blocked(["list"], *(["validate", suite, "--data-dir", data] for suite in SUITES))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "poisoned-encoder" in proc.stdout and "dedup" in proc.stdout
    assert proc.stdout.count("unique pre-training runs") == len(SUITES)


def test_leaderboard_plot_and_publish(store: Path, tmp_path: Path) -> None:
    proc = blocked(["leaderboard", "--store", store], ["leaderboard", "--store", store, "--format", "csv"],
                   ["plot", "--store", store, "--out", tmp_path / "figure"],
                   ["publish", "--store", store, "--out", tmp_path / "site"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pe-bench leaderboard" in proc.stdout and "duplicate" in proc.stdout
    assert (tmp_path / "figure.png").is_file() and (tmp_path / "site" / "index.html").is_file()


def test_attack_defense_and_dataset_modules_import_without_torch() -> None:
    """Validation imports them (params, a defense's hooks), so they must stay torch-free;
    encoders import torch and keep their params in a torch-free module instead."""
    code = BLOCKED.split("from pe_bench.cli")[0] + (
        "import importlib\n"
        "from pe_bench.plugins.registry import REGISTRIES\n"
        "for kind in ('attacks', 'defenses', 'datasets'):\n"
        "    for name, info in REGISTRIES[kind].infos().items():\n"
        "        if info.builtin:\n"
        "            importlib.import_module(info.target)\n"
        "            REGISTRIES[kind].metadata(name)\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
