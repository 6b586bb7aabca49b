"""The ASR-vs-PA figure: files written, valid SVG, one point per eligible leaderboard line; one
panel per attack setting when a suite has several attack and several defense settings.

Rows are synthetic (tests/rows.py `make_store`, shared with test_publish.py): no Ray, no training.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pe_bench.cli import main
from pe_bench.report.plot.figure import Point, figure, layout, points, short_params
from pe_bench.report.plot.draw import TWIN_LABEL
from pe_bench.report.plot.panels import panel_columns
from pe_bench.config.spec import PluginRef
from pe_bench.store.results import build_row, latest_ok, scan
from pe_bench.store.schema import TrialRow
from tests.rows import CELLS, PROV, make_store, metrics, trial, typed

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
    # two setups that differ in dataset only: prefixed with the dataset, not the encoder too
    assert all(p.group.startswith(("digits ", "mix ")) for p in pts)
    for p in pts:  # the error bars are the std over seeds
        assert p.line.seeds == 3 and p.asr == p.line.stats["asr"] and p.pa[1] >= 0


def test_one_errorbar_per_eligible_line(plotted: tuple) -> None:
    fig = figure(plotted[0], "unit")  # 4 attack settings x 3 defense settings: panels
    assert sum(len(ax.containers) for ax in fig.axes) == ELIGIBLE  # one ErrorbarContainer per point
    assert fig.axes[-1].get_xlabel().startswith("PA") and fig.axes[0].get_ylabel().startswith("ASR")


def test_one_attack_setting_gives_one_panel_with_an_entry_per_point(plotted: tuple) -> None:
    """The single-panel figure (one attack setting of one setup) is kept: one axes, colour =
    attack, one legend entry per point."""
    pts = plotted[0]
    one_attack = [p for p in pts if p.group == pts[0].group]
    one_setup = [p for p in pts if p.reference and p.setup == pts[0].setup]
    for subset in (one_attack, one_setup):
        assert layout(subset) == "single"
        fig = figure(subset, "unit")
        assert len(fig.axes) == 1 and len(fig.axes[0].containers) == len(subset)
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert texts == [f"{p.group}: {p.setting}" for p in subset]
        assert fig.axes[0].get_xlabel().startswith("PA") and fig.axes[0].get_ylabel().startswith("ASR")


def test_several_setups_without_defenses_get_a_panel_each_on_their_own_accuracy_scale(plotted: tuple) -> None:
    """digits near 0.97 and CIFAR-10 near 0.5 on one x axis would sit at its two edges: one
    panel per setup, x not shared, colour = the attack in every panel, one legend."""
    pts = [dataclasses.replace(p, line=dataclasses.replace(p.line, family="backdoor"))
           if p.attack == "duplicate" else p for p in plotted[0] if p.reference]
    assert layout(pts) == "by_setup" and {p.setup for p in pts} == {"digits", "mix"}
    fig = figure(pts, "unit")
    assert [ax.get_title() for ax in fig.axes] == ["digits", "mix"]
    assert not fig.axes[0].get_shared_x_axes().joined(fig.axes[0], fig.axes[1])
    for ax in fig.axes:
        assert len(ax.containers) == sum(p.setup == ax.get_title() for p in pts)
        assert ax.get_xlabel().startswith("PA")
    colours = {ax.get_title(): {c.lines[0].get_color(): c.lines[0].get_gid() for c in ax.containers}
               for ax in fig.axes}
    assert colours["digits"] == colours["mix"]  # the same attack, the same colour
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["duplicate [backdoor]: no defense", "poisoned-encoder: no defense", TWIN_LABEL]
    rims = [h.get_markeredgecolor() for h in fig.legends[0].legend_handles]
    assert rims[:2] == ["crimson", "black"]


def test_panels_one_per_attack_setting_titled_with_its_family(plotted: tuple) -> None:
    pts = [dataclasses.replace(p, line=dataclasses.replace(p.line, family="backdoor"))
           if "duplicate" in p.group else p for p in plotted[0]]
    fig = figure(pts, "unit")
    groups = sorted({p.group for p in pts})
    assert len(groups) == 4 and len(fig.axes) == 4  # an empty slot of the 2x3 grid is removed
    titles = sorted(ax.get_title().replace("\n", " ") for ax in fig.axes)
    assert titles == sorted(f"{g} [{'backdoor' if 'duplicate' in g else 'targeted'}]" for g in groups)
    for ax in fig.axes:  # each panel: its attack setting's star and its points only
        group = next(g for g in groups if ax.get_title().replace("\n", " ").startswith(g + " ["))
        mine = [p for p in pts if p.group == group]
        assert len(ax.containers) == len(mine) and sum(p.reference for p in mine) == 1
        first = fig.axes[0]
        assert ax.get_shared_x_axes().joined(ax, first) and ax.get_shared_y_axes().joined(ax, first)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]  # one shared legend: the defenses
    assert len(fig.legends) == 1
    assert texts == ["no defense", "prune (threshold=0.5)", "prune (threshold=0.9)", TWIN_LABEL]


def test_panel_columns() -> None:
    assert [panel_columns(n) for n in (2, 3, 4, 9, 10, 16)] == [2, 3, 3, 3, 4, 4]


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
    def without_asr(row: TrialRow) -> TrialRow:  # copies without validation: no asr, pairs kept
        assert row.metrics is not None
        tasks = tuple(t.model_copy(update={"asr": None}) for t in row.metrics.tasks)
        metrics = row.metrics.model_copy(update={"asr": None, "tasks": tasks})
        return row.model_copy(update={"metrics": metrics})

    rows = latest_ok(scan(make_store(tmp_path, seeds=1)))
    rows = [without_asr(r) if (r.attack, r.defense, r.dataset) == ("duplicate", "prune", "digits") else r
            for r in rows]  # a duplicate cell that measured no target pairs
    pts, skipped = points(rows)
    assert len(pts) == ELIGIBLE - 1
    assert skipped == ["digits duplicate: prune (threshold=0.5): no asr, not plotted"]


def test_short_params_fit_a_legend() -> None:
    assert short_params('{"b": 0.25, "a": "x"}') == "a=x, b=0.25"
    assert short_params(None) == ""
    assert short_params('{"poison_rate": 0.1, "references": 5}') == "rate=0.1, refs=5"  # the board's names
    assert len(short_params('{"a_very_long_name": "with a very long value indeed"}')) == 44


def test_every_point_shows_its_paired_clean_twin_baseline(plotted: tuple) -> None:
    """The baseline is the twins' (CA, clean ASR) on the same targets, drawn as a hollow marker
    joined to the point, so easy targets do not read as an attack effect."""
    pts = plotted[0]
    for p in pts:
        assert p.twin == (p.line.stats["ca"][0], p.line.stats["baseline_asr"][0])
    lines = [ln for ax in figure(pts, "unit").axes for ln in ax.lines]  # every panel's
    hollow = {(float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in lines
              if ln.get_gid() == "clean-twin"}
    assert hollow == {p.twin for p in pts}
    dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(dashed) == len(pts)
    for p in pts:  # each point's connector runs from its twin to the point
        assert any(tuple(ln.get_xdata()) == (p.twin[0], p.pa[0]) and
                   tuple(ln.get_ydata()) == (p.twin[1], p.asr[0]) for ln in dashed)


def test_legend_names_only_what_tells_setups_and_settings_apart() -> None:
    """Two widths of one encoder are told apart by their params; the dataset, the same for
    every cell, is not repeated; an attack's label shows its differing params by short name."""
    from pe_bench.report.plot.figure import _group_labels

    def row(width: int, rate: float) -> TrialRow:
        spec = trial(encoder=PluginRef(name="simclr", params={"width": width}),
                     cell=("poisoned-encoder", {"poison_rate": rate, "references": 5}, "none", {}))
        (made,) = typed([build_row(spec, "run1", PROV, datetime.now(UTC), metrics([True]))])
        return made

    cells = {f"{w}-{r}": [row(w, r)] for w in (8, 16) for r in (0.05, 0.1)}
    assert _group_labels(cells) == {
        f"{w}-{r}": f"simclr (width={w}) poisoned-encoder (rate={r:g})" for w in (8, 16) for r in (0.05, 0.1)}
