"""Expand a validated suite into trial specs: dataset × encoder × attack × defense × seed.

Excluded cells are never scheduled; they are returned with their reason so `validate` can show
them. Order matters for throughput: `none` attack cells come first (they train the clean
twins every poisoned cell needs), then seeds vary fastest so concurrent trials rarely wait on
the same twin.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from pe_bench.spec import TrialSpec
from pe_bench.suite import ExcludeRule, Suite


@dataclass(frozen=True)
class Excluded:
    spec: TrialSpec
    reason: str


@dataclass(frozen=True)
class Grid:
    trials: tuple[TrialSpec, ...]
    excluded: tuple[Excluded, ...]

    def pretrain_runs(self) -> int:
        """Unique clean pre-training runs (twins) the grid needs."""
        return len({t.pretrain_key(None) for t in self.trials})


def _matches(rule: ExcludeRule, spec: TrialSpec) -> bool:
    fields = {
        "dataset": spec.dataset,
        "encoder": spec.encoder.name,
        "attack": spec.attack.name,
        "defense": spec.defense.name,
    }
    wanted = {k: getattr(rule, k) for k in fields if getattr(rule, k) is not None}
    return bool(wanted) and all(fields[k] == v for k, v in wanted.items())


def expand(suite: Suite) -> Grid:
    trials: list[tuple[tuple[bool, int], TrialSpec]] = []
    excluded: list[Excluded] = []
    combos = itertools.product(
        suite.datasets, suite.encoders, enumerate(suite.attacks), suite.defenses, suite.seeds
    )
    for setting, encoder, (a_idx, attack), defense, seed in combos:
        spec = TrialSpec(
            suite=suite.name,
            dataset=setting.name,
            seed=seed,
            pretrain=setting.pretrain,
            tasks=setting.tasks,
            encoder=encoder,
            attack=attack,
            defense=defense,
            train=suite.train_for(setting),
            evaluation=suite.evaluation,
            plugins=suite.plugins,
        )
        rule = next((r for r in suite.exclude if _matches(r, spec)), None)
        if rule is not None:
            excluded.append(Excluded(spec, rule.reason))
        else:
            trials.append(((attack.name != "none", a_idx), spec))
    trials.sort(key=lambda pair: pair[0])  # stable: seeds still vary fastest within an attack
    return Grid(tuple(spec for _, spec in trials), tuple(excluded))
