"""`pe-bench run A.yaml B.yaml`: several suites in order into one store (what `make demo` runs).
Every file is checked before the first trial; the boards come at the end, in order, each ending
with the line naming where its comparisons are tested at more seeds (`evidence`)."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from pe_bench.cli import main
from pe_bench.store import declarations
from pe_bench.store.results import scan
from tests.integration._support import write_suite


def test_two_suites_run_into_one_store_and_end_with_their_boards(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_suite(tmp_path / "wide.yaml", "wide", seeds=[0, 1])
    first = write_suite(tmp_path / "first.yaml", "first")
    second = write_suite(tmp_path / "second.yaml", "second", evidence=["wide.yaml"], description="the second one")
    store = tmp_path / "store"
    assert main(["run", str(first), str(second), "--in-process", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    assert "first: run " in err and "second: run " in err
    assert scan(store, "first").num_rows == scan(store, "second").num_rows == 2
    assert out.index("pe-bench leaderboard: first") < out.index("pe-bench leaderboard: second")
    closing = declarations.read(store, "second").evidence  # recorded by the run, shown by every view
    assert closing.startswith("tested at more seeds: duplicate vs its clean twin"), closing
    assert "in wide.yaml (attack-effect, 2 seeds; but 1 comparison there: Holm cannot go below 0.5" in closing
    assert " ".join(out.split()).endswith(closing)  # the terminal output ends with it (wrapped)
    assert "suite second: the second one" in " ".join(out.split())
    # every view of the board says it: the Markdown head too (the store records the line)
    assert main(["leaderboard", "--store", str(store), "--suite", "second", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert closing in md and "suite second: the second one" in md  # what the suite is, as run
    assert main(["publish", "--store", str(store), "--out", str(tmp_path / "site"), "--suite", "second"]) == 0
    page = next((tmp_path / "site").glob("*second*.html")).read_text(encoding="utf-8")
    assert html.escape(closing) in page and "<p>the second one</p>" in page
    assert "the second one" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")


def test_a_bad_later_suite_stops_before_the_first_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_suite(tmp_path / "first.yaml", "first")
    second = write_suite(tmp_path / "second.yaml", "second", evidence=["missing.yaml"])
    store = tmp_path / "store"
    assert main(["run", str(first), str(second), "--in-process", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "evidence[0]: cannot read missing.yaml" in err, err
    assert not store.exists()


def test_one_suite_name_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_suite(tmp_path / "first.yaml", "same")
    second = write_suite(tmp_path / "second.yaml", "same")
    store = tmp_path / "store"
    assert main(["run", str(first), str(second), "--in-process", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pe-bench: error: run: suite 'same' is given twice (a store keeps one suite per name)"
    assert not store.exists()
