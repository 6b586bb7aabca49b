"""Bugs once planted by hand that the suite did not see: each now fails a test here (the others
live beside the code they guard: the t quantile and the Monte Carlo p's +1 in test_stats.py, the
seed as the unit in test_stats_designs.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pe_bench.report.defense_pairs import pair_lines
from pe_bench.report.leaderboard import from_store
from pe_bench.store.results import append, build_row, latest_ok, scan
from tests.rows import PROV, backdoor_row, metrics, trial

FILTER = ("prune", {"threshold": 0.5})
REPAIR = ("prune", {"threshold": 0.9})


def _attacked(seed: int, hits: list[bool], attack: str) -> dict[str, object]:
    cell = (attack, {"selection": "random", "poison_rate": 0.05}, "none", {})
    return build_row(trial(seed=seed, cell=cell), "run1", PROV, datetime.now(UTC), metrics(hits))


def test_attack_versus_attack_matches_each_target_at_its_own_seed(tmp_path: Path) -> None:
    """The same two targets at every seed: PE hits both at seed 0, duplicate both at seed 1.
    Matched by (seed, target) the per-seed differences are +1, -1, 0 (mean 0); matched by
    target alone, one seed's outcomes would stand for every seed's."""
    hits = {"poisoned-encoder": ([True, True], [False, False], [False, False]),
            "duplicate": ([False, False], [True, True], [False, False])}
    for attack, per_seed in hits.items():
        for seed, h in enumerate(per_seed):
            append(tmp_path, _attacked(seed, list(h), attack))
    lines = {ln.attack: ln for ln in from_store(tmp_path, versus="duplicate")}
    versus = lines["poisoned-encoder"].intervals["delta_asr_versus"]
    assert versus is not None and versus.mean == pytest.approx(0.0) and versus.units == 3


def test_defense_pairs_never_mix_two_training_recipes(tmp_path: Path) -> None:
    """The same defenses under two recipes (120 and 60 epochs) in one store are two groups."""
    for seed in range(3):
        for epochs, hits in ((120, 10), (60, 50)):
            for defense, n in ((FILTER, hits), (REPAIR, 30)):
                row = backdoor_row(seed, hits=n, hits_clean=5, defense=defense)
                spec = trial(seed=seed, cell=("ssl-backdoor", {"poison_rate": 0.05, "target_class": 0}, *defense))
                recipe = spec.train.replace(epochs=epochs)
                rebuilt = spec.model_copy(update={"train": recipe})
                row.update(trial_key=rebuilt.trial_key, cell_key=rebuilt.cell_key,
                           defense_free_key=rebuilt.defense_free_key, spec_json=rebuilt.model_dump_json())
                append(tmp_path, row)
    lines = pair_lines(latest_ok(scan(tmp_path)))
    assert len(lines) == 2 and all(ln.seeds == 3 for ln in lines)
    assert sorted(ln.d_asr.mean for ln in lines if ln.d_asr) == pytest.approx([-0.2, 0.2])


def test_defense_pair_asr_is_averaged_over_the_seeds_both_settings_hold(tmp_path: Path) -> None:
    """FILTER at seeds 0-3 (ASR 0.1, 0.2, 0.3, 0.9), REPAIR at 0-2 only: the pair's ASR of FILTER
    is over seeds 0-2 (0.2), not its own four (0.375)."""
    for seed, hits in enumerate((10, 20, 30, 90)):
        append(tmp_path, backdoor_row(seed, hits=hits, hits_clean=5, defense=FILTER))
        if seed < 3:
            append(tmp_path, backdoor_row(seed, hits=40, hits_clean=5, defense=REPAIR))
    (line,) = pair_lines(latest_ok(scan(tmp_path)))
    assert line.seeds == 3 and line.asr_first == pytest.approx(0.2) and line.asr_second == pytest.approx(0.4)
