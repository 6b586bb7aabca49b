"""Publishing: leaderboard.md / .csv / .parquet and a self-contained index.html, from the store only.

The page must open from a file share or a CI artifact with no network: CSS and JS are inline,
each suite's ASR-vs-PA figure is a base64 PNG data URI. Every string that comes from a suite,
a plugin or a row is HTML-escaped: names are data, never markup. Columns come from the
leaderboard's column table (pe_bench.report.columns), so new metrics appear without edits here.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pe_bench.report.columns import BOARD, COLUMNS, Column, footnote
from pe_bench.report.leaderboard import aggregate, store_families, to_markdown
from pe_bench.report.lines import Line
from pe_bench.store.schema import SCALARS, Provenance, TrialRow


def _provenance(name: str) -> Callable[[TrialRow], str | None]:
    return lambda row: getattr(row.provenance, name)


# what produced a run's rows: the row model's provenance fields (labelled by their titles), the host
PROVENANCE: tuple[tuple[str, Callable[[TrialRow], str | None]], ...] = (
    *((info.title or name, _provenance(name)) for name, info in Provenance.model_fields.items()),
    ("host", lambda row: row.hostname))
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;margin:0 auto;
 max-width:1700px;padding:1rem 2rem}
h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}
.controls{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.6rem 0}
.controls input{padding:.3rem .5rem;min-width:18rem}.controls select{max-width:16rem}.count{color:#555}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .55rem;border-bottom:1px solid #e4e4e4;text-align:left;white-space:nowrap}
.board th{background:#f1f2f5;cursor:pointer;user-select:none;position:sticky;top:0}
.board th[aria-sort=ascending]::after{content:" \\25B2"}
.board th[aria-sort=descending]::after{content:" \\25BC"}
.board tbody tr:hover{background:#f6f8ff}td.num{text-align:right}tr.draft td{color:#777}
.note,.meta,.prov{color:#555;font-size:.85rem}.prov th{background:#f7f7f7}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
"""
JS = """
(function () {
  function key(td) {
    var t = td.textContent.trim();
    if (t === "" || t === "-") return null;
    return /^[+-]?[0-9.]/.test(t) && !isNaN(parseFloat(t)) ? parseFloat(t) : t.toLowerCase();
  }
  function cmp(x, y) {
    if (typeof x === "number" && typeof y === "number") return x - y;
    if (typeof x === "number" || typeof y === "number") return typeof x === "number" ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  function setup(sec) {
    var table = sec.querySelector("table.board"), tbody = table.tBodies[0], heads = table.tHead.rows[0].cells;
    var rows = Array.prototype.slice.call(tbody.rows), search = sec.querySelector("input.search");
    var selects = [], count = sec.querySelector(".count");
    function apply() {
      var q = search.value.toLowerCase(), shown = 0;
      rows.forEach(function (r) {
        var ok = r.textContent.toLowerCase().indexOf(q) >= 0 && selects.every(function (s) {
          return !s.value || r.cells[s.dataset.col].textContent === s.value; });
        r.hidden = !ok; shown += ok ? 1 : 0;
      });
      table.dataset.shown = shown; count.textContent = shown + " of " + rows.length + " lines";
    }
    function sortBy(col) {
      var th = heads[col], dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = key(a.cells[col]), y = key(b.cells[col]), tie = a.dataset.order - b.dataset.order;
        if (x === null || y === null) return (x === null) - (y === null) || tie;
        return dir * cmp(x, y) || tie;
      });
      rows.forEach(function (r) { tbody.appendChild(r); });
    }
    rows.forEach(function (r, i) {
      r.dataset.order = i;
      Array.prototype.forEach.call(r.cells, function (c) {
        if (typeof key(c) === "number") c.className = "num";
      });
    });
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0; th.title = "click to sort";
      th.addEventListener("click", function () { sortBy(col); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(col); });
      if (!th.dataset.filter) return;
      var s = document.createElement("select"), seen = {};
      s.dataset.col = col; s.add(new Option("every " + th.dataset.filter, ""));
      rows.map(function (r) { return r.cells[col].textContent; }).sort().forEach(function (v) {
        if (!seen[v]) { seen[v] = 1; s.add(new Option(v, v)); } });
      s.addEventListener("change", apply); selects.push(s); sec.querySelector(".filters").appendChild(s);
    });
    search.addEventListener("input", apply); apply(); table.dataset.ready = "1";
    return {sortBy: sortBy, apply: apply, rows: rows, heads: heads, search: search, selects: selects};
  }
  function selftest(t) {  // #selftest: sort by ASR (click twice: descending), then filter
    var names = Array.prototype.map.call(t.heads, function (h) { return h.textContent; });
    var col = names.indexOf("ASR") >= 0 ? names.indexOf("ASR") : names.length - 1;
    t.sortBy(col); t.sortBy(col);
    var v = t.rows.map(function (r) { return key(r.cells[col]); })
      .filter(function (x) { return typeof x === "number"; });
    var sorted = v.every(function (x, i) { return i === 0 || v[i - 1] >= x; });
    t.search.value = "\\u0001 no such line"; t.apply();
    var none = t.rows.every(function (r) { return r.hidden; });
    t.search.value = ""; t.apply();
    return (sorted && none ? "pass" : "fail") + ": " + v.length + " rows sorted by " + names[col] +
      " descending: " + sorted + "; unmatched filter hides all: " + none;
  }
  var results = Array.prototype.map.call(document.querySelectorAll("section.suite"), function (sec) {
    var t = setup(sec);
    if (location.hash !== "#selftest") return "pass";
    var out = selftest(t); sec.querySelector("output.selftest").textContent = out; return out;
  });
  document.body.dataset.ready = results.length;
  var passed = results.every(function (r) { return r.indexOf("pass") === 0; });
  if (location.hash === "#selftest") document.body.dataset.selftest = passed ? "pass" : "fail";
})();
"""


