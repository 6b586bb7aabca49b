"""The ASR-vs-PA figure: files written, valid SVG, one point per eligible leaderboard line.

Rows are synthetic (`make_store`, shared with test_publish.py): no Ray, no training.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pe_bench.cli import main
from pe_bench.plot import Point, figure, points, short_params
from pe_bench.results import append, build_row, latest_ok, scan
from pe_bench.spec import EvalSpec, PluginRef, PretrainSpec, TaskSpec, TrainSpec, TrialSpec

PROV = {"pe_bench_version": "0.1.0", "torch_version": "2.14.1", "ray_version": "2.60.0",
        "python_version": "3.11.9", "git_commit": "abc1234"}
ATTACK = {"selection": "random", "poison_rate": 0.05}
# (attack, attack params, defense, defense params) of the main suite's cells
CELLS = [("none", {}, "none", {}),
         ("poisoned-encoder", ATTACK, "none", {}),
         ("poisoned-encoder", ATTACK, "prune", {"threshold": 0.5}),
         ("poisoned-encoder", ATTACK, "prune", {"threshold": 0.9}),
         ("duplicate", ATTACK, "none", {}),
         ("duplicate", ATTACK, "prune", {"threshold": 0.5})]
# the plot's points: every attacked cell of `digits` plus of the two-task `mix` setting
ELIGIBLE = 2 * sum(attack != "none" for attack, *_ in CELLS)


def trial(suite: str, dataset: str, tasks: list[str], seed: int, cell: tuple) -> TrialSpec:
    attack, attack_params, defense, defense_params = cell
    ds = PluginRef(name="digits")
    return TrialSpec(suite=suite, dataset=dataset, seed=seed, pretrain=PretrainSpec(dataset=ds),
                     tasks=tuple(TaskSpec(name=t, dataset=ds) for t in tasks),
                     encoder=PluginRef(name="simclr", params={"backbone": "small-cnn"}),
                     attack=PluginRef(name=attack, params=attack_params),
                     defense=PluginRef(name=defense, params=defense_params),
                     train=TrainSpec(), evaluation=EvalSpec())


def task_metrics(name: str, rng: random.Random, attacked: bool, strength: float) -> dict[str, Any]:
    hits = [attacked and rng.random() < strength for _ in range(4)]
    targets = [{"index": i, "true_class": 0, "target_class": 1, "hit": h, "hit_clean": rng.random() < 0.1,
                "p": 0.7 if h else 0.2, "p_clean": 0.15, "rank": 1 if h else 3, "rank_clean": 4}
               for i, h in enumerate(hits)] if attacked else []
    n = len(targets)
    return {"task": name, "n_classes": 10, "n_test": 100, "ca": 0.9 + rng.uniform(-0.02, 0.02),
            "pa": 0.88 - 0.1 * (1 - strength) + rng.uniform(-0.02, 0.02), "n_targets": n,
            "successes": sum(hits), "asr": sum(hits) / n if n else None, "baseline_asr": 0.0 if n else None,
            "p_target": sum(t["p"] for t in targets) / n if n else None,
            "p_target_clean": 0.15 if n else None, "targets": targets}


def metrics(tasks: list[str], seed: int, cell: tuple) -> dict[str, Any]:
    """Plausible numbers: a stronger defense (higher threshold) lowers ASR and costs PA."""
    attacked = cell[0] != "none"
    strength = 1.0 - cell[3].get("threshold", 0.0) * 0.8
    rng = random.Random(f"{seed}{cell}")
    per_task = [task_metrics(t, rng, attacked, strength) for t in tasks]
    n = sum(t["n_targets"] for t in per_task)
    hits = sum(t["successes"] for t in per_task)
    pooled = {k: sum(t[k] for t in per_task) / len(per_task) for k in ("ca", "pa")}
    return {**pooled, "n_targets": n, "successes": hits, "asr": hits / n if n else None,
            "baseline_asr": 0.0 if n else None, "p_target": per_task[0]["p_target"],
            "p_target_clean": per_task[0]["p_target_clean"], "n_pretrain": 512,
            "n_poisons": 26 if attacked else 0, "n_removed": 3, "cache_hits": 0, "tasks": per_task,
            "timings": {"data": 0.1}, "encoder_info": {"device": "cpu", "images_per_second": 100.0}}


def make_store(store: Path, suite: str = "unit", cells: list[tuple] = CELLS, seeds: int = 3,
               run_id: str = "run1") -> Path:
    """A small store: `digits` (one task) and `mix` (two tasks, so an `all` view) x cells x
    seeds, plus one error row."""
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for dataset, tasks in (("digits", ["digits"]), ("mix", ["digits", "digits-16"])):
        for cell in cells:
            for seed in range(seeds):
                spec = trial(suite, dataset, tasks, seed, cell)
                append(store, build_row(spec, run_id, PROV, started, metrics(tasks, seed, cell)))
    broken = trial(suite, "digits", ["digits"], 99, cells[-1])
    append(store, build_row(broken, run_id, PROV, started - timedelta(hours=1), None, "boom"))
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def plotted(store: Path) -> tuple[list[Point], list[str]]:
    """Computed once: the leaderboard's bootstrap makes each aggregation take seconds."""
    return points(latest_ok(scan(store)))


