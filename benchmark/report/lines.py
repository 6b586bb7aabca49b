"""The leaderboard line: one (cell, task) aggregated over seeds, and the paired units it rests on.
Every report module reads it; it imports nothing of theirs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pe_bench.report.stats import Interval

MIN_SEEDS = 3
Member = tuple[dict[str, Any], dict[str, Any]]  # (store row, one task view of it)
TargetId = tuple[str, int, int]
Outcome = tuple[int, TargetId, Mapping[str, Any]]  # (seed, target identity, the pair's fields)


@dataclass(frozen=True)
class Line:
    """One aggregated leaderboard line: per column key, mean ± std over seeds (`stats`) or a
    paired bootstrap interval (`intervals`), as pe_bench.report.columns declares."""

    dataset: str
    encoder: str
    attack: str
    selection: str
    defense: str
    task: str
    seeds: int
    n_poisons: float | None
    pairs: int
    successes: int
    successes_clean: int
    stats: dict[str, tuple[float, float] | None]
    intervals: dict[str, Interval | None]
    failed: int = 0  # trials of this cell with only error rows
    defense_params: str = "{}"
    attack_params: str = "{}"
    attack_label: str = ""  # the attack with the params that differ between its lines
    defense_label: str = ""  # likewise for the defense
    distinct_pairs: int = 0  # distinct (task, index, target_class) over the line's seeds
    outcomes: tuple[Outcome, ...] = ()  # (seed, target, pair fields): what versus matches on
    versus: str = ""  # the attack the versus columns compare against
    family: str = "targeted"  # the attack's family (stores from before families: targeted)
    triggered: int = 0  # a backdoor's triggered test inputs over all seeds
    triggered_hits: int = 0  # of them assigned to the target class (this encoder)
    triggered_hits_clean: int = 0  # likewise on the clean twins
    pooled: dict[str, Any] = dataclasses.field(default_factory=dict)  # `pooled` columns' values

    @property
    def published(self) -> bool:
        return self.seeds >= MIN_SEEDS
