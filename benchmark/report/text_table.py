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


def rich(title: str, headers: Sequence[str], cells: Cells, note: str) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=note, box=box.SIMPLE_HEAD, show_edge=False, caption_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table
