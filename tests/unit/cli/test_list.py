"""`pe-bench list`: `--params` prints one plugin's parameters, built-in or installed, without
torch (issue 21, point 6c); the plugin table wraps instead of being cut when stdout is not a
terminal (point 6e)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pe_bench.cli import main
from pe_bench.plugins.registry import ATTACKS, REGISTRIES
from tests.helpers import needs_example_plugin
from tests.unit.architecture.test_torch_free import blocked

REPO = Path(__file__).resolve().parents[3]
BORDERS = "┓┃┩│┘"  # what every line of a rich table ends with


def test_params_of_a_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--params", "duplicate"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "poison_rate" in line)
    assert "float" in row and "0.01" in row and "> 0, <= 1" in row and "total poisons" in row
    assert "attack duplicate (pe-bench" in out


@needs_example_plugin
def test_params_of_an_installed_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--params", "random-drop"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "fraction" in line)
    assert "float" in row and "0.1" in row and ">= 0, < 1" in row
    assert "pe-bench-defense-example" in out


def test_params_of_a_name_of_two_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--params", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "attacks/none or defenses/none" in err
    assert main(["list", "defenses", "--params", "none"]) == 0
    assert main(["list", "--params", "attacks/none"]) == 0
    assert "attack none" in capsys.readouterr().out


def test_params_of_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--params", "ssl-backdor"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'ssl-backdoor'?" in err and "Traceback" not in err


def test_params_need_no_torch() -> None:
    """Every built-in's Params imports without torch (encoders name a torch-free module)."""
    names = [f"{kind}/{name}" for kind, registry in REGISTRIES.items()
             for name, info in registry.infos().items() if info.builtin]
    proc = blocked(*(["list", "--params", name] for name in names))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SimCLRParams" in proc.stdout and "TargetedParams" in proc.stdout


def _listed(columns: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update({"COLUMNS": columns} if columns else {})
    proc = subprocess.run([sys.executable, "-m", "pe_bench.cli", "list"], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("columns", [None, "90"], ids=["piped", "narrow"])
def test_the_table_wraps_instead_of_being_cut(columns: str | None) -> None:
    lines = _listed(columns)
    assert lines and all(line[-1] in BORDERS for line in lines), [ln for ln in lines if ln[-1] not in BORDERS]
    assert len({len(line) for line in lines}) == 1  # one rectangle
    text = "\n".join(lines)
    assert "…" not in text
    for name in ATTACKS.names():  # names are never broken
        assert f" {name} " in text, name
    if columns is None:  # piped: 120 columns, so each metadata value fits whole
        assert "optimizer_defaults:" in text and "stage: encoder" in text
