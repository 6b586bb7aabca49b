"""The published suite page in a real browser (headless Chromium, from a file:// URL as from a
file share): the heat map is painted in its colours, the DOM holds the matrix's cells and
marks, no drill-down shows until a cell's fragment targets it, and `#cell-<n>` shows exactly
that cell's drill-down with its per-seed rows. Two browser runs, each taking a screenshot and
dumping the DOM; skipped only where no Chromium binary is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from pe_bench.report.leaderboard import from_store
from pe_bench.report.lines import Line
from pe_bench.report.matrix import effect_matrices
from pe_bench.report.publish import publish
from pe_bench.report.site.heatmap import colour
from tests.rows import FILTER, backdoor_suite

SEEDS = 6
SIZE = (1400, 1000)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--window-size={SIZE[0]},{SIZE[1]}"]
PANEL = (0xFA, 0xFB, 0xFD)  # a drill-down's background (pe_bench.report.site.style)


@dataclass(frozen=True)
class Rendered:
    dom: str
    shot: Path


@pytest.fixture(scope="module")
def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip("no Chromium binary on PATH (Debian: apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Line]]:
    store = backdoor_suite(tmp_path_factory.mktemp("store"), "bd", SEEDS, effect=70)
    out = tmp_path_factory.mktemp("site")
    publish(store, out)
    return out / "bd.html", from_store(store, "bd")


def _render(browser: str, url: str, where: Path) -> Rendered:
    """One browser run: a screenshot and the DOM after the page's script ran."""
    shot = where / "shot.png"
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={where / 'profile'}", f"--screenshot={shot}",
                           "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True)
    return Rendered(done.stdout, shot)


@pytest.fixture(scope="module")
def plain(browser: str, site: tuple[Path, list[Line]],
          tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return _render(browser, site[0].as_uri(), tmp_path_factory.mktemp("plain"))


def _anchor(lines: list[Line]) -> str:
    """The drill-down of the filter's cell."""
    return f"cell-{next(i for i, ln in enumerate(lines) if ln.defense == FILTER[0])}"


@pytest.fixture(scope="module")
def drilled(browser: str, site: tuple[Path, list[Line]],
            tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    page, lines = site
    return _render(browser, f"{page.as_uri()}#{_anchor(lines)}", tmp_path_factory.mktemp("drilled"))


def _pixels(shot: Path, rgb: tuple[int, int, int], tolerance: int = 4) -> int:
    """How many pixels of the screenshot are within `tolerance` of `rgb` in every channel."""
    with Image.open(shot) as img:
        assert img.size == SIZE
        counts = img.convert("RGB").getcolors(maxcolors=SIZE[0] * SIZE[1])
    assert counts is not None and len(counts) > 50  # text, tables, colours: not a blank page
    return sum(n for n, c in counts if all(abs(a - b) <= tolerance for a, b in zip(c, rgb, strict=True)))


def _cell_colour(lines: list[Line]) -> tuple[int, int, int]:
    """The undefended cell's colour, as the page's scale gives its ΔASR."""
    effect = next(ln for ln in lines if ln.defense == "none").intervals["delta_asr"]
    assert effect is not None and effect.mean > 0.6
    r, g, b = map(int, re.findall(r"\d+", colour(effect.mean)))
    return r, g, b


def test_the_screenshot_shows_the_heat_map(plain: Rendered, site: tuple[Path, list[Line]]) -> None:
    assert plain.shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _pixels(plain.shot, _cell_colour(site[1])) > 1500  # the undefended cell, painted
    assert _pixels(plain.shot, PANEL, 1) < 1000  # no drill-down panel


def test_the_dom_holds_the_matrix_cells_and_marks(plain: Rendered, site: tuple[Path, list[Line]]) -> None:
    (matrix,) = effect_matrices(site[1])
    cells = re.findall(r'<td class="cell v-(\w+)" data-mark="([^"]*)"[^>]*>'
                       r'<a href="#(cell-\d+)"[^>]*>([^<]*)</a>', plain.dom)
    assert [text for *_, text in cells] == [c for row in matrix.rows for c in row[1:]]
    assert [(verdict, mark) for verdict, mark, *_ in cells] == [("supported", "✓")] * 2
    assert all(f'<section class="drill" id="{anchor}">' in plain.dom for _, _, anchor, _ in cells)
    assert 'data-drill-shown=""' in plain.dom  # the page's check ran: nothing targeted, nothing shown


def test_a_fragment_shows_that_cells_drill_down(drilled: Rendered, site: tuple[Path, list[Line]]) -> None:
    anchor = _anchor(site[1])
    assert f'data-drill-shown="{anchor}"' in drilled.dom  # that one drill-down, and no other
    section = re.search(rf'<section class="drill" id="{anchor}">(.*?)</section>', drilled.dom, re.S)
    assert section is not None
    rows = re.findall(r"<tr><td>(\d+)</td>(.*?)</tr>", section.group(1))
    assert [int(seed) for seed, _ in rows] == list(range(SEEDS))
    assert all(f"<td>{20 + int(seed) % 2}/100</td>" in cells for seed, cells in rows)  # its stored hits
    assert _pixels(drilled.shot, PANEL, 1) > 200_000  # the panel is painted over the page
    assert _pixels(drilled.shot, _cell_colour(site[1])) > 1500  # beside the heat map
