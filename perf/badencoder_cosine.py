"""BadEncoder's objective against what a probe sees: cosines to the reference, raw and centred.

BadEncoder (`pe_bench.attacks.badencoder`) fine-tunes the clean twin so that triggered inputs
embed close, by cosine, to the reference input(s) of the target class. In the digits CPU tier's
calibration (suites/cal-badencoder.yaml, seed 100) that objective was met (cosine near 1) while
the linear probe sent few triggered inputs to the target class. This script asks whether a high
cosine carries the class on these features: for
each seed of a suite's `badencoder` cell whose two encoders (the clean twin and the backdoored
one) are already in the store's cache, it prints, for both encoders:

- cos(t,ref): mean cosine of every (triggered test input, reference) pair, each encoder
  embedding the reference itself, i.e. -L0 on the attack's own triggered test inputs;
  cos(pairs): mean cosine over every pair of distinct clean test images (the exact mean over
  random pairs), the baseline;
- c-cos(t,ref), c-cos(pairs): the same two after centring every feature by the mean feature of
  the clean test images; c-cos(t,t): between distinct triggered inputs (do they collapse?);
- NCC cos->tgt: the share of triggered inputs whose nearest class centroid is the target class
  (centroids: mean feature per class of the probe's training images; cosine on centred
  features); NCC L2->tgt: the same by Euclidean distance (which centring does not change);
  NCC acc: the cosine rule's accuracy on the clean test split (is the centroid view sound?);
- probe->tgt: the suite's linear probe (`linear_probe`, trained as the pipeline trains it) on
  the same triggered inputs, i.e. the trial's ASR recomputed here.
Shares are printed as "fraction hits/inputs"; the last table pools them over seeds.

Encoders are looked up exactly as a trial looks them up (`load_inputs`, `crafted`, `pretrained`
and the `Trainer` of `pe_bench.worker`, so the cache keys are the pipeline's) through a
read-only view of the cache: a missing encoder is reported and its seed skipped, never trained;
nothing is written to the store. One thread.

Usage: .venv/bin/python perf/badencoder_cosine.py --store results-measured [--seeds 0 1 ...]
       [--suite suites/attacks.yaml] [--data-dir DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    from perf import _common as common
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    import _common as common  # type: ignore[no-redef]

from pe_bench.api import default_cache_dir, validate_suite
from pe_bench.attacks.badencoder import BadEncoder
from pe_bench.attacks.base import AttackContext, Task, TriggeredTest
from pe_bench.config.spec import EvalSpec, TrialSpec
from pe_bench.defenses.base import PretrainData
from pe_bench.encoders.base import EncoderMethod
from pe_bench.plugins.registry import ATTACKS
from pe_bench.worker.cache import ArtifactCache, Build, Made, Usable
from pe_bench.worker.cached_training import Trainer
from pe_bench.worker.evaluate import linear_probe
from pe_bench.worker.pipeline import Stopwatch, crafted, load_inputs, pretrained
from pe_bench.worker.train import encode

ATTACK = "badencoder"
ROLES = ("clean twin", "backdoored")  # the order `pretrained` looks them up in
COLUMNS = ("cos(t,ref)", "cos(pairs)", "c-cos(t,ref)", "c-cos(pairs)", "c-cos(t,t)",
           "NCC cos->tgt", "NCC L2->tgt", "NCC acc", "probe->tgt")
TABLES = (("cosines to the reference and between pairs, raw and centred (c-)", COLUMNS[:5]),
          ("triggered inputs sent to the target class; the centroid rule's clean accuracy", COLUMNS[5:]))


class NotCached(Exception):
    """An encoder the cache does not hold (this script never trains one)."""


class ReadOnlyCache(ArtifactCache):
    """The store's cache, read without a lock (a stored artefact is complete): a missing or
    unusable artefact raises NotCached instead of being built; writing raises."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root, lock=False)
        self.found: list[str] = []

    def get_or_create(self, kind: str, key: str, build: Build, usable: Usable | None = None,
                      wait: bool = True) -> Made:
        found = self.load(kind, key)
        if found is None or (usable is not None and not usable(found[0])):
            raise NotCached(f"{kind}/{key}")
        self.found.append(key)
        return *found, True

    def store(self, kind: str, key: str, state: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        raise RuntimeError(f"read-only cache: refusing to store {kind}/{key}")

    def write_side(self, kind: str, key: str, suffix: str, data: bytes) -> None:
        raise RuntimeError(f"read-only cache: refusing to write {kind}/{key}{suffix}")

    def delete_side(self, kind: str, key: str, suffix: str) -> None:
        raise RuntimeError(f"read-only cache: refusing to delete {kind}/{key}{suffix}")


@dataclass
class Cell:
    """One seed of the badencoder cell: its tasks, the attack's inputs, both encoders."""

    spec: TrialSpec
    tasks: tuple[Task, ...]
    triggered: tuple[TriggeredTest, ...]
    references: np.ndarray
    encoders: dict[str, EncoderMethod]


def load_cell(spec: TrialSpec, data_dir: Path, cache_root: str) -> Cell:
    """The trial's data, triggered inputs, references and cached encoders (raises NotCached)."""
    pre, tasks = load_inputs(spec, data_dir)
    cache = ReadOnlyCache(cache_root)
    trainer = Trainer(spec, pre, cache, lambda m: print(f"seed {spec.seed}: {m}"))
    attack = ATTACKS.get(spec.attack.name).from_dict(spec.attack.params)
    if not isinstance(attack, BadEncoder):
        raise SystemExit(f"{spec.attack.name!r} is not BadEncoder: this script reads its references")
    ctx = AttackContext(pre.images, tasks, spec.seed)
    poisons, triggered, _ = crafted(attack, ctx, Stopwatch(), print)
    try:
        twin, backdoored = pretrained(trainer, PretrainData(pre.images, poisons), attack, ctx, Stopwatch())
    except NotCached as exc:
        raise NotCached(f"the {ROLES[len(cache.found)]} ({exc}) is not in the cache") from None
    return Cell(spec, tasks, triggered, attack.references(ctx),
                {ROLES[0]: twin.model, f"{ROLES[1]}, {attack.params.steps:,} steps": backdoored.model})


def unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def mean_cos(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine over every (row of a, row of b) pair."""
    return float((unit(a) @ unit(b).T).mean())


def pair_cos(x: np.ndarray) -> float:
    """Mean cosine over every pair of distinct rows."""
    sim = unit(x) @ unit(x).T
    n = len(x)
    return float((sim.sum() - np.trace(sim)) / (n * (n - 1)))


def centroids(x: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean feature per class (NaN rows for a class without images: never nearest)."""
    out = np.full((n_classes, x.shape[1]), np.nan)
    for c in np.unique(labels):
        out[c] = x[labels == c].mean(0)
    return out


def nearest_by_cos(x: np.ndarray, cents: np.ndarray) -> np.ndarray:
    return np.asarray(np.nan_to_num(unit(x) @ unit(cents).T, nan=-np.inf).argmax(1))


def nearest_by_l2(x: np.ndarray, cents: np.ndarray) -> np.ndarray:
    dist = ((x[:, None, :] - cents[None, :, :]) ** 2).sum(-1)
    return np.asarray(np.nan_to_num(dist, nan=np.inf).argmin(1))


Share = tuple[int, int]  # (inputs counted, inputs)
Value = float | Share
Row = tuple[str, str, dict[str, Value]]  # (seed, encoder, a value per column)


def share(hits: np.ndarray) -> Share:
    return int(hits.sum()), len(hits)


def measure(model: EncoderMethod, task: Task, trig: TriggeredTest, refs: np.ndarray,
            ev: EvalSpec) -> dict[str, Value]:
    """Every column of the table for one encoder on one task. The probe gets the float32
    features the pipeline gives it; the geometry is computed in float64."""
    raw = [encode(model, a, ev.batch_size) for a in (task.test.images, task.train.images,
                                                      trig.images, refs)]
    test, train, trig_x, ref_x = (a.astype(np.float64) for a in raw)
    centre = test.mean(0)
    n_classes = len(task.test.classes)
    cents = centroids(train - centre, task.train.labels, n_classes)
    target = trig.target_class
    probe = linear_probe(raw[1], task.train.labels, raw[2], n_classes, ev)
    values = (mean_cos(trig_x, ref_x), pair_cos(test), mean_cos(trig_x - centre, ref_x - centre),
              pair_cos(test - centre), pair_cos(trig_x - centre),
              share(nearest_by_cos(trig_x - centre, cents) == target),
              share(nearest_by_l2(trig_x, cents + centre) == target),
              share(nearest_by_cos(test - centre, cents) == task.test.labels),
              share(probe.pred == target))
    return dict(zip(COLUMNS, values, strict=True))


def cell_rows(cell: Cell) -> list[Row]:
    """(seed, encoder, measurements) per task and encoder (task named when there are several)."""
    rows = []
    for task, trig in zip(cell.tasks, cell.triggered, strict=True):
        where = f"{cell.spec.seed}" + (f" {task.name}" if len(cell.tasks) > 1 else "")
        for role, model in cell.encoders.items():
            rows.append((f"{where} (target {trig.target_class})", role,
                         measure(model, task, trig, cell.references, cell.spec.evaluation)))
    return rows


def text(value: Value) -> str:
    if isinstance(value, tuple):
        return f"{value[0] / value[1]:.3f} {value[0]}/{value[1]}"
    return f"{value:.3f}"


def pooled(values: Sequence[Value]) -> Value:
    """The mean of floats; shares pooled (counts summed)."""
    shares = [v for v in values if isinstance(v, tuple)]
    if shares:
        return sum(hit for hit, _ in shares), sum(n for _, n in shares)
    return float(np.mean([v for v in values if isinstance(v, float)]))


def summary(rows: Sequence[Row], columns: Sequence[str]) -> list[list[str]]:
    """Per encoder (the twin; the backdoored one per fine-tuning budget), every column over
    the seeds measured."""
    out = []
    for role in dict.fromkeys(who for _, who, _ in rows):
        mine = [m for _, who, m in rows if who == role]
        out.append([f"{len(mine)} seed(s)", role, *(text(pooled([m[c] for m in mine])) for c in columns)])
    return out


def badencoder_trials(suite: str, seeds: Sequence[int] | None) -> list[TrialSpec]:
    trials = [t for t in validate_suite(suite).grid.trials if t.attack.name == ATTACK]
    if not trials:
        raise SystemExit(f"{suite}: no {ATTACK} cell")
    return [t for t in trials if seeds is None or t.seed in seeds]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", required=True, help="the results store whose cache holds the encoders")
    parser.add_argument("--cache", default=None, help="the encoder cache (default: STORE/_cache)")
    parser.add_argument("--suite", default=str(common.REPO / "suites" / "attacks.yaml"))
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="seeds to measure (default: every seed of the suite)")
    parser.add_argument("--data-dir", default=None, help="datasets folder (default: as perf/ finds it)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    common.setup_process(1)
    cache_root = str(Path(args.cache) if args.cache else default_cache_dir(Path(args.store)))
    rows: list[Row] = []
    for spec in badencoder_trials(args.suite, args.seeds):
        data_dir = common.data_dir_for(spec.pretrain.refs()[0].name, args.data_dir)
        try:
            cell = load_cell(spec, data_dir, cache_root)
        except NotCached as exc:
            print(f"seed {spec.seed}: skipped: {exc}")
            continue
        rows.extend(cell_rows(cell))
    if not rows:
        raise SystemExit("no seed of the badencoder cell has both encoders in the cache")
    report(rows)


def report(rows: Sequence[Row]) -> None:
    """Per group of columns: a table per seed, then one over the seeds measured."""
    for title, columns in TABLES:
        head = ("seed", "encoder", *columns)
        common.print_table(f"{ATTACK}: {title}, per seed", head,
                           [[s, who, *(text(m[c]) for c in columns)] for s, who, m in rows])
        common.print_table(f"{ATTACK}: {title}, over the seeds measured (cosines: mean; shares: "
                           "pooled)", head, summary(rows, columns))


if __name__ == "__main__":
    main()
