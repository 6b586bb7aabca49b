"""Publishing: the leaderboard files, typed Parquet, the site's files (an index, a page per
suite, a hashed file name for a suite whose name is no safe one), escaping of hostile names,
pages that need no network. What the pages show is tests/unit/report/test_site.py; that a real
browser renders them, tests/unit/report/test_site_browser.py.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pe_bench.cli import main
from pe_bench.report.columns import BOARD
from pe_bench.report.leaderboard import Line, aggregate
from pe_bench.report.publish import publish
from pe_bench.report.site.files import page_names
from pe_bench.store.results import failed_trials, latest_ok, scan
from tests.rows import ATTACK, CELLS, make_store

# a suite name is a directory name (no "/"); a defense name is only data, so it may be anything
HOSTILE_SUITE = '<img src=x onerror="document.body.dataset.pwned=1">'
HOSTILE_DEFENSE = "<script>document.body.dataset.pwned=2</script>"
HOSTILE_CELLS = [("none", {}, "none", {}), ("poisoned-encoder", ATTACK, "none", {}),
                 ("poisoned-encoder", ATTACK, HOSTILE_DEFENSE, {"note": "</td><b>bold</b>"})]
UNIT_CELLS = 4  # x 4 lines each (digits; mix: 2 tasks + all): few, as aggregation takes seconds
HEADERS = [c.header for c in BOARD]
BOARD_FILES = ["leaderboard.md", "leaderboard.csv", "leaderboard.parquet"]
HOSTILE_PAGE = page_names([HOSTILE_SUITE])[HOSTILE_SUITE]
PAGES = ["index.html", HOSTILE_PAGE, "unit.html"]  # the index, then the suites by name
FILES = [*BOARD_FILES, *PAGES, "metrics.html"]  # metrics.html: docs/metrics.md, from the checkout


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_store(tmp_path_factory.mktemp("store"), cells=CELLS[:UNIT_CELLS])
    return make_store(root, suite=HOSTILE_SUITE, cells=HOSTILE_CELLS, seeds=1, run_id="run2")


@pytest.fixture(scope="module")
def site(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert [p.name for p in publish(store, out)] == FILES
    return out


@pytest.fixture(scope="module")
def lines(store: Path) -> dict[str, list[Line]]:
    """What `pe-bench leaderboard` shows per suite (aggregated once: the bootstrap is slow)."""
    tables = {suite: scan(store, suite) for suite in ("unit", HOSTILE_SUITE)}
    return {suite: aggregate(latest_ok(t), failed_trials(t)) for suite, t in tables.items()}


def _page(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


def test_the_files_are_written(site: Path, lines: dict[str, list[Line]]) -> None:
    assert all((site / name).stat().st_size > 0 for name in FILES)
    assert re.fullmatch(r"suite-[0-9a-f]{12}\.html", HOSTILE_PAGE)
    md = _page(site, "leaderboard.md")
    assert "# pe-bench leaderboard: unit" in md and f"# pe-bench leaderboard: {HOSTILE_SUITE}" in md
    header, *records = csv.reader(io.StringIO(_page(site, "leaderboard.csv")))
    assert header == ["suite", *HEADERS]
    n_lines = len(lines["unit"]) + len(lines[HOSTILE_SUITE])
    assert len(records) == n_lines and sum(r[0] == "unit" for r in records) == len(lines["unit"])
    assert pq.read_table(site / "leaderboard.parquet").num_rows == n_lines


def test_the_index_links_every_suite_page(site: Path) -> None:
    index = _page(site, "index.html")
    assert '<a href="unit.html">unit</a>' in index and f'<a href="{HOSTILE_PAGE}">' in index
    for name in BOARD_FILES:
        assert f'<a href="{name}">' in index
    assert "default families (attack-effect, defense-effect)" in index  # the suites' notes (no declaration recorded)


def test_the_parquet_has_typed_columns(site: Path, lines: dict[str, list[Line]]) -> None:
    table = pq.read_table(site / "leaderboard.parquet")
    schema = table.schema
    for name in ("suite", "dataset", "encoder", "task", "attack", "defense"):
        assert schema.field(name).type == pa.string()
    assert schema.field("seeds").type == pa.int64() and schema.field("published").type == pa.bool_()
    for name in ("ca_mean", "ca_std", "pa_mean", "pa_std", "asr_mean", "asr_std",
                 "delta_asr_mean", "delta_asr_low", "delta_asr_high", "delta_p_low", "delta_p_high"):
        assert schema.field(name).type == pa.float64(), name
    got = [r for r in table.to_pylist() if r["suite"] == "unit"]
    want = lines["unit"]
    assert len(got) == len(want)
    for row, line in zip(got, want, strict=True):  # the same order as the leaderboard
        assert (row["attack"], row["defense"], row["task"]) == (line.attack, line.defense, line.task)
        assert row["pa_mean"] == pytest.approx(line.stats["pa"][0])
        assert row["pa_std"] == pytest.approx(line.stats["pa"][1])
        delta_asr = line.intervals["delta_asr"]
        if delta_asr is None:
            assert row["delta_asr_low"] is None and row["asr_mean"] is None
        else:
            assert row["delta_asr_low"] == pytest.approx(delta_asr.low)
            assert (row["delta_asr_units"], row["delta_asr_untied"]) == (delta_asr.units, delta_asr.untied)
        assert row["failed"] == line.failed
    assert not any(r["published"] for r in table.to_pylist() if r["suite"] == HOSTILE_SUITE)


def test_failed_trials_are_counted_in_every_published_file(site: Path, lines: dict[str, list[Line]]) -> None:
    """make_store's one trial that only failed (seed 99 of its last `digits` cell) shows as
    `failed 1` on that cell's line in the Markdown, the CSV and the Parquet, and in that cell's
    drill-down on the suite's page."""
    (line,) = [ln for ln in lines["unit"] if ln.failed]
    attack, _, defense, _ = CELLS[UNIT_CELLS - 1]
    assert (line.failed, line.dataset, line.attack, line.defense, line.seeds) == (1, "digits", attack,
                                                                               defense, 3)
    col = HEADERS.index("failed")
    _, *records = csv.reader(io.StringIO(_page(site, "leaderboard.csv")))
    assert [int(r[col + 1]) for r in records if r[0] == "unit"] == [ln.failed for ln in lines["unit"]]
    parquet = [r for r in pq.read_table(site / "leaderboard.parquet").to_pylist() if r["suite"] == "unit"]
    assert [r["failed"] for r in parquet] == [ln.failed for ln in lines["unit"]]
    md = _page(site, "leaderboard.md").split("# pe-bench leaderboard: ")
    unit_md = next(part for part in md if part.startswith("unit\n"))
    md_rows = [r.strip("|").split(" | ") for r in unit_md.splitlines() if r.startswith("| ")]
    assert md_rows[0][col].strip() == "failed"
    assert [int(r[col]) for r in md_rows[1:]] == [ln.failed for ln in lines["unit"]]
    drills = re.findall(r'<section class="drill" id="(cell-\d+)">(.*?)</section>', _page(site, "unit.html"))
    failing = [anchor for anchor, body in drills if "1 failed trial(s)" in body]
    assert failing == [f"cell-{lines['unit'].index(line)}"]


