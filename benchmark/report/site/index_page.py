"""The site's index: every published suite with its trials, seeds, runs and the note on where
its comparisons come from, each linking to its page; and the leaderboard files beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pe_bench.report.site.markup import generated, link, page, text
from pe_bench.report.site.suite_page import BOARD_FILES
from pe_bench.report.site.suites import SuiteReport

HEAD = ("suite", "description", "lines", "trials", "failed trials", "seeds", "runs", "comparisons")


def _row(report: SuiteReport, href: str) -> str:
    values = (len(report.lines), len(report.used), len(report.failed),
              ", ".join(map(str, report.seed_values)), ", ".join(report.run_ids))
    note = report.comparisons.removeprefix("comparisons: ")
    return (f"<tr><td>{link(href, report.name)}</td><td class=\"wrap\">{text(report.description or '-')}</td>"
            + "".join(f"<td>{text(v)}</td>" for v in values) + f'<td class="wrap">{text(note)}</td></tr>')


def index_page(reports: Sequence[SuiteReport], pages: Mapping[str, str]) -> str:
    """The index of `reports`; `pages` maps each suite's name to its page's file name."""
    head = "".join(f'<th scope="col">{text(h)}</th>' for h in HEAD)
    body = "".join(_row(r, pages[r.name]) for r in reports)
    files = ", ".join(link(f, f) for f in BOARD_FILES)
    return page("pe-bench results", (
        f'<h1>pe-bench results</h1><p class="meta">{len(reports)} suite(s), generated {generated()} '
        "from the results store. Each suite's page holds its attack × defense matrices (colour: ΔASR "
        "vs the clean twin; mark: the verdict of the cell's declared test; click a cell for its "
        "per-seed numbers), the papers' published numbers beside them, the small tables, the "
        "trade-off figure and the provenance.</p>"
        f'<div class="scroll"><table class="suites"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f'</table></div><p class="meta">every line of every suite, every column: {files}</p>'))
