"""The site's files: `index.html`, one `<suite>.html` per suite (a suite name that is no safe
file name, or would collide with another page, gets `suite-<hash>.html`), and `metrics.html`,
the metric definitions (docs/metrics.md as text) when the pe-bench source is at hand, so the
legend's link works from a file share too."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from pe_bench.report.site.index_page import index_page
from pe_bench.report.site.markup import page, text
from pe_bench.report.site.suite_page import METRICS_DOC, suite_page
from pe_bench.report.site.suites import SuiteReport

SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}")
RESERVED = {"index", "metrics"}
METRICS_PAGE = "metrics.html"


def page_names(names: Sequence[str]) -> dict[str, str]:
    """Each suite's page file name: `<suite>.html`, else `suite-<hash>.html` (unsafe, reserved,
    or equal to an earlier one but for letter case)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        plain = f"{name}.html"
        if not SAFE.fullmatch(name) or name.lower() in RESERVED or plain.lower() in taken:
            plain = f"suite-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:12]}.html"
        out[name] = plain
        taken.add(plain.lower())
    return out


def metrics_source() -> Path | None:
    """docs/metrics.md of the pe-bench source this package runs from (None: installed without it)."""
    found = Path(__file__).resolve().parents[3] / METRICS_DOC
    return found if found.is_file() else None


def _metrics_page(source: Path) -> str:
    return page("pe-bench: metrics", f'<p class="meta">{text(METRICS_DOC)}, as published with the '
                f"results</p><pre>{text(source.read_text(encoding='utf-8'))}</pre>")


def write_site(reports: Sequence[SuiteReport], out: Path) -> list[Path]:
    """Write the index, each suite's page and the metric definitions into `out`; their paths."""
    pages = page_names([r.name for r in reports])
    source = metrics_source()
    written = [out / "index.html"]
    written[0].write_text(index_page(reports, pages), encoding="utf-8")
    for report in reports:
        path = out / pages[report.name]
        path.write_text(suite_page(report, METRICS_PAGE if source else None), encoding="utf-8")
        written.append(path)
    if source:
        written.append(out / METRICS_PAGE)
        written[-1].write_text(_metrics_page(source), encoding="utf-8")
    return written