@dataclass(frozen=True)
class SuiteReport:
    """What one suite's section is built from: its rows (all runs, ok and error) and lines."""

    name: str
    rows: list[TrialRow]
    used: list[TrialRow]  # the latest ok row per trial: what the lines aggregate
    lines: list[Line]
    figure: bytes | None  # PNG
    notes: list[str]


def collect(store: str | Path, suite: str | None = None) -> list[SuiteReport]:
    """One report per suite in the store (or just `suite`), figures rendered in memory."""
    from pe_bench.report.plot.figure import figure, png_bytes, points
    from pe_bench.store.results import all_rows, failed_trials, latest_ok, no_ok_rows, scan

    table = scan(Path(store))
    names = [suite] if suite else sorted(set(table.column("suite").to_pylist()))
    reports = []
    for name in names:
        part = table.filter(pc.equal(table["suite"], name))
        used = latest_ok(part)
        if not used:
            continue
        pts, notes = points(used)
        png = png_bytes(figure(pts, f"{name}: attack success vs accuracy")) if pts else None
        lines = aggregate(used, failed_trials(part), families=store_families(store))
        reports.append(SuiteReport(name, all_rows(part), used, lines, png, notes))
    if not reports:
        raise no_ok_rows(store, suite)
    return reports


def line_record(line: Line) -> dict[str, tuple[type, Any]]:
    """A line as typed Parquet fields, every column's (stats -> `<key>_mean`/`_std`, intervals
    -> `<key>_mean`/`_low`/`_high`/`_p`/`_p_holm`/`_units`, names and counts as themselves)."""
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


def _tr(values: Sequence[Any], attrs: str = "", tag: str = "td") -> str:
    """A table row of escaped text."""
    return f"<tr{attrs}>" + "".join(f"<{tag}>{escape(str(v))}</{tag}>" for v in values) + "</tr>"


def _html_board(lines: Sequence[Line]) -> str:
    head = "".join(f'<th scope="col"{_filter(c)}>{escape(c.header)}</th>' for c in BOARD)
    body = "\n".join(_tr([c.cell(ln) for c in BOARD], "" if ln.published else ' class="draft"')
                     for ln in lines)
    return f'<table class="board"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def _filter(column: Column) -> str:
    return f' data-filter="{escape(column.header)}"' if column.filter else ""


