"""The site's HTML building blocks: every value goes in as escaped text (names from suites,
plugins and rows are data, never markup); a page is one document with its CSS (and, where
asked, its script) inline, so it opens from a file share with no network."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from pe_bench.report.matrix import Table
from pe_bench.report.site.style import CSS, DRILL_JS


def text(value: Any) -> str:
    """`value` as escaped text (quotes too: safe inside an attribute)."""
    return escape(str(value))


def code(value: str) -> str:
    """Escaped text whose `backquoted` spans (as Markdown writes code) become <code>."""
    parts = text(value).split("`")
    if len(parts) % 2 == 0:  # an unpaired backquote: leave the text as it is
        return text(value)
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def row(values: Sequence[Any], tag: str = "td", attrs: str = "") -> str:
    """A table row of escaped cells."""
    return f"<tr{attrs}>" + "".join(f"<{tag}>{text(v)}</{tag}>" for v in values) + "</tr>"


def table(headers: Sequence[Any], rows: Sequence[Sequence[Any]], cls: str = "", caption: str = "") -> str:
    """A scrollable table of escaped text (headers, rows; an optional caption)."""
    head = "".join(f'<th scope="col">{text(h)}</th>' for h in headers)
    body = "".join(row(r) for r in rows)
    cap = f"<caption>{text(caption)}</caption>" if caption else ""
    attrs = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{attrs}>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def small(t: Table) -> str:
    """One of the board's small tables (ASR and utility, detection, cost)."""
    return table(t.headers, t.rows, "small", t.title)


def link(href: str, label: str) -> str:
    return f'<a href="{text(href)}">{text(label)}</a>'


def items(values: Sequence[str], cls: str = "note") -> str:
    """A list of escaped lines (nothing when there is none)."""
    return f'<ul class="{cls}">' + "".join(f"<li>{text(v)}</li>" for v in values) + "</ul>" if values else ""


def generated() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def page(title: str, body: str, script: bool = False) -> str:
    """A whole document: `title` (escaped here), `body` (markup), inline CSS; `script`: the
    drill-down check (which drill-down the browser shows, on the body's data-drill-shown)."""
    js = f"<script>{DRILL_JS}</script>" if script else ""
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>{text(title)}</title><style>{CSS}</style></head><body>\n{body}\n{js}</body></html>\n")
