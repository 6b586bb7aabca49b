"""One plotted point of the trade-off figure; the drawing modules read it."""

from __future__ import annotations

from dataclasses import dataclass

from pe_bench.report.lines import Line


@dataclass(frozen=True)
class Point:
    """One plotted line: `group` (its `setup` and `attack` setting) picks the colour,
    `setting` the defense (legend text)."""

    group: str
    setting: str
    reference: bool
    pa: tuple[float, float]  # (mean, std) over seeds
    asr: tuple[float, float]
    line: Line
    twin: tuple[float, float] | None = None  # the paired clean twins' (CA, clean ASR) means
    setup: str = ""  # what varies of dataset and encoder among the points ("" if neither does)
    attack: str = ""  # the attack setting, named by the params that tell its settings apart