def test_hostile_names_are_escaped(site: Path) -> None:
    for name in PAGES:
        page = _page(site, name)
        assert HOSTILE_SUITE not in page and HOSTILE_DEFENSE not in page and "<b>bold" not in page
        assert page.count("<script") == (0 if name == "index.html" else 1)  # ours, at the end
    assert "&lt;img src=x onerror=&quot;document.body.dataset.pwned=1&quot;&gt;" in _page(site, "index.html")
    hostile = _page(site, HOSTILE_PAGE)
    assert "&lt;script&gt;document.body.dataset.pwned=2&lt;/script&gt;" in hostile
    assert "&lt;img src=x onerror=&quot;document.body.dataset.pwned=1&quot;&gt;" in hostile


def test_the_pages_need_no_network(site: Path) -> None:
    for name in PAGES:
        page = _page(site, name)
        assert not re.search(r"https?://", page, re.I), name
        assert "<link" not in page and "@import" not in page and "url(" not in page
        assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'\ssrc="([^"]*)"', page))
        figures = len(re.findall(r'<img src="data:image/png;base64,', page))
        assert figures == (0 if name == "index.html" else 1)  # one figure per suite page
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert all(h.startswith("#") or (site / h).is_file() for h in hrefs), hrefs  # no dead link


def test_publish_one_suite_and_the_cli(store: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["publish", "--store", str(store), "--out", str(tmp_path / "one"), "--suite", HOSTILE_SUITE]
    assert main(argv) == 0
    written = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert written == sorted([*BOARD_FILES, "index.html", HOSTILE_PAGE, "metrics.html"])
    assert capsys.readouterr().out.count("wrote ") == len(written)
    index = _page(tmp_path / "one", "index.html")
    assert index.count("<tr><td><a href=") == 1 and "unit.html" not in index
    assert main(["publish", "--store", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "no ok rows" in capsys.readouterr().err
