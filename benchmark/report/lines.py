"""What the report's tables are made of, typed: a trial's view of one task (`TaskView`), the
leaderboard line aggregating a cell's views over seeds (`Line`), one trial's line of the
per-seed table (`SeedLine`) and two defense settings compared (`PairLine`). Every report
module reads them; this module imports none of theirs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa

from pe_bench.report.stats import Interval
from pe_bench.store.metrics import DefenseReport, Metrics, TargetOutcome
from pe_bench.store.schema import TrialRow, arrow_type

MIN_SEEDS = 3
TargetId = tuple[str, int, int]  # (task, index, target class): a target pair's identity


@dataclass(frozen=True)
class Target:
    """One target pair of a view, with the task it was drawn in (a pooled view holds several)."""

    task: str
    outcome: TargetOutcome

    @property
    def identity(self) -> TargetId:
        return (self.task, self.outcome.index, self.outcome.target_class)


@dataclass(frozen=True)
class TaskView:
    """One trial's numbers on one task, or pooled over its tasks (`task` "all"): the task's
    metrics (or the trial's pooled ones), the trial's defense report (whatever the task), its
    target pairs, and a backdoor's target class in the task (None pooled, or targeted)."""

    task: str
    metrics: Metrics
    defense: DefenseReport
    targets: tuple[Target, ...]
    trigger_target: int | None = None

    @property
    def hits_clean(self) -> int:
        """Target pairs the paired clean twin hit."""
        return sum(t.outcome.hit_clean for t in self.targets)

    def number(self, name: str) -> float | None:
        """The metric or defense-report number `name` (one of `NUMBERS`: a column's key)."""
        model: Any = self.metrics if name in Metrics.model_fields else self.defense
        return cast(float | None, getattr(model, name))


# the fields `TaskView.number` reads: every number of the metrics and of the defense report
NUMBERS = frozenset(name for model in (Metrics, DefenseReport) for name, info in model.model_fields.items()
                    if arrow_type(info.annotation) in (pa.int64(), pa.float64()))


def task_views(row: TrialRow) -> list[TaskView]:
    """An ok row's view of each task, plus the pooled `all` view when there are several (CA/PA
    averaged over the tasks, rates pooled over every target pair: the row's own metrics)."""
    metrics = row.metrics
    if metrics is None:
        return []
    tasks = [TaskView(t.task, t, metrics.defense, tuple(Target(t.task, x) for x in t.targets),
                      t.trigger_target) for t in metrics.tasks]
    if len(tasks) == 1:
        return tasks
    return [*tasks, TaskView("all", metrics, metrics.defense, tuple(x for v in tasks for x in v.targets))]


Member = tuple[TrialRow, TaskView]  # (stored row, one task view of it)
Outcome = tuple[int, TargetId, TargetOutcome]  # (seed, target identity, the pair's outcome)


@dataclass(frozen=True)
class Line:
    """One aggregated leaderboard line: per column key, mean ± std over seeds (`stats`) or a
    paired Student-t interval over seeds (`intervals`), as pe_bench.report.columns declares."""

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
    n_distinct: float | None = None  # distinct poison images per trial (mean; None: not recorded)
    class_share: float | None = None  # poisons / clean images of the target classes (mean)
    defense_params: str = "{}"
    attack_params: str = "{}"
    attack_label: str = ""  # the attack with the params that differ between its lines
    defense_label: str = ""  # likewise for the defense
    distinct_pairs: int = 0  # distinct (task, index, target_class) over the line's seeds
    outcomes: tuple[Outcome, ...] = ()  # (seed, target, pair outcome): what versus matches on
    versus: str = ""  # the attack the versus columns compare against
    family: str = "targeted"  # the attack's family (stores from before families: targeted)
    label_params: tuple[str, ...] = ()  # the attack params its `selection` label shows (row-borne)
    designed_for: str | None = None  # yes / off-target / - as the rows carry it; None: unknown
    triggered: int = 0  # a backdoor's triggered test inputs over all seeds
    triggered_hits: int = 0  # of them assigned to the target class (this encoder)
    triggered_hits_clean: int = 0  # likewise on the clean twins
    pooled: dict[str, Any] = dataclasses.field(default_factory=dict)  # `pooled` columns' values
    suites: tuple[str, ...] = ()  # the suites its rows come from (its declared families: one suite's)
    cell_key: str = ""  # the cell its rows share (every setting but the seed)
    encoder_name: str = ""  # the encoder plugin's registry name (`encoder` is its board label)

    @property
    def published(self) -> bool:
        return self.seeds >= MIN_SEEDS


@dataclass(frozen=True)
class SeedLine:
    """One trial's numbers on one task, as stored (`leaderboard --by-seed`); each plugin named
    by the params that tell its settings apart among the table's lines (`*_label`)."""

    row: TrialRow
    view: TaskView
    attack_label: str = ""
    defense_label: str = ""
    encoder_label: str = ""

    @property
    def attack(self) -> str:
        return self.row.attack

    @property
    def defense(self) -> str:
        return self.row.defense


@dataclass(frozen=True)
class PairLine:
    """Defense settings `first` and `second` of one attack and setup, over their common seeds
    (`leaderboard --defense-pairs`)."""

    setup: tuple[str, str, str]  # dataset, encoder label, task
    attack: str  # the attack label
    first: str  # defense labels
    second: str
    seeds: int
    asr_first: float | None
    asr_second: float | None
    d_asr: Interval | None
    d_pa: Interval | None
    names: tuple[str, str, str] = ("", "", "")  # attack, defense A, defense B: plugin names
    encoder_name: str = ""  # the encoder plugin's registry name
    suites: tuple[str, ...] = ()  # the suites its rows come from
    attack_params: str = "{}"  # the attack's params (JSON): what a family's params filter reads
