"""Every defense through Ray, including one from a separately installed plugin package.

Workers resolve defenses by name, so the example package's `random-drop` reaches them only as
an installed distribution (the Makefile installs it beside pe-bench). One Ray session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pe_bench.cli import main
from pe_bench.store.results import scan
from tests.helpers import needs_example_plugin

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "fixtures" / "suites" / "defenses-smoke.yaml"
pytestmark = [pytest.mark.ray, needs_example_plugin]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    ray = pytest.importorskip("ray")
    store = tmp_path_factory.mktemp("store")
    try:
        assert main(["run", str(SUITE), "--store", str(store), "--no-leaderboard"]) == 0
    finally:
        ray.shutdown()
    return {r["defense"]: r for r in scan(store, "defenses-smoke").to_pylist()}


def test_every_defense_ran_in_a_worker(rows: dict[str, dict]) -> None:
    assert set(rows) == {"none", "dedup", "conservative-crop", "early-stop", "partition-ensemble",
                         "clean-finetune", "knn-density", "decree", "random-drop"}
    assert {r["status"] for r in rows.values()} == {"ok"}
    undefended = rows["none"]
    for r in rows.values():
        assert r["asr_undefended"] == undefended["asr"] and r["pa_undefended"] == undefended["pa"]
        assert r["ca"] == undefended["ca"]  # one clean twin for the whole seed


def test_rows_carry_each_defense_kind_of_cost(rows: dict[str, dict]) -> None:
    drop = rows["random-drop"]
    assert drop["defense_hooks"] == "score"  # a third-party scoring filter gets detection metrics
    assert drop["n_removed"] == round(0.1 * (drop["n_pretrain"] + drop["n_poisons"]))
    assert drop["poison_recall"] is not None and drop["clean_removed"] >= 0
    assert 0 <= drop["poison_auroc"] <= 1 and drop["poison_fpr"] is not None
    knn = rows["knn-density"]  # detects with the undefended encoder, retrains without what it flags
    assert knn["defense_hooks"] == "score_trained" and knn["poison_auprc"] is not None
    assert knn["n_removed"] == round(0.05 * (knn["n_pretrain"] + knn["n_poisons"]))
    assert knn["extra_steps"] > 0 and knn["defense_cpu_s"] > 0  # a second training, not a replacement
    decree = rows["decree"]  # a detector: the encoder is the undefended one
    assert decree["encoder_score"] is not None and decree["encoder_score_clean"] is not None
    assert decree["asr"] == rows["none"]["asr"] and decree["clean_used"] == 64
    assert decree["encoder_flagged"] in (True, False)
    assert rows["partition-ensemble"]["n_encoders"] == 2
    assert rows["clean-finetune"]["clean_used"] == 128
    assert rows["early-stop"]["defense_hooks"] == "configure_training"  # its saved time is noise here
    assert rows["none"]["defense_hooks"] == ""
    assert (rows["none"]["defense_cpu_s"], rows["none"]["extra_steps"]) == (0, 0)
    assert rows["dedup"]["poison_auroc"] is not None  # dedup reports its match counts as scores
