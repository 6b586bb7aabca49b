"""The Parquet store: validated rows, unique files, scans that survive bad files, dedupe.
(Stores of earlier schema versions: tests/unit/store/test_schema.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pe_bench.errors import PeBenchError
from pe_bench.report.leaderboard import aggregate, sort_lines, to_csv, to_markdown
from pe_bench.store.metrics import DefenseReport
from pe_bench.store.results import append, build_row, latest_ok, row_from_json, row_to_json, scan, validate_row
from pe_bench.config.spec import PluginRef, TrialSpec
from tests.rows import PROV, error_row, metrics, row, task, trial, trial_metrics, typed


def spec(seed: int = 0) -> TrialSpec:
    return trial(seed=seed)


def test_rows_round_trip_through_json_and_the_store(tmp_path: Path) -> None:
    r = row_from_json(row_to_json(row(0, [True, False])))
    path = append(tmp_path, r)
    assert path.parent == tmp_path / "suite=unit" / "run=run1"
    table = scan(tmp_path)
    assert table.num_rows == 1
    got = table.to_pylist()[0]
    assert got["trial_key"] == spec(0).trial_key and got["asr"] == 0.5
    assert got["tasks"][0]["targets"][0]["hit"] is True
    assert got["time_pretrain_clean_s"] == 2.0 and got["time_total_s"] >= 3


def test_validation_rejects_malformed_rows() -> None:
    good = row(0, [True])
    with pytest.raises(ValueError, match="ca"):
        validate_row({**good, "ca": None})
    with pytest.raises(ValueError, match="outside the schema"):
        validate_row({**good, "surprise": 1})
    with pytest.raises(ValueError, match="status"):
        validate_row({**good, "status": "maybe"})
    with pytest.raises(ValueError, match="an ok row needs metrics"):
        validate_row({**good, "error": "both"})
    failed = error_row(0)
    got = validate_row(failed).to_pylist()[0]
    assert got["error"] == "boom" and got["traceback"].startswith("Traceback") and got["ca"] is None


def test_scan_skips_a_corrupt_file_with_a_warning(tmp_path: Path) -> None:
    append(tmp_path, row(0, [True]))
    bad = tmp_path / "suite=unit" / "run=run1" / "broken.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.warns(UserWarning, match="skipping unreadable"):
        assert scan(tmp_path).num_rows == 1


def test_latest_ok_keeps_one_row_per_trial(tmp_path: Path) -> None:
    append(tmp_path, row(0, [False]))
    append(tmp_path, row(0, [True]))  # a later rerun of the same cell
    append(tmp_path, error_row(1))
    rows = latest_ok(scan(tmp_path))
    assert len(rows) == 1 and rows[0].metrics and rows[0].metrics.asr == 1.0


def test_leaderboard_aggregates_over_seeds() -> None:
    rows = [row(0, [True, False], pa=0.8), row(1, [True, True], pa=0.9), row(2, [False, False], pa=1.0)]
    (line,) = aggregate(typed(rows))
    assert line.seeds == 3 and line.published
    assert (line.successes, line.pairs) == (3, 6)
    mean, std = line.stats["pa"]
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.1)
    assert line.stats["asr"][0] == pytest.approx(0.5)
    delta_p, delta_asr = line.intervals["delta_p"], line.intervals["delta_asr"]
    assert delta_p.mean == pytest.approx(0.3) and delta_p.low < 0.3 < delta_p.high and delta_p.units == 3
    assert delta_asr.mean == pytest.approx(0.5) and delta_asr.units == 3  # the seed is the unit
    md = to_markdown([line], "t")
    assert "| digits | simclr | digits | poisoned-encoder | targeted | random | none | - | 3 | 0 |" in md
    assert "0.900 ± 0.100" in md and "3/6" in md
    assert to_csv([line]).splitlines()[0].startswith("dataset,encoder,task")


def test_leaderboard_marks_too_few_seeds() -> None:
    (line,) = aggregate(typed([row(0, [True])]))
    assert not line.published and "1*" in to_markdown([line], "t")


ENCODER_SCORES = [(0.9, 0.5), (0.8, 0.3), (0.4, 0.2)]  # (attacked, clean twin) per seed


def defended_row(seed: int, hits: list[bool], undefended: list[bool], recall: float) -> dict:
    attacked, clean = ENCODER_SCORES[seed % 3]
    m = trial_metrics([task("digits", hits, pa=0.80, undefended=undefended, pa_undefended=0.88)],
                      DefenseReport(defense_hooks="score,score_encoder", n_encoders=1, n_removed=7,
                                    clean_removed=2, poison_recall=recall, poison_precision=5 / 7,
                                    poison_auroc=0.9 - seed / 10, encoder_score=attacked,
                                    encoder_score_clean=clean, encoder_flagged=attacked > 0.6,
                                    encoder_flagged_clean=clean > 0.6, defense_cpu_s=1.5, extra_steps=-4))
    s = spec(seed).model_copy(update={"defense": PluginRef(name="dedup", params={"min_count": 5})})
    return build_row(s, "run1", PROV, datetime.now(UTC), m)


def test_defense_metrics_reach_the_leaderboard_and_sort(tmp_path: Path) -> None:
    rows = [defended_row(s, [False, False], [True, True], 1.0) for s in range(3)]
    for r in rows:
        append(tmp_path, r)
    (line,) = aggregate(latest_ok(scan(tmp_path)))
    vs_none = line.intervals["delta_asr_defense"]
    assert vs_none.mean == -1.0 and vs_none.excludes_zero
    pa_vs_none = line.intervals["delta_pa_defense"]  # per seed, with its interval and test
    assert pa_vs_none.mean == pytest.approx(-0.08) and pa_vs_none.units == 3
    assert pa_vs_none.low == pytest.approx(-0.08) and pa_vs_none.high == pytest.approx(-0.08)
    assert line.stats["poison_recall"] == (1.0, 0.0) and line.stats["clean_removed"] == (2.0, 0.0)
    assert line.stats["poison_auroc"][0] == pytest.approx(0.8)
    assert line.stats["defense_cpu_s"] == (1.5, 0.0) and line.stats["extra_steps"] == (-4.0, 0.0)
    # encoder AUROC over the line's seeds: each attacked encoder against every clean twin
    pairs = [(a > c) + 0.5 * (a == c) for a, _ in ENCODER_SCORES for _, c in ENCODER_SCORES]
    assert line.pooled["encoder_auroc"] == pytest.approx(sum(pairs) / len(pairs))
    assert line.pooled["encoder_flags"] == (2, 3, 0, 3)
    cells_md = to_markdown([line], "t")
    assert "| dedup |" in cells_md and "-1.000 [-1.000, -1.000]" in cells_md
    assert f"| {sum(pairs) / len(pairs):.3f} |" in cells_md and "| 2/3 · 0/3 |" in cells_md
    plain = aggregate(typed(row(s, [True]) for s in range(3)))
    both = sort_lines([*plain, line], "-poison_recall")
    assert both[0] is line and both[1] is plain[0]  # undefended lines have no recall: last
    assert sort_lines([line, *plain], "pa")[0] is line
    with pytest.raises(PeBenchError, match="unknown metric 'nope'"):
        sort_lines([line], "nope")


def test_attack_lines_are_labelled_by_the_params_that_differ() -> None:
    rows = []
    for rate in (0.05, 0.10):
        s = spec(0).model_copy(update={"attack": PluginRef(
            name="poisoned-encoder", params={"selection": "random", "poison_rate": rate, "references": 5})})
        rows.append(build_row(s, "run1", PROV, datetime.now(UTC), metrics([True])))
    labels = [ln.attack_label for ln in aggregate(typed(rows))]
    assert labels == ["poisoned-encoder(rate=0.05)", "poisoned-encoder(rate=0.1)"]
    (single,) = aggregate(typed(rows[:1]))
    assert single.attack_label == "poisoned-encoder"


@pytest.mark.parametrize(("attack", "params", "selection", "rate"), [
    ("duplicate", {"selection": "outlier", "poison_rate": 0.05}, "outlier", 0.05),
    ("duplicate", {"selection": "outlier", "attacker_data": "probe-train"}, "outlier+probe-data", None),
    ("ssl-backdoor", {"poison_rate": 0.02, "attacker_data": "probe-train"}, None, 0.02),
    ("none", {}, None, None),
    ("no-such-attack", {"selection": "outlier", "poison_rate": 0.05}, None, None),
])
def test_a_row_labels_and_budgets_its_attack_as_the_attack_declares(
        attack: str, params: dict, selection: str | None, rate: float | None) -> None:
    """`selection` and `poison_rate` come from the params the attack declares (label_params,
    label_marks, budget_param); an attack that cannot be resolved (an error row) has neither."""
    s = spec(0).model_copy(update={"attack": PluginRef(name=attack, params=params)})
    got = build_row(s, "run1", PROV, datetime.now(UTC), None, "boom")
    assert (got["selection"], got["poison_rate"]) == (selection, rate)
    assert got["defense_free_key"] == s.defense_free_key and got["task_names"] == ["digits"]


def test_the_defense_free_key_is_the_cell_but_for_its_defense() -> None:
    base = spec(0)
    other_defense = spec(1).model_copy(update={"defense": PluginRef(name="prune", params={"threshold": 0.5})})
    assert base.defense_free_key == other_defense.defense_free_key != base.cell_key
    duplicate = PluginRef(name="duplicate", params={"selection": "random"})
    other_attack = base.model_copy(update={"attack": duplicate})
    assert other_attack.defense_free_key != base.defense_free_key


def test_source_note_names_each_run_with_its_trials_and_commits() -> None:
    from pe_bench.store.results import source_note

    made = [("r2", "a" * 40), ("r1", "b" * 40 + "+dirty"), ("r2", "a" * 40), ("r1", None)]
    rows = typed({**row(seed, [True], run_id=run), "git_commit": commit}
                 for seed, (run, commit) in enumerate(made))
    assert source_note(rows) == ("Generated by `pe-bench leaderboard --format md` from run r1 (2 trials, "
                                 f"commit {'b' * 12}+dirty, unknown); run r2 (2 trials, commit {'a' * 12}).")


def test_git_commit_marks_uncommitted_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row from code that differs from HEAD must not pass for HEAD's."""
    import subprocess

    from pe_bench.store import results

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "m.py").write_text("x = 1\n")
    commit = ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "c"]
    for cmd in (["init", "-q"], ["add", "."], commit):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    monkeypatch.setattr(results, "__file__", str(repo / "pkg" / "store" / "results.py"))
    clean = results.git_commit()
    assert clean is not None and len(clean) == 40
    (repo / "docs").mkdir()
    (repo / "docs" / "table.md").write_text("regenerated\n")
    subprocess.run(["git", "add", "docs"], cwd=repo, check=True)
    assert results.git_commit() == clean  # regenerated docs are not code
    (repo / "pkg" / "m.py").write_text("x = 2\n")
    assert results.git_commit() == clean + "+dirty"
