"""What the published site shows, read from its HTML (no browser): each setup's effect matrix as
pe_bench.report.matrix builds it, coloured by the ΔASR its line carries and marked with the
verdict; a drill-down per cell holding that line's intervals and its per-seed rows, nothing
recomputed; the papers' headlines of the matrix's attacks; the legend; the plugin versions
with a warning when one plugin is recorded at two versions; safe page file names."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pe_bench.report.leaderboard import from_store
from pe_bench.report.lines import Line
from pe_bench.report.matrix import LEGEND, cell_lines, effect_matrices, setup_of
from pe_bench.report.publish import publish
from pe_bench.report.references import of_attacks
from pe_bench.report.site.files import page_names
from pe_bench.report.site.heatmap import colour
from tests.rows import FILTER, backdoor_suite

SEEDS = 6  # the exact test over 6 seeds can reach p = 2/64: the undefended cell is supported
OLD, NEW = "pe-bench 0.0.9", "pe-bench 0.1.0"
VERSIONS = {seed: {"attacks": {"ssl-backdoor": OLD if seed == 0 else NEW}, "defenses": {"dedup": NEW}}
            for seed in range(SEEDS - 1)}  # the last seed records none


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backdoor_suite(tmp_path_factory.mktemp("store"), "bd", SEEDS, versions=VERSIONS)


@pytest.fixture(scope="module")
def page(store: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("site")
    publish(store, out)
    return (out / "bd.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def lines(store: Path) -> list[Line]:
    return from_store(store, "bd")


class Cells(HTMLParser):
    """Each `table.heatmap`'s rows: (tag, attributes, text) per th/td."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, dict[str, str | None], str]]]] = []
        self.open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.open = ("class", "heatmap") in attrs
            if self.open:
                self.tables.append([])
        elif self.open and tag == "tr":
            self.tables[-1].append([])
        elif self.open and tag in ("th", "td"):
            self.tables[-1][-1].append((tag, dict(attrs), ""))

    def handle_endtag(self, tag: str) -> None:
        self.open = self.open and tag != "table"

    def handle_data(self, data: str) -> None:
        if self.open and self.tables[-1] and self.tables[-1][-1]:
            tag, attrs, text = self.tables[-1][-1][-1]
            self.tables[-1][-1][-1] = (tag, attrs, text + data)


def _heatmaps(page: str) -> list[list[list[tuple[str, dict[str, str | None], str]]]]:
    parser = Cells()
    parser.feed(page)
    return parser.tables


def _drill(page: str, anchor: str) -> str:
    found = re.search(rf'<section class="drill" id="{anchor}">(.*?)</section>', page)
    assert found, anchor
    return found.group(1)


def test_the_heat_map_is_the_effect_matrix(page: str, lines: list[Line]) -> None:
    (matrix,) = effect_matrices(lines)
    (shown,) = _heatmaps(page)
    assert tuple(text for _, _, text in shown[0]) == matrix.headers
    assert [tuple(text for _, _, text in row) for row in shown[1:]] == list(matrix.rows)
    assert [row[0][1]["scope"] for row in shown[1:]] == ["row", "row"]  # the defense column


def test_a_cell_is_coloured_by_its_effect_and_marked_by_its_verdict(page: str, lines: list[Line]) -> None:
    cells = cell_lines(lines)[setup_of(lines[0])]
    (shown,) = _heatmaps(page)
    for row in shown[1:]:
        defense, (_, attrs, text) = row[0][2], row[1]
        line = cells[(defense, "ssl-backdoor")]
        effect, test = line.intervals["delta_asr"], line.intervals["delta_asr_defense" if
                                                               defense != "none" else "delta_asr"]
        assert effect is not None and test is not None and test.verdict == "supported"
        assert f"background:{colour(effect.mean)}" in (attrs["style"] or "")
        assert attrs["data-mark"] == "✓" and "v-supported" in (attrs["class"] or "") and "✓" in text
    assert colour(0.0) == "rgb(255,255,255)" and colour(1.0) == "rgb(178,24,43)"
    assert colour(-2.0) == "rgb(33,102,172)"  # saturated beyond -1


