"""The papers' published headlines (pe_bench.report.references) of the attacks a matrix holds,
shown under it: their settings and numbers as the papers give them, never pe-bench's."""

from __future__ import annotations

from collections.abc import Sequence

from pe_bench.report.references import SOURCE, Reference, of_attacks
from pe_bench.report.site.markup import code, text

HEAD = ("attack", "paper", "their setting (dataset, encoder)", "poisons / budget", "CA",
        "ASR or their metric", "where, source read")


def _cells(ref: Reference) -> tuple[str, ...]:
    attack = f"`{ref.attack}`" + (f" {ref.variant}" if ref.variant else "")
    return (attack, ref.paper, ref.setting, ref.budget, ref.ca, ref.metric, ref.source)


def references(attacks: Sequence[str]) -> str:
    """The rows of `attacks` (plugin names) as a table; nothing when none has a row."""
    refs = of_attacks(attacks)
    if not refs:
        return ""
    head = "".join(f'<th scope="col">{text(h)}</th>' for h in HEAD)
    body = "".join("<tr>" + "".join(f"<td>{code(c)}</td>" for c in _cells(ref)) + "</tr>" for ref in refs)
    caption = (f"published headlines of these attacks ({SOURCE}): the papers' settings and metrics, "
               "not this matrix's")
    return (f'<div class="scroll"><table class="refs"><caption>{text(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
