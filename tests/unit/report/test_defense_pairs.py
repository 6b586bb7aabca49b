"""Defense settings compared with each other, paired (`pe-bench leaderboard --defense-pairs`):
per-seed ASR and PA differences on the seeds both hold, per target pair for targeted lines,
the exact test over seeds, Holm over the table's pairs; `none` is the board's vs-none columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from pe_bench.store.declarations import Family

from pe_bench.cli import main
from pe_bench.report.defense_pairs import pair_lines, to_csv, to_markdown
from pe_bench.store.results import append, latest_ok, scan
from tests.rows import backdoor_row, make_store

FILTER = ("prune", {"threshold": 0.5})
REPAIR = ("prune", {"threshold": 0.9})
OTHER = ("dedup", {})


def _backdoor_store(store: Path, seeds: int = 10) -> Path:
    """Per seed: undefended 60/100, FILTER 10 + seed, REPAIR 40 (PA 0.01 lower), OTHER 41 but
    without the last seed."""
    for seed in range(seeds):
        append(store, backdoor_row(seed, hits=60, hits_clean=5, target=1))
        append(store, backdoor_row(seed, hits=10 + seed, hits_clean=5, target=1, defense=FILTER))
        append(store, backdoor_row(seed, hits=40, hits_clean=5, target=1, defense=REPAIR, pa=0.87))
        if seed < seeds - 1:
            append(store, backdoor_row(seed, hits=41, hits_clean=5, target=1, defense=OTHER))
    return store


PAIRS = (Family(family="pairs", test="defense-pair"),)


def test_backdoor_pairs_are_per_seed_over_common_seeds_with_holm(tmp_path: Path) -> None:
    rows = latest_ok(scan(_backdoor_store(tmp_path)))
    undeclared = pair_lines(rows)  # the default families declare no pair: all exploratory
    assert all(ln.d_asr and ln.d_asr.family is None and ln.d_asr.p_adjusted is None for ln in undeclared)
    assert all(ln.d_asr and ln.d_asr.verdict == "exploratory" for ln in undeclared)
    lines = pair_lines(rows, lambda _: PAIRS)
    assert len(lines) == 3  # 3 defended settings: 3 pairs; none is not a member
    assert all("none" not in (ln.first, ln.second) for ln in lines)
    by = {(ln.first, ln.second): ln for ln in lines}
    f_r = by["prune(threshold=0.5)", "prune(threshold=0.9)"]
    assert f_r.seeds == 10
    # FILTER - REPAIR per seed: (10 + s - 40) / 100, every seed negative
    assert f_r.d_asr is not None and f_r.d_asr.mean == pytest.approx(sum(s - 30 for s in range(10)) / 1000)
    assert f_r.d_asr.units == 10 and f_r.d_asr.p == pytest.approx(2 / 1024)
    assert f_r.d_pa is not None and f_r.d_pa.mean == pytest.approx(0.01)
    assert f_r.d_pa.p == pytest.approx(2 / 1024)
    # Holm over the 3 pairs: the smallest p of each column times 3
    smallest = min(ln.d_asr.p for ln in lines if ln.d_asr and ln.d_asr.p is not None)
    assert min(ln.d_asr.p_adjusted for ln in lines if ln.d_asr) == pytest.approx(3 * smallest)
    assert all(ln.d_pa and ln.d_pa.family is None for ln in lines)  # ΔPA of a pair: never declared
    with_other = [ln for ln in lines if "dedup" in (ln.first, ln.second)]
    assert {ln.seeds for ln in with_other} == {9}  # OTHER lacks the last seed


def test_only_trials_of_one_attack_setting_are_paired(tmp_path: Path) -> None:
    """The same defenses under two settings of one attack are two groups, never mixed, even
    where the settings differ in what no label shows (the target selection rule)."""
    for seed in range(3):
        for selection, hits in (("random", 10), ("outlier", 50)):
            params = {"poison_rate": 0.05, "target_class": 0, "selection": selection}
            for defense, n in ((FILTER, hits), (REPAIR, 30)):
                row = backdoor_row(seed, hits=n, hits_clean=5, defense=defense, attack_params=params)
                append(tmp_path, row)
    lines = pair_lines(latest_ok(scan(tmp_path)))
    assert len(lines) == 2 and all(ln.seeds == 3 for ln in lines)
    assert sorted(ln.d_asr.mean for ln in lines if ln.d_asr) == pytest.approx([-0.2, 0.2])


def test_a_pair_with_no_difference_is_not_separated(tmp_path: Path) -> None:
    for seed in range(4):
        append(tmp_path, backdoor_row(seed, hits=30, hits_clean=5, defense=FILTER))
        append(tmp_path, backdoor_row(seed, hits=30, hits_clean=5, defense=REPAIR))
    (line,) = pair_lines(latest_ok(scan(tmp_path)))
    assert line.d_asr is not None and line.d_asr.mean == 0.0 and line.d_asr.p == 1.0
    assert "n.s." in to_markdown([line], "t")


def test_targeted_pairs_are_per_target_pair(tmp_path: Path) -> None:
    rows = latest_ok(scan(make_store(tmp_path / "s", seeds=3)))
    lines = pair_lines(rows)
    digits = ("digits", "simclr", "digits")
    pe = [ln for ln in lines if ln.attack.startswith("poisoned-encoder") and ln.setup == digits]
    assert len(pe) == 1  # two prune settings vs poisoned-encoder; duplicate has one defended setting
    (line,) = pe
    hits: dict[float, dict[tuple[int, int], bool]] = {}
    for r in rows:
        if r.dataset == "digits" and r.attack == "poisoned-encoder" and r.defense == "prune" and r.metrics:
            threshold = 0.5 if "0.5" in r.defense_params else 0.9
            for t in r.metrics.tasks[0].targets:
                hits.setdefault(threshold, {})[r.seed, t.index] = bool(t.hit)
    diffs = [hits[0.5][k] - hits[0.9][k] for k in hits[0.5]]
    assert line.d_asr is not None and line.d_asr.mean == pytest.approx(sum(diffs) / len(diffs))
    assert line.d_asr.units == 3  # the seed is the tested unit (its targets share one encoder)


def test_the_cli_writes_a_sourced_table_and_refuses_what_it_cannot_show(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _backdoor_store(tmp_path / "s", seeds=3)
    out = tmp_path / "pairs.md"
    args = ["leaderboard", "--defense-pairs", "--store", str(store)]
    assert main([*args, "--format", "md", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Generated by `pe-bench leaderboard --defense-pairs --format md` from run run1" in text
    assert "(0 of the table's 3 pairs" in text
    assert len(to_csv(pair_lines(latest_ok(scan(store)))).splitlines()) == 4
    capsys.readouterr()
    assert main(["leaderboard", "--defense-pairs", "--by-seed", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pe-bench: error: --by-seed: does not take --defense-pairs (it shows every trial as stored)"
    lone = tmp_path / "lone"
    append(lone, backdoor_row(0, hits=30, hits_clean=5))
    assert main(["leaderboard", "--defense-pairs", "--store", str(lone)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("pe-bench: error: --defense-pairs: no two defense settings of one attack in store "
                   f"{str(lone)!r}")
