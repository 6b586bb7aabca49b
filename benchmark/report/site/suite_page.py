"""One suite's page: per setup (dataset, encoder, task, attack family) its effect matrices as
heat maps, each with the papers' headlines of its attacks and a drill-down per cell, then the
board's small tables (ASR and utility, detection, cost); the legend, the trade-off figure and
the provenance. Every table comes from pe_bench.report.matrix (`board`, `cell_lines`)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from pe_bench.report.leaderboard import labels_note
from pe_bench.report.lines import Line
from pe_bench.report.matrix import LEGEND, Setup, board, cell_lines, effect_matrices, setups
from pe_bench.report.site.drill import SeedIndex, section
from pe_bench.report.site.heatmap import heatmap, matrix_attacks, scale
from pe_bench.report.site.markup import generated, items, link, page, small, text
from pe_bench.report.site.papers import references
from pe_bench.report.site.provenance import provenance
from pe_bench.report.site.suites import SuiteReport

BOARD_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.parquet")
METRICS_DOC = "docs/metrics.md"


def _setup(k: int, setup: Setup, members: Sequence[Line], anchors: Mapping[int, str], index: SeedIndex
           ) -> str:
    """The setup's heat maps (each with its attacks' references), its drill-downs, its small tables."""
    tables = board(members)
    matrices = len(effect_matrices(members))
    cells = cell_lines(members).get(setup, {})
    back = f"setup-{k}"
    parts = [f'<section class="setup" id="{back}"><h2>{text(" · ".join(setup))}</h2>']
    for matrix in tables[:matrices]:
        parts += [heatmap(matrix, cells, anchors), references(matrix_attacks(matrix, cells))]
    parts += [section(ln, anchors[id(ln)], back, index.of(ln)) for ln in cells.values()]
    parts += [small(t) for t in tables[matrices:]]
    return "".join([*parts, "</section>"])


def _header(report: SuiteReport, setups: Sequence[Setup]) -> str:
    seeds = ", ".join(map(str, report.seed_values))
    labels = labels_note(report.lines)  # what the tables' setting labels leave out
    contents = [link(f"#setup-{k}", " · ".join(s)) for k, s in enumerate(setups)]
    contents += [link("#legend", "legend"), link("#figure", "figure"), link("#provenance", "provenance")]
    return (f'<nav>{link("index.html", "all suites")}</nav><h1>Suite <code>{text(report.name)}</code></h1>'
            + (f'<p>{text(report.description)}</p>' if report.description else "") +
            f'<p class="meta">{len(report.lines)} leaderboard lines from {len(report.used)} trials (the '
            f"latest ok row of each), {len(report.failed)} trial(s) that only failed; seeds {text(seeds)}; "
            f"runs {text(', '.join(report.run_ids))}; generated {generated()} from the results store</p>"
            + (f'<p class="meta">{text(labels)}</p>' if labels else "") +
            f'<p class="meta">{text(report.comparisons)}</p>'
            + (f'<p class="meta">{text(report.evidence)}</p>' if report.evidence else "") +
            f'<p class="meta">every column of every line: {", ".join(link(f, f) for f in BOARD_FILES)}</p>'
            f'<p class="meta">contents: {" · ".join(contents)}</p>')


def _legend(metrics: str | None) -> str:
    doc = link(metrics, METRICS_DOC) if metrics else f"<code>{METRICS_DOC}</code> in the pe-bench source"
    return (f'<section id="legend"><h2>Legend</h2>{items(list(LEGEND))}{scale()}'
            f'<p class="note">click a cell for its per-seed numbers, intervals and p-values; '
            f"definitions of every metric: {doc}</p></section>")


def _figure(report: SuiteReport) -> str:
    if report.figure:
        data = base64.b64encode(report.figure).decode("ascii")
        fig = (f'<figure><img src="data:image/png;base64,{data}" alt="ASR vs PA, suite {text(report.name)}">'
               '<figcaption class="note">ASR vs PA per defense setting, mean ± std over seeds'
               "</figcaption></figure>")
    else:
        fig = '<p class="note">No attacked lines with ASR and PA: no trade-off figure.</p>'
    return f'<section id="figure"><h2>Trade-off</h2>{fig}{items(report.notes)}</section>'


def suite_page(report: SuiteReport, metrics: str | None = None) -> str:
    """The page of `report`; `metrics`: where the metric definitions are, relative to the page
    (None: not published beside it)."""
    anchors = {id(ln): f"cell-{i}" for i, ln in enumerate(report.lines)}
    groups = setups(report.lines)
    index = SeedIndex(report.seeds)
    body = [_header(report, list(groups))]
    body += [_setup(k, setup, members, anchors, index)
             for k, (setup, members) in enumerate(groups.items())]
    body += [_legend(metrics), _figure(report), provenance(report)]
    return page(f"pe-bench: suite {report.name}", "\n".join(body), script=True)
