"""Publishing: leaderboard.md / .csv / .parquet and a static site, from the store only.

The tables carry every line and column (from the leaderboard's column table,
pe_bench.report.columns, so new metrics appear without edits here); the site
(pe_bench.report.site: `index.html` and one page per suite) shows each suite's effect matrices
as heat maps with a per-seed drill-down per cell, and opens from a file share with no network.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pe_bench.report.columns import BOARD, COLUMNS
from pe_bench.report.leaderboard import to_markdown
from pe_bench.report.lines import Line
from pe_bench.report.site.files import write_site
from pe_bench.report.site.provenance import PROVENANCE
from pe_bench.report.site.suites import SuiteReport, collect
from pe_bench.store.schema import SCALARS

__all__ = ["PROVENANCE", "SuiteReport", "collect", "line_record", "lines_table", "publish", "to_csv"]


def line_record(line: Line) -> dict[str, tuple[type, Any]]:
    """A line as typed Parquet fields, every column's (stats -> `<key>_mean`/`_std`, intervals
    -> `<key>_mean`/`_low`/`_high`/`_p`/`_p_holm`/`_units`/`_untied`, names and counts as themselves)."""
    out: dict[str, tuple[type, Any]] = {}
    for column in COLUMNS:
        out.update(column.record(line))
    return out


def lines_table(reports: Sequence[SuiteReport]) -> pa.Table:
    """Every suite's lines as one Arrow table (a `suite` column first)."""
    records = [{"suite": (str, r.name), **line_record(ln)} for r in reports for ln in r.lines]
    types: dict[str, pa.DataType] = {}
    for rec in records:
        types.update({k: SCALARS[t] for k, (t, _) in rec.items() if k not in types})
    rows = [{k: v for k, (_, v) in rec.items()} for rec in records]
    return pa.Table.from_pylist(rows, schema=pa.schema(list(types.items())))


def to_csv(reports: Sequence[SuiteReport]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(("suite", *(c.header for c in BOARD)))
    writer.writerows((r.name, *(c.cell(ln) for c in BOARD)) for r in reports for ln in r.lines)
    return buf.getvalue()


def publish(store: str | Path, out: str | Path, suite: str | None = None) -> list[Path]:
    """Write the leaderboard files and the site into `out` (every suite of the store, or just
    `suite`); returns their paths: the md, csv and parquet, the index, each suite's page, the
    metric definitions when the pe-bench source is at hand."""
    reports = collect(store, suite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in ("leaderboard.md", "leaderboard.csv", "leaderboard.parquet")]
    md = "\n".join(to_markdown(r.lines, f"pe-bench leaderboard: {r.name}") for r in reports)
    paths[0].write_text(md, encoding="utf-8")
    paths[1].write_text(to_csv(reports), encoding="utf-8", newline="")
    pq.write_table(lines_table(reports), paths[2])
    return [*paths, *write_site(reports, out)]
