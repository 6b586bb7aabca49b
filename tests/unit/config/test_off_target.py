"""Defenses declare the attack families they were designed against; cells outside them run and
are labelled off-target (grid, validate, applicability table, leaderboard column)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

from pe_bench.cli import main
from pe_bench.report.columns import BY_KEY
from pe_bench.config.grid import applicability, off_target
from pe_bench.report.leaderboard import from_store, to_csv
from pe_bench.plugins.registry import DEFENSES
from tests.rows import ATTACK, make_store

REPO = Path(__file__).resolve().parents[3]
DESIGNED = {"dedup": ("targeted",), "early-stop": ("targeted",), "partition-ensemble": ("targeted",),
            "conservative-crop": ("targeted", "backdoor"), "clean-finetune": ("targeted", "backdoor"),
            "knn-density": ("backdoor",), "patchsearch": ("backdoor",), "decree": ("backdoor",),
            "mudjacking": ("backdoor",), "roclip": ("targeted", "backdoor"), "none": ()}


@pytest.mark.parametrize("defense", sorted(DESIGNED))
def test_every_builtin_declares_its_families(defense: str) -> None:
    assert set(DEFENSES.metadata(defense).families) == set(DESIGNED[defense])
    assert set(DEFENSES.get(defense).families) == set(DESIGNED[defense])


def test_off_target_names_the_defense_and_the_attacks_family() -> None:
    why = off_target("poisoned-encoder", "decree")
    assert why is not None and "decree" in why and "backdoor" in why and "poisoned-encoder is targeted" in why
    assert off_target("ssl-backdoor", "decree") is None
    assert off_target("ssl-backdoor", "dedup") is not None
    assert off_target("poisoned-encoder", "dedup") is None
    assert off_target("poisoned-encoder", "clean-finetune") is None  # designed for both
    assert off_target("ssl-backdoor", "none") is None  # no defense
    assert off_target("none", "decree") is None  # no attack
    assert off_target("carlini-terzis", "decree", "backdoor") is None  # a variant's own family


def test_validate_lists_off_target_cells_that_still_run(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "suites" / "smoke.yaml").read_text(encoding="utf-8"))
    data["defenses"] = ["none", "decree"]
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    seeds = len(data["seeds"])
    assert f"suite smoke: {3 * 2 * seeds} trials" in out  # nothing excluded for being off-target
    reason = off_target("poisoned-encoder", "decree")
    assert f"  off-target (run, labelled): {seeds} trials (1 cell): {reason}" in out
    assert "digits × simclr × poisoned-encoder × decree" in out
    assert "× none × decree" not in out and "excluded:" not in out


def test_applicability_table_marks_off_target_cells_with_their_reason() -> None:
    table = applicability()
    head = next(ln for ln in table.splitlines() if ln.startswith("| attack |"))
    defenses = [c.strip() for c in head.strip("|").split("|")][5:]
    row = next(ln for ln in table.splitlines()
               if ln.startswith("| poisoned-encoder |") and "| simclr |" in ln)
    cells = dict(zip(defenses, [c.strip() for c in row.strip("|").split("|")][5:], strict=True))
    assert cells["dedup"] == "yes" and cells["none"] == "yes"
    mark = cells["decree"]
    assert mark.startswith("off-target (")
    note = mark.removeprefix("off-target (").rstrip(")")
    assert f"\n{note}. {off_target('poisoned-encoder', 'decree')}" in table


def test_leaderboard_designed_for_column(tmp_path: Path) -> None:
    cells = [("none", {}, "none", {}), ("poisoned-encoder", ATTACK, "none", {}),
             ("poisoned-encoder", ATTACK, "dedup", {}), ("poisoned-encoder", ATTACK, "decree", {}),
             ("poisoned-encoder", ATTACK, "prune", {"threshold": 0.5}),
             ("ssl-backdoor", {}, "decree", {}), ("ssl-backdoor", {}, "early-stop", {})]
    lines = [ln for ln in from_store(make_store(tmp_path, cells=cells)) if ln.dataset == "digits"]
    column = BY_KEY["designed_for"]
    got = {(ln.attack, ln.defense): column.cell(ln) for ln in lines}
    assert got == {("none", "none"): "-", ("poisoned-encoder", "none"): "-",
                   ("poisoned-encoder", "dedup"): "yes", ("poisoned-encoder", "decree"): "off-target",
                   ("poisoned-encoder", "prune"): "?",  # not installed here
                   ("ssl-backdoor", "decree"): "yes", ("ssl-backdoor", "early-stop"): "off-target"}
    shown = list(csv.DictReader(io.StringIO(to_csv(lines))))
    assert sorted(r["designed for"] for r in shown) == sorted(got.values())
    assert {column.record(ln)["designed_for"][1] for ln in lines} == set(got.values())
    assert "off-target" in column.note
