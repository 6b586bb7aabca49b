"""Synthetic trial rows and stores for the store, leaderboard, plot and publish tests: valid
metric models with chosen hits, built without training (no torch, no Ray)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pe_bench.store.metrics import (
    DefenseReport,
    EncoderInfo,
    TargetOutcome,
    TaskMetrics,
    Timings,
    TrialMetrics,
    trigger_rates,
)
from pe_bench.config.spec import TRAINING_REVISION
from pe_bench.store.results import append, build_row
from pe_bench.store.schema import TrialRow
from pe_bench.store.upgrade import read_row
from pe_bench.config.spec import EvalSpec, PluginRef, PretrainSpec, TaskSpec, TrainSpec, TrialSpec

PROV = {"training_revision": TRAINING_REVISION, "pe_bench_version": "0.1.0", "torch_version": "2.14.1", "ray_version": "2.60.0",
        "python_version": "3.11.9", "git_commit": "abc1234"}
ATTACK = {"selection": "random", "poison_rate": 0.05}
NO_DEFENSE = DefenseReport(defense_hooks="", n_encoders=1)
# (attack, attack params, defense, defense params) of make_store's main suite
CELLS = [("none", {}, "none", {}),
         ("poisoned-encoder", ATTACK, "none", {}),
         ("poisoned-encoder", ATTACK, "prune", {"threshold": 0.5}),
         ("poisoned-encoder", ATTACK, "prune", {"threshold": 0.9}),
         ("duplicate", ATTACK, "none", {}),
         ("duplicate", ATTACK, "prune", {"threshold": 0.5})]


def trial(suite: str = "unit", dataset: str = "digits", tasks: Sequence[str] = ("digits",), seed: int = 0,
          cell: tuple[str, dict[str, Any], str, dict[str, Any]] = CELLS[1],
          encoder: PluginRef | None = None) -> TrialSpec:
    attack, attack_params, defense, defense_params = cell
    ds = PluginRef(name="digits")
    return TrialSpec(suite=suite, dataset=dataset, seed=seed, pretrain=PretrainSpec(dataset=ds),
                     tasks=tuple(TaskSpec(name=t, dataset=ds) for t in tasks),
                     encoder=encoder or PluginRef(name="simclr"),
                     attack=PluginRef(name=attack, params=attack_params),
                     defense=PluginRef(name=defense, params=defense_params),
                     train=TrainSpec(), evaluation=EvalSpec())


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def task(name: str, hits: Sequence[bool], ca: float = 0.9, pa: float = 0.88,
         undefended: Sequence[bool] | None = None, pa_undefended: float | None = None,
         hits_clean: Sequence[bool] | None = None) -> TaskMetrics:
    """One task whose target pairs hit as `hits` (p = 0.6 on a hit, else 0.2; clean p = 0.1)."""
    und = list(hits if undefended is None else undefended)
    clean = list(hits_clean or [False] * len(hits))
    targets = tuple(TargetOutcome(index=i, true_class=0, target_class=1, hit=h, hit_clean=c,
                                  hit_undefended=u, p=0.6 if h else 0.2, p_clean=0.1,
                                  p_undefended=0.6 if u else 0.2, rank=1 if h else 2, rank_clean=3)
                    for i, (h, u, c) in enumerate(zip(hits, und, clean, strict=True)))
    return TaskMetrics(task=name, n_classes=10, n_test=40, targets=targets, **_summary(targets, ca, pa,
                       pa if pa_undefended is None else pa_undefended))


def _summary(targets: Sequence[TargetOutcome], ca: float, pa: float, pa_u: float) -> dict[str, Any]:
    return {"ca": ca, "pa": pa, "pa_undefended": pa_u, "n_targets": len(targets),
            "successes": sum(t.hit for t in targets),
            "asr": _mean([t.hit for t in targets]), "baseline_asr": _mean([t.hit_clean for t in targets]),
            "asr_undefended": _mean([t.hit_undefended for t in targets]),
            "p_target": _mean([t.p for t in targets]), "p_target_clean": _mean([t.p_clean for t in targets]),
            "p_target_undefended": _mean([t.p_undefended for t in targets])}


def trial_metrics(tasks: Sequence[TaskMetrics], defense: DefenseReport = NO_DEFENSE,
                  n_poisons: int = 5) -> TrialMetrics:
    """A trial of `tasks`: CA/PA averaged over them, rates pooled over every pair."""
    pooled = _summary([t for x in tasks for t in x.targets], 0.0, 0.0, 0.0)
    pooled.update({k: sum(getattr(t, k) for t in tasks) / len(tasks) for k in ("ca", "pa", "pa_undefended")})
    return TrialMetrics(**pooled, n_pretrain=100, n_poisons=n_poisons, cache_hits=1, tasks=tuple(tasks),
                        defense=defense, timings=Timings(data=0.1, pretrain_clean=2.0),
                        encoder=EncoderInfo(device="cpu", train_images_per_s=10.0))


def metrics(hits: Sequence[bool], ca: float = 0.9, pa: float = 0.88) -> TrialMetrics:
    return trial_metrics([task("digits", hits, ca, pa)])


def row(seed: int, hits: Sequence[bool], run_id: str = "run1", age_s: float = 3.0,
        **kw: Any) -> dict[str, Any]:
    """An ok row of the one-task cell `unit`/poisoned-encoder at `seed`."""
    started = datetime.now(UTC) - timedelta(seconds=age_s)
    return build_row(trial(seed=seed), run_id, PROV, started, metrics(hits, **kw))


def error_row(seed: int, run_id: str = "run1", age_s: float = 3.0, message: str = "boom",
              cell: tuple[str, dict[str, Any], str, dict[str, Any]] = CELLS[1]) -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(seconds=age_s)
    return build_row(trial(seed=seed, cell=cell), run_id, PROV, started, None, message,
                     traceback="Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")


def typed(records: Iterable[Mapping[str, Any]]) -> list[TrialRow]:
    """Records (as `build_row` makes them, or as a store holds them) as the store reads rows
    back: validated models, what the report takes."""
    return [read_row(r) for r in records]


def _random_metrics(tasks: Sequence[str], seed: int, cell: tuple[Any, ...]) -> TrialMetrics:
    """Plausible numbers: a stronger defense (higher threshold) lowers ASR and costs PA."""
    attacked = cell[0] != "none"
    strength = 1.0 - cell[3].get("threshold", 0.0) * 0.8
    rng = random.Random(f"{seed}{cell}")
    per_task = []
    for name in tasks:
        hits = [rng.random() < strength for _ in range(4)] if attacked else []
        clean = [rng.random() < 0.1 for _ in hits]
        per_task.append(task(name, hits, 0.9 + rng.uniform(-0.02, 0.02),
                             0.88 - 0.1 * (1 - strength) + rng.uniform(-0.02, 0.02), hits_clean=clean))
    hooks = "sanitize" if cell[2] != "none" else ""
    return trial_metrics(per_task, DefenseReport(defense_hooks=hooks, n_encoders=1, n_removed=3),
                         n_poisons=26 if attacked else 0)


def make_store(store: Path, suite: str = "unit", cells: Sequence[tuple[Any, ...]] = CELLS, seeds: int = 3,
               run_id: str = "run1") -> Path:
    """A small store: `digits` (one task) and `mix` (two tasks, so an `all` view) x cells x
    seeds, plus one error row of a trial that never succeeded (seed 99 of the last cell)."""
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    encoder = PluginRef(name="simclr", params={"backbone": "small-cnn"})
    for dataset, tasks in (("digits", ["digits"]), ("mix", ["digits", "digits-16"])):
        for cell in cells:
            for seed in range(seeds):
                spec = trial(suite, dataset, tasks, seed, cell, encoder)
                append(store, build_row(spec, run_id, PROV, started, _random_metrics(tasks, seed, cell)))
    broken = trial(suite, "digits", ["digits"], 99, cells[-1], encoder)
    append(store, build_row(broken, run_id, PROV, started - timedelta(hours=1), None, "boom"))
    return store


BACKDOOR = ("ssl-backdoor", {"poison_rate": 0.05, "target_class": 0}, "none", {})


def backdoor_task(name: str, hits: int, hits_clean: int, n: int = 100, ca: float = 0.9,
                  pa: float = 0.88, target: int | None = None, undefended: int | None = None) -> TaskMetrics:
    """One task of a backdoor trial: `hits` of `n` triggered inputs go to the target class
    (`hits_clean` on the clean twin, `undefended` on the undefended encoder: default `hits`);
    no target pairs."""
    counts = {"n_triggered": n, "triggered_hits": hits, "triggered_hits_clean": hits_clean,
              "triggered_hits_undefended": hits if undefended is None else undefended}
    return TaskMetrics(task=name, n_classes=10, n_test=40, ca=ca, pa=pa, pa_undefended=pa, n_targets=0,
                       successes=0, trigger_target=target, **counts, **trigger_rates(counts))


def backdoor_row(seed: int, hits: int, hits_clean: int, n: int = 100, suite: str = "unit",
                 target: int | None = None, defense: tuple[str, dict[str, Any]] = ("none", {}),
                 pa: float = 0.88, attack_params: dict[str, Any] | None = None, hooks: str = "",
                 undefended: int | None = None) -> dict[str, Any]:
    """An ok row of the one-task backdoor cell (`BACKDOOR`, under `defense` implementing `hooks`,
    its undefended encoder hitting `undefended`) at `seed` (`target`: the target class recorded
    for its task; None as in stores from before it was)."""
    from pe_bench.worker.evaluate import overall

    tasks = [backdoor_task("digits", hits, hits_clean, n, pa=pa, target=target, undefended=undefended)]
    report = DefenseReport(defense_hooks=hooks, n_encoders=1) if hooks else NO_DEFENSE
    metrics = TrialMetrics(**overall(tasks).model_dump(), n_pretrain=100, n_poisons=5, cache_hits=0,
                           tasks=tuple(tasks), defense=report)
    cell = (BACKDOOR[0], BACKDOOR[1] if attack_params is None else attack_params, *defense)
    return build_row(trial(suite=suite, seed=seed, cell=cell), "run1", PROV,
                     datetime.now(UTC) - timedelta(seconds=3), metrics)


FILTER = ("dedup", {})  # a sanitizing defense for backdoor_suite


def backdoor_suite(store: Path, suite: str = "unit", seeds: int = 6, effect: int = 40,
                   versions: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None) -> Path:
    """A backdoor cell hitting `effect` of 100 triggered inputs above its clean twin at every
    seed, and `FILTER` under it removing that effect (its undefended encoder hits as the cell);
    `versions`: the plugin versions recorded by each seed's two rows ({seed: {kind: {name:
    "distribution version"}}}; seeds not named record none)."""
    import json

    for seed in range(seeds):
        rows = (backdoor_row(seed, hits=20 + effect + seed, hits_clean=20, suite=suite),
                backdoor_row(seed, hits=20 + seed % 2, hits_clean=20, suite=suite, defense=FILTER,
                             hooks="sanitize", undefended=20 + effect + seed))
        for record in rows:
            if versions and seed in versions:
                record["plugin_versions"] = json.dumps(versions[seed], sort_keys=True)
            append(store, record)
    return store