def test_points_are_the_attacked_cells_in_their_all_or_only_task_view(plotted: tuple) -> None:
    pts, skipped = plotted
    assert len(pts) == ELIGIBLE and skipped == []
    assert {p.line.task for p in pts} == {"digits", "all"}
    assert sum(p.reference for p in pts) == 4  # undefended: 2 attacks x 2 dataset settings
    assert {p.setting for p in pts} == {"no defense", "prune (threshold=0.5)", "prune (threshold=0.9)"}
    assert all(p.group.startswith(("digits/", "mix/")) for p in pts)  # two setups: prefixed
    for p in pts:  # the error bars are the std over seeds
        assert p.line.seeds == 3 and p.asr == p.line.stats["asr"] and p.pa[1] >= 0


def test_one_errorbar_per_eligible_line(plotted: tuple) -> None:
    fig = figure(plotted[0], "unit")
    ax = fig.axes[0]
    assert len(ax.containers) == ELIGIBLE  # one ErrorbarContainer per point
    assert len(fig.legends[0].get_texts()) == ELIGIBLE
    assert ax.get_xlabel().startswith("PA") and ax.get_ylabel().startswith("ASR")


def test_cli_writes_png_and_svg(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "--store", str(store), "--suite", "unit", "--out", str(tmp_path / "fig" / "f")]) == 0
    assert f"{ELIGIBLE} points" in capsys.readouterr().out
    png, svg = tmp_path / "fig" / "f.png", tmp_path / "fig" / "f.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "unit: attack success vs accuracy" in svg.read_text(encoding="utf-8")  # text kept as a comment
    assert main(["plot", "--store", str(tmp_path / "empty"), "--out", str(tmp_path / "g")]) == 2


def test_a_line_without_asr_is_skipped_with_a_note(tmp_path: Path) -> None:
    rows = latest_ok(scan(make_store(tmp_path, seeds=1)))
    for row in rows:  # a duplicate cell that measured no target pairs
        if row["attack"] == "duplicate" and row["defense"] == "prune" and row["dataset"] == "digits":
            row["asr"] = None
            row["tasks"] = [{**t, "asr": None} for t in row["tasks"]]
    pts, skipped = points(rows)
    assert len(pts) == ELIGIBLE - 1
    assert skipped == ["digits/simclr duplicate: prune (threshold=0.5): no asr, not plotted"]


def test_short_params_fit_a_legend() -> None:
    assert short_params('{"b": 0.25, "a": "x"}') == "a=x, b=0.25"
    assert short_params(None) == ""
    assert len(short_params('{"a_very_long_name": "with a very long value indeed"}')) == 32
