"""A plain table (headers and string cells) as Markdown, CSV or a rich table: the shared output
of the tables that list stored rows as they are (`--by-seed`, `--defense-pairs`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

Cells = Sequence[Sequence[str]]


def markdown(title: str, source: str, headers: Sequence[str], cells: Cells, note: str) -> str:
    out = [f"# {title}", "", *([source, ""] if source else []),
           "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join([*out, "", note, ""])


def csv_text(headers: Sequence[str], cells: Cells) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(headers)
    writer.writerows(cells)
    return buf.getvalue()


GAP = 2  # spaces between terminal columns (one of them the box's column divider)


def _lifted(headers: Sequence[str], cells: Cells) -> tuple[list[int], list[str]]:
    """Columns whose every cell is one value go into the title (`header value`); the others stay."""
    keep, lifted = [], []
    for i, header in enumerate(headers):
        values = {row[i] for row in cells}
        if len(cells) > 1 and len(values) == 1:
            lifted.append(f"{header} {values.pop()}")
        else:
            keep.append(i)
    return keep, lifted


def _chunks(widths: Sequence[int], keys: int, width: int) -> list[list[int]]:
    """Column groups (indices into `widths`) that each fit `width`, every group repeating the
    first `keys` columns (fewer where they would take more than half the width); a column wider
    than the room left gets a group of its own."""
    head = list(range(min(keys, len(widths))))
    while len(head) > 1 and sum(widths[i] + GAP for i in head) > width // 2:
        head.pop()
    room = width - sum(widths[i] + GAP for i in head)
    groups: list[list[int]] = []
    used = room
    for i in range(len(head), len(widths)):
        if not groups or used + widths[i] + GAP > room:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += widths[i] + GAP
    return [head + g for g in groups] or [head]


def rich(title: str, headers: Sequence[str], cells: Cells, note: str, width: int = 120,
         keys: int = 0, lift: bool = True) -> Any:
    """Rich tables `width` columns wide in which no cell is ever wrapped or cut: columns holding
    one value go into the title (unless not `lift`), and a table still too wide is split into
    stacked tables that each repeat the first `keys` remaining columns (the row's identity)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table

    keep, lifted = _lifted(headers, cells) if lift else (list(range(len(headers))), [])
    widths = [max([len(headers[i]), *(len(row[i]) for row in cells)]) for i in keep]
    title = " · ".join([title, *lifted])
    groups = _chunks(widths, sum(i < keys for i in keep), width)
    tables = []
    for n, group in enumerate(groups):
        last = n == len(groups) - 1
        table = Table(title=(title or None) if n == 0 else None, caption=(note or None) if last else None, box=box.SIMPLE_HEAD,
                      show_edge=False, pad_edge=False, padding=(0, 0, 0, GAP - 1), caption_justify="left")
        for j in group:
            table.add_column(headers[keep[j]], no_wrap=True, min_width=widths[j])
        for row in cells:
            table.add_row(*(row[keep[j]] for j in group))
        tables.append(table)
    return Group(*tables)
