"""Plugin versions never mix silently: `--resume` runs again the finished trials whose plugins
changed version since, and a board built from rows of two versions of one plugin says so."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pe_bench import api
from pe_bench.config.spec import TRAINING_REVISION
from pe_bench.plugins import registry
from pe_bench.store.results import append, build_row, ok_rows, scan, source_note
from pe_bench.store.versions import changed, mixed
from tests.rows import PROV, metrics, trial

OLD = {"attacks": {"duplicate": "pe-bench 0.1.0"}, "defenses": {"none": "pe-bench 0.1.0"}}
NEW = {"attacks": {"duplicate": "pe-bench 0.1.1"}, "defenses": {"none": "pe-bench 0.1.0"}}


def test_changed_names_each_plugin_whose_version_moved() -> None:
    assert changed(json.dumps(OLD), NEW) == ["attacks/duplicate: pe-bench 0.1.0 -> pe-bench 0.1.1"]
    assert changed(json.dumps(OLD), OLD) == []
    assert changed(None, NEW) == []  # a row from before versions were recorded: nothing to compare


def test_mixed_counts_rows_per_version() -> None:
    assert mixed([json.dumps(OLD), json.dumps(NEW), json.dumps(NEW), None]) == [
        "attacks/duplicate: pe-bench 0.1.0 (1 rows), pe-bench 0.1.1 (2 rows)"]
    assert mixed([json.dumps(OLD), json.dumps(OLD)]) == []


def _store(tmp_path: Path, versions_by_seed: Mapping[int, Mapping[str, Mapping[str, str]]]) -> Path:
    store = tmp_path / "store"
    for seed, versions in versions_by_seed.items():
        spec = trial(seed=seed, cell=("duplicate", {"selection": "random"}, "none", {}))
        append(store, build_row(spec, "r1", PROV, datetime.now(UTC), metrics([True]),
                                plugin_versions=json.dumps(versions)))
    return store


def test_resume_runs_again_the_trials_whose_plugins_changed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path, {0: OLD, 1: NEW})
    trials = [trial(seed=s, cell=("duplicate", {"selection": "random"}, "none", {})) for s in (0, 1, 2)]
    monkeypatch.setattr(registry, "plugin_versions", lambda used: {k: NEW[k] for k in used if k in NEW})
    rows = scan(store, "unit")
    stale = api.stale_trials(trials, rows)
    assert stale == {trials[0].trial_key: ["attacks/duplicate: pe-bench 0.1.0 -> pe-bench 0.1.1"]}
    todo = api.select_trials(trials, rows, resume=True, retry_failed=False, stale=stale)
    assert [t.seed for t in todo] == [0, 2]  # seed 1 is current; seed 2 never ran


def test_a_board_from_two_versions_says_so(tmp_path: Path) -> None:
    rows = ok_rows(_store(tmp_path, {0: OLD, 1: NEW}), "unit", None)
    assert "Mixes plugin versions: attacks/duplicate: pe-bench 0.1.0 (1 rows), pe-bench 0.1.1 (1 rows)." \
        in source_note(rows)
    assert "Mixes" not in source_note(ok_rows(_store(tmp_path / "b", {0: NEW, 1: NEW}), "unit", None))


def test_resume_runs_again_the_trials_of_an_older_training_revision(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A row from an older TRAINING_REVISION (or one written before rows recorded it) is stale:
    its encoders were trained by other code."""
    store = tmp_path / "store"
    cell = ("duplicate", {"selection": "random"}, "none", {})
    trials = [trial(seed=s, cell=cell) for s in (0, 1, 2)]
    for seed, revision in ((0, None), (1, TRAINING_REVISION - 1), (2, TRAINING_REVISION)):
        prov = {**PROV, "training_revision": revision}
        append(store, build_row(trials[seed], "r1", prov, datetime.now(UTC), metrics([True]),
                                plugin_versions=json.dumps(NEW)))
    monkeypatch.setattr(registry, "plugin_versions", lambda used: {k: NEW[k] for k in used if k in NEW})
    stale = api.stale_trials(trials, scan(store, "unit"))
    assert stale == {trials[0].trial_key: [f"training revision <= 4 -> {TRAINING_REVISION}"],
                     trials[1].trial_key: [f"training revision {TRAINING_REVISION - 1} -> {TRAINING_REVISION}"]}
