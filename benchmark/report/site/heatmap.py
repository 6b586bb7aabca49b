"""An effect matrix (pe_bench.report.matrix.effect_matrices) as a heat map: each cell's text is
the matrix's own, its colour the ΔASR vs the clean twin its line carries (a diverging scale:
blue below 0, white at 0, red above, saturated at ±1), its class the verdict its mark reads
(pe_bench.report.matrix.mark), and it links to the line's drill-down (`#cell-<n>`)."""

from __future__ import annotations

from collections.abc import Mapping

from pe_bench.report.lines import Line
from pe_bench.report.matrix import MARKS, Table, mark
from pe_bench.report.site.markup import text

WHITE = (255, 255, 255)
ABOVE = (178, 24, 43)  # ΔASR > 0: the attack works better than on the twin
BELOW = (33, 102, 172)  # ΔASR < 0
DARK = 0.55  # from this share of the scale on, the text is white
VERDICTS = {sign: verdict.replace(".", "") for verdict, sign in MARKS.items()}  # else: untested
Cells = Mapping[tuple[str, str], Line]  # (defense, attack) as the matrix labels them -> its line


def colour(effect: float) -> str:
    """The heat map's colour of a ΔASR: white at 0, the end colour at ±1 and beyond."""
    share = min(1.0, abs(effect))
    end = ABOVE if effect > 0 else BELOW
    r, g, b = (round(w + share * (e - w)) for w, e in zip(WHITE, end, strict=True))
    return f"rgb({r},{g},{b})"


def _style(line: Line) -> str:
    effect = line.intervals.get("delta_asr")
    if effect is None:
        return ""
    ink = "#fff" if abs(effect.mean) >= DARK else "#1d1d1f"
    return f' style="background:{colour(effect.mean)};color:{ink}"'


def _cell(shown: str, line: Line | None, anchor: str) -> str:
    if line is None:
        return f'<td class="cell empty">{text(shown)}</td>'
    sign = mark(line)
    what = f"{line.attack_label or line.attack} under {line.defense_label or line.defense}: per-seed numbers"
    return (f'<td class="cell v-{VERDICTS.get(sign, "untested")}" data-mark="{text(sign.strip())}"'
            f'{_style(line)}><a href="#{text(anchor)}" title="{text(what)}">{text(shown)}</a></td>')


def heatmap(matrix: Table, cells: Cells, anchors: Mapping[int, str]) -> str:
    """The matrix as a table: a row per defense, a column per attack; `anchors` maps each
    line (by id) to its drill-down's id."""
    attacks = matrix.headers[1:]
    head = "".join(f'<th scope="col">{text(h)}</th>' for h in matrix.headers)
    body = []
    for defense, *shown in matrix.rows:
        found = [cells.get((defense, attack)) for attack in attacks]
        tds = "".join(_cell(s, ln, "" if ln is None else anchors[id(ln)])
                      for s, ln in zip(shown, found, strict=True))
        body.append(f'<tr><th scope="row">{text(defense)}</th>{tds}</tr>')
    return (f'<h3>{text(matrix.title)}</h3><div class="scroll"><table class="heatmap" '
            f'aria-label="{text(matrix.title)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
            "</tbody></table></div>")


def matrix_attacks(matrix: Table, cells: Cells) -> list[str]:
    """The attacks (plugin names) of the matrix's columns, in column order."""
    names = [ln.attack for shown in matrix.headers[1:]
             for (_, attack), ln in cells.items() if attack == shown]
    return list(dict.fromkeys(names))


def scale() -> str:
    """The colour scale's key."""
    return ('<p class="scale"><span>ΔASR −1</span><span class="bar"></span><span>+1</span>'
            "<span>colour = the cell's ΔASR vs its clean twin (white: 0; blue: below the twin, "
            "red: above); a framed bold cell: its declared test is supported</span></p>")
