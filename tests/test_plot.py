"""The ASR-vs-PA figure: files written, valid SVG, one point per eligible leaderboard line.

Rows are synthetic (tests/rows.py `make_store`, shared with test_publish.py): no Ray, no training.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pe_bench.cli import main
from pe_bench.plot import Point, figure, points, short_params
from pe_bench.results import latest_ok, scan
from tests.rows import CELLS, make_store

# the plot's points: every attacked cell of `digits` plus of the two-task `mix` setting
ELIGIBLE = 2 * sum(attack != "none" for attack, *_ in CELLS)


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


def test_every_point_shows_its_paired_clean_twin_baseline(plotted: tuple) -> None:
    """The baseline is the twins' (CA, clean ASR) on the same targets, drawn as a hollow marker
    joined to the point, so easy targets do not read as an attack effect."""
    pts = plotted[0]
    for p in pts:
        assert p.twin == (p.line.stats["ca"][0], p.line.stats["baseline_asr"][0])
    ax = figure(pts, "unit").axes[0]
    hollow = {(float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in ax.lines
              if ln.get_gid() == "clean-twin"}
    assert hollow == {p.twin for p in pts}
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == len(pts)
    for p in pts:  # each point's connector runs from its twin to the point
        assert any(tuple(ln.get_xdata()) == (p.twin[0], p.pa[0]) and
                   tuple(ln.get_ydata()) == (p.twin[1], p.asr[0]) for ln in dashed)