def test_every_cell_opens_its_lines_drill_down(page: str, lines: list[Line]) -> None:
    cells = cell_lines(lines)[setup_of(lines[0])]
    for (defense, _), line in cells.items():
        anchor = f"cell-{lines.index(line)}"
        assert f'href="#{anchor}"' in page
        drill = _drill(page, anchor)
        seeds = re.findall(r"<tr><td>(\d+)</td>", drill)  # the per-seed rows start with the seed
        assert sorted(map(int, seeds)) == list(range(SEEDS)) and line.seeds == SEEDS
        for key in ("delta_asr", "delta_asr_defense"):
            ci = line.intervals.get(key)
            if ci is None:
                assert defense == "none" and key == "delta_asr_defense"
                continue
            assert ci.p is not None
            adjusted = "-" if ci.p_adjusted is None else f"{ci.p_adjusted:.3g}"
            family = ci.family or "none (exploratory)"  # the defended cell's ΔASR vs its twin
            row = (f"<td>{ci.mean:+.3f}</td><td>[{ci.low:+.3f}, {ci.high:+.3f}]</td><td>{ci.p:.3g}</td>"
                   f"<td>{adjusted}</td><td>{ci.units}</td><td>{family}</td><td>{ci.verdict}</td>")
            assert row in drill, (key, drill)
        assert "supported" in drill  # the test that marks the cell
        assert ("undefended hits" in drill) == (defense != "none")  # the defense's columns


def test_the_drill_down_shows_each_seeds_stored_numbers(page: str, lines: list[Line]) -> None:
    line = next(ln for ln in lines if ln.defense == FILTER[0])
    rows = re.findall(r"<tr><td>(\d+)</td>(.*?)</tr>", _drill(page, f"cell-{lines.index(line)}"))
    for seed, cells in rows:  # tests/rows.backdoor_suite: the filter leaves 20 + seed % 2 of 100
        assert f"<td>{20 + int(seed) % 2}/100</td><td>20/100</td>" in cells
        assert f"<td>{60 + int(seed)}/100</td>" in cells  # the undefended encoder's hits


def test_the_papers_headlines_sit_under_the_matrix(page: str) -> None:
    matrix_at, refs_at = page.index('<table class="heatmap"'), page.index('<table class="refs"')
    assert matrix_at < refs_at < page.index('<section class="drill"')
    refs = page[refs_at:page.index("</table>", refs_at)]
    assert refs.count("<tr><td>") == len(of_attacks(["ssl-backdoor"])) == 3
    assert "Saha et al., CVPR 2022" in refs and "poisoned-encoder" not in refs


def test_the_legend_and_its_definitions(page: str) -> None:
    legend = unescape(page[page.index('<section id="legend">'):])
    assert all(line in legend for line in LEGEND)
    assert '<a href="metrics.html">docs/metrics.md</a>' in page


def test_plugin_versions_and_the_mixed_warning(page: str) -> None:
    prov = page[page.index('<section class="prov"'):]
    assert f"<td>attacks</td><td>ssl-backdoor</td><td>{OLD}</td><td>2</td>" in prov  # seed 0's two rows
    assert f"<td>attacks</td><td>ssl-backdoor</td><td>{NEW}</td><td>8</td>" in prov
    assert f"<td>defenses</td><td>dedup</td><td>{NEW}</td><td>10</td>" in prov
    assert "2 of 12 used rows record no plugin versions" in prov
    (warning,) = re.findall(r'<ul class="warn"><li>([^<]*)</li></ul>', prov)
    assert warning == f"one plugin at several versions: attacks/ssl-backdoor: {OLD} (2 rows), {NEW} (8 rows)"
    assert "<td>2.14.1</td>" in prov and "<td>run1</td>" in prov  # torch version, the run


def test_page_names_are_safe_and_distinct() -> None:
    names = page_names(["quick", "Quick", "index", "a/b", "..", "<x>", "cal-digits-16"])
    assert names["quick"] == "quick.html" and names["cal-digits-16"] == "cal-digits-16.html"
    hashed = [names[n] for n in ("Quick", "index", "a/b", "..", "<x>")]
    assert all(re.fullmatch(r"suite-[0-9a-f]{12}\.html", n) for n in hashed)
    assert len(set(names.values())) == len(names)
