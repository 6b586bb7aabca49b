"""Expand a validated suite into trial specs: dataset × encoder × attack × defense × seed.

Excluded cells (by the suite's `exclude` rules, or because the attack's injected data lacks a
modality the encoder trains on) are never scheduled; they are returned with their reason so
`validate` can show them. Order matters for throughput: `none` attack cells come first (they train the clean
twins every poisoned cell needs), then seeds vary fastest so concurrent trials rarely wait on
the same twin.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pe_bench.registry import ATTACKS, DEFENSES, ENCODERS
from pe_bench.spec import TrialSpec, resolve_recipe
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

    def pretraining(self) -> dict[str, int]:
        """Unique pre-training runs by kind: clean twins, undefended poisoned encoders (shared
        by every defense of a cell), and the encoders defenses train themselves (one per
        cell and seed whose defense filters, changes the recipe or partitions; a partition
        ensemble counts once here though it trains k) plus post-processing repairs."""
        poisoned = {t.pretrain_key(t.poison_id()) for t in self.trials if t.poison_id() is not None}
        own, repairs = set(), set()
        for t in self.trials:
            hooks = DEFENSES.metadata(t.defense.name).hooks
            ident = (t.pretrain_key(t.poison_id()), t.defense.model_dump_json())
            if set(hooks) & {"sanitize", "configure_training", "partition"}:
                own.add(ident)
            if "repair" in hooks:
                repairs.add(ident)
        return {"clean": self.pretrain_runs(), "poisoned": len(poisoned), "defense": len(own),
                "repair": len(repairs)}


def _matches(rule: ExcludeRule, spec: TrialSpec) -> bool:
    fields = {
        "dataset": spec.dataset,
        "encoder": spec.encoder.name,
        "attack": spec.attack.name,
        "defense": spec.defense.name,
    }
    wanted = {k: getattr(rule, k) for k in fields if getattr(rule, k) is not None}
    return bool(wanted) and all(fields[k] == v for k, v in wanted.items())


def incompatibility(spec: TrialSpec) -> str | None:
    """Why a cell cannot run (and is excluded rather than failed), or None; from the plugins'
    declared metadata, so no plugin module (or torch) is imported."""
    encoder = ENCODERS.metadata(spec.encoder.name)
    attack = ATTACKS.metadata(spec.attack.name)
    missing = set(encoder.modalities) - set(attack.modalities)
    if attack.modalities and missing:
        return (f"attack {spec.attack.name} injects {'+'.join(attack.modalities)} data; encoder "
                f"{spec.encoder.name} trains on {'+'.join(encoder.modalities)}")
    if spec.evaluation.probe == "zero-shot" and "text" not in encoder.modalities:
        return f"zero-shot evaluation needs a text encoder; {spec.encoder.name} has none"
    return None


def optimizer_defaults(encoder: str) -> dict[str, Any]:
    """The encoder method's own optimiser settings, for whatever a suite leaves unset (its
    declared metadata: the encoder is not imported)."""
    return dict(ENCODERS.metadata(encoder).optimizer_defaults)


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
            train=resolve_recipe(suite.train, setting.train, optimizer_defaults(encoder.name)),
            evaluation=suite.evaluation,
            plugins=suite.plugins,
        )
        rule = next((r for r in suite.exclude if _matches(r, spec)), None)
        reason = rule.reason if rule is not None else incompatibility(spec)
        if reason is not None:
            excluded.append(Excluded(spec, reason))
        else:
            trials.append(((attack.name != "none", a_idx), spec))
    trials.sort(key=lambda pair: pair[0])  # stable: seeds still vary fastest within an attack
    return Grid(tuple(spec for _, spec in trials), tuple(excluded))