def _when(value: Any) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _html_provenance(report: SuiteReport) -> str:
    """One line per run in the store: rows, what the board uses, versions, commit, host, end."""
    used = {(r.trial_key, r.run_id) for r in report.used}
    runs: dict[str, list[TrialRow]] = {}
    for row in report.rows:
        runs.setdefault(row.run_id, []).append(row)
    head = ["run", "ok", "errors", "used", *(label for label, _ in PROVENANCE), "finished"]
    body = []
    for run_id, rows in sorted(runs.items(), key=lambda kv: max(r.finished_at for r in kv[1])):
        values = [", ".join(sorted({str(get(r)) for r in rows if get(r)})) or "-" for _, get in PROVENANCE]
        counts = [sum(r.status == "ok" for r in rows), sum(r.status != "ok" for r in rows),
                  sum((r.trial_key, r.run_id) in used for r in rows)]
        finished = _when(max(r.finished_at for r in rows))
        body.append(_tr([run_id, *counts, *values, finished]))
    return ('<footer class="prov"><h3>Provenance</h3><div class="scroll"><table><thead>'
            f'{_tr(head, tag="th")}</thead><tbody>{"".join(body)}</tbody></table></div></footer>')


def _html_section(report: SuiteReport, idx: int) -> str:
    name = escape(report.name)
    if report.figure:
        data = base64.b64encode(report.figure).decode("ascii")
        fig = (f'<figure><img src="data:image/png;base64,{data}" alt="ASR vs PA, suite {name}">'
               '<figcaption class="note">ASR vs PA per defense setting, mean ± std over seeds'
               "</figcaption></figure>")
    else:
        fig = '<p class="note">No attacked lines with ASR and PA: no trade-off figure.</p>'
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    return (f'<section class="suite" id="suite-{idx}"><h2>Suite <code>{name}</code></h2>'
            f'<p class="meta">{len(report.lines)} leaderboard lines from {len(report.used)} trials '
            f"(latest ok row of each)</p>"
            '<div class="controls"><input class="search" type="search" placeholder="filter lines…" '
            'aria-label="filter lines"><span class="filters"></span><span class="count"></span></div>'
            f'<div class="scroll">{_html_board(report.lines)}</div>'
            f'<p class="note">{escape(footnote(BOARD))}</p>'
            f'<output class="selftest"></output>{fig}'
            + (f'<ul class="note">{notes}</ul>' if notes else "") + _html_provenance(report) + "</section>")


def html_page(reports: Sequence[SuiteReport]) -> str:
    """The whole page: one section per suite; no external resource of any kind."""
    names = ", ".join(r.name for r in reports)
    nav = " · ".join(f'<a href="#suite-{i}">{escape(r.name)}</a>' for i, r in enumerate(reports))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>pe-bench results: {escape(names)}</title><style>{CSS}</style></head><body>"
            f'<header><h1>pe-bench results</h1><p class="meta">Generated {now} from the results store; '
            f"suites: {nav}</p></header>\n"
            + "\n".join(_html_section(r, i) for i, r in enumerate(reports))
            + f"\n<script>{JS}</script></body></html>\n")


def publish(store: str | Path, out: str | Path, suite: str | None = None) -> list[Path]:
    """Write the four published files into `out`; returns their paths."""
    reports = collect(store, suite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / n for n in ("leaderboard.md", "leaderboard.csv", "leaderboard.parquet", "index.html")]
    md = "\n".join(to_markdown(r.lines, f"pe-bench leaderboard: {r.name}") for r in reports)
    paths[0].write_text(md, encoding="utf-8")
    paths[1].write_text(to_csv(reports), encoding="utf-8", newline="")
    pq.write_table(lines_table(reports), paths[2])
    paths[3].write_text(html_page(reports), encoding="utf-8")
    return paths
