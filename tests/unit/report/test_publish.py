"""Publishing: the four files, typed Parquet, escaping of hostile names, an offline page that a
real browser renders, sorts and filters (headless Chromium; skipped where it is not installed).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pe_bench.cli import main
from pe_bench.report.columns import BOARD
from pe_bench.report.leaderboard import Line, aggregate
from pe_bench.report.publish import publish
from pe_bench.store.results import failed_trials, latest_ok, scan
from tests.rows import ATTACK, CELLS, make_store

# a suite name is a directory name (no "/"); a defense name is only data, so it may be anything
HOSTILE_SUITE = '<img src=x onerror="document.body.dataset.pwned=1">'
HOSTILE_DEFENSE = "<script>document.body.dataset.pwned=2</script>"
HOSTILE_CELLS = [("none", {}, "none", {}), ("poisoned-encoder", ATTACK, "none", {}),
                 ("poisoned-encoder", ATTACK, HOSTILE_DEFENSE, {"note": "</td><b>bold</b>"})]
UNIT_CELLS = 4  # x 4 lines each (digits; mix: 2 tasks + all): few, as aggregation takes seconds
UNIT_LINES = UNIT_CELLS * 4
HEADERS = [c.header for c in BOARD]
FILES = ["leaderboard.md", "leaderboard.csv", "leaderboard.parquet", "index.html"]
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


def test_the_four_files_are_written(site: Path, lines: dict[str, list[Line]]) -> None:
    assert all((site / name).stat().st_size > 0 for name in FILES)
    md = (site / "leaderboard.md").read_text(encoding="utf-8")
    assert "# pe-bench leaderboard: unit" in md and f"# pe-bench leaderboard: {HOSTILE_SUITE}" in md
    header, *records = csv.reader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))
    assert header == ["suite", *HEADERS]
    n_lines = len(lines["unit"]) + len(lines[HOSTILE_SUITE])
    assert len(records) == n_lines and sum(r[0] == "unit" for r in records) == len(lines["unit"])
    assert pq.read_table(site / "leaderboard.parquet").num_rows == n_lines


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
        assert row["failed"] == line.failed
    assert not any(r["published"] for r in table.to_pylist() if r["suite"] == HOSTILE_SUITE)


def test_failed_trials_are_counted_in_every_published_file(site: Path, lines: dict[str, list[Line]]) -> None:
    """make_store's one trial that only failed (seed 99 of its last `digits` cell) shows as
    `failed 1` on that cell's line in the Markdown, the CSV, the Parquet and the page."""
    (line,) = [ln for ln in lines["unit"] if ln.failed]
    attack, _, defense, _ = CELLS[UNIT_CELLS - 1]
    assert (line.failed, line.dataset, line.attack, line.defense, line.seeds) == (1, "digits", attack,
                                                                               defense, 3)
    col = HEADERS.index("failed")
    _, *records = csv.reader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))
    assert [int(r[col + 1]) for r in records if r[0] == "unit"] == [ln.failed for ln in lines["unit"]]
    parquet = [r for r in pq.read_table(site / "leaderboard.parquet").to_pylist() if r["suite"] == "unit"]
    assert [r["failed"] for r in parquet] == [ln.failed for ln in lines["unit"]]
    md = (site / "leaderboard.md").read_text(encoding="utf-8").split("# pe-bench leaderboard: ")
    unit_md = next(part for part in md if part.startswith("unit\n"))
    md_rows = [r.strip("|").split(" | ") for r in unit_md.splitlines() if r.startswith("| ")]
    assert md_rows[0][col].strip() == "failed"
    assert [int(r[col]) for r in md_rows[1:]] == [ln.failed for ln in lines["unit"]]
    boards = Boards()
    boards.feed((site / "index.html").read_text(encoding="utf-8"))
    unit_board = boards.tables[sorted([HOSTILE_SUITE, "unit"]).index("unit")]
    assert [int(r[col]) for r in unit_board if r] == [ln.failed for ln in lines["unit"]]


def test_hostile_names_are_escaped(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    assert HOSTILE_SUITE not in page and HOSTILE_DEFENSE not in page and "<b>bold" not in page
    assert "&lt;script&gt;document.body.dataset.pwned=2&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;document.body.dataset.pwned=1&quot;&gt;" in page
    assert page.count("<script") == 1  # ours, at the end


def test_the_page_needs_no_network(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page, re.I)
    assert "<link" not in page and "@import" not in page
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'\ssrc="([^"]*)"', page))
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 2  # one figure per suite


def test_publish_one_suite_and_the_cli(store: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["publish", "--store", str(store), "--out", str(tmp_path / "one"), "--suite", HOSTILE_SUITE]
    assert main(argv) == 0
    assert capsys.readouterr().out.count("wrote ") == 4
    page = (tmp_path / "one" / "index.html").read_text(encoding="utf-8")
    assert page.count('<section class="suite"') == 1 and "<code>unit</code>" not in page
    assert main(["publish", "--store", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "no ok rows" in capsys.readouterr().err


class Boards(HTMLParser):
    """Cell texts of every `table.board` body row in a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.in_board = self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.in_board = ("class", "board") in attrs
            if self.in_board:
                self.tables.append([])
        elif self.in_board and tag == "tr":
            self.tables[-1].append([])
        elif self.in_board and tag == "td":
            self.in_cell = True
            self.tables[-1][-1].append("")

    def handle_endtag(self, tag: str) -> None:
        self.in_cell = self.in_cell and tag != "td"
        self.in_board = self.in_board and tag != "table"

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.tables[-1][-1][-1] += data


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=120, check=True)


def test_chromium_runs_the_page(site: Path, tmp_path: Path) -> None:
    url = (site / "index.html").as_uri()
    dom = chromium(tmp_path, url + "#selftest", "--dump-dom").stdout
    assert 'data-ready="2"' in dom and dom.count('data-ready="1"') == 2  # the script ran per table
    assert 'data-selftest="pass"' in dom, re.findall(r'<output class="selftest">[^<]*', dom)
    assert "pwned" in dom and "data-pwned" not in dom  # hostile names are text, never ran
    assert dom.count("<script") == 1 and "&lt;script&gt;document.body" in dom
    assert f"of {UNIT_LINES} lines" in dom and "<select" in dom  # the count and the column filters
    boards = Boards()
    boards.feed(dom)
    unit = [row for row in boards.tables[sorted([HOSTILE_SUITE, "unit"]).index("unit")] if row]
    assert len(unit) == UNIT_LINES
    asr = [float(row[HEADERS.index("ASR")].split()[0]) for row in unit if row[HEADERS.index("ASR")] != "-"]
    assert asr == sorted(asr, reverse=True) and len(set(asr)) > 1  # the self-test sorted ASR descending


def test_chromium_screenshot(site: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    chromium(tmp_path, (site / "index.html").as_uri(), f"--screenshot={shot}", "--window-size=1400,1000")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1400, 1000)
    with Image.open(shot) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # text, table, figure: not a blank page
