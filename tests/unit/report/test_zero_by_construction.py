"""A comparison that is zero by construction is not a test: a `none` defense line and a detector
that changes no encoder (`score_encoder` only) get no `vs none` interval, so they do not enter the
board's multiplicity correction; a defense that retrains or repairs does."""

from __future__ import annotations

from datetime import UTC, datetime

from pe_bench.report.leaderboard import aggregate
from pe_bench.store.metrics import DefenseReport
from pe_bench.store.results import build_row
from tests.rows import PROV, task, trial, trial_metrics, typed


def _rows(defense: str, hooks: str, hits: list[bool]) -> list[dict[str, object]]:
    report = DefenseReport(defense_hooks=hooks, n_encoders=1)
    out = []
    for seed in range(6):
        metrics = trial_metrics([task("digits", hits, undefended=[True] * len(hits))], report)
        spec = trial(seed=seed, cell=("poisoned-encoder", {"selection": "random"}, defense, {}))
        out.append(build_row(spec, "r", PROV, datetime.now(UTC), metrics))
    return out


def test_only_a_defense_that_changes_the_encoder_is_tested_against_none() -> None:
    lines = {ln.defense: ln for ln in aggregate(typed([
        *_rows("none", "", [True, True]),
        *_rows("decree", "score_encoder", [True, True]),
        *_rows("mudjacking", "repair", [False, False]),
    ]))}
    assert lines["none"].intervals["delta_asr_defense"] is None
    assert lines["decree"].intervals["delta_asr_defense"] is None
    repaired = lines["mudjacking"].intervals["delta_asr_defense"]
    assert repaired is not None and repaired.mean == -1.0
    assert repaired.p == repaired.p_adjusted == 2 / 64  # alone in its column's correction
