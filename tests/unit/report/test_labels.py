"""Setting labels: the params that tell a plugin's settings apart, a value most of them share
named once for the table instead of on every label (pe_bench.report.labels)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pe_bench.cli import main
from pe_bench.report.labels import usual_note, varying
from pe_bench.store.results import append
from tests.rows import backdoor_row


def _pe(**changed: object) -> tuple[str, str]:
    main = {"canvas": "keep", "poison_rate": 0.1, "references": 5, "selection": "outlier", "targets_per_task": 5}
    return "poisoned-encoder", json.dumps({**main, **changed}, sort_keys=True)


SWEEP = [_pe(), _pe(poison_rate=0.05), _pe(references=1), _pe(poison_rate=0.04, targets_per_task=2),
         _pe(canvas="resize"), ("duplicate", json.dumps({"poison_rate": 0.1})), ("none", "{}")]


def test_a_sweep_names_only_what_differs_from_its_shared_main_values() -> None:
    hidden = lambda name: ("selection",)  # noqa: E731
    rows = SWEEP + SWEEP[:2]  # one setting per line: repeats change nothing
    assert varying(rows, hidden)[:5] == ["poisoned-encoder", "poisoned-encoder(rate=0.05)", "poisoned-encoder(refs=1)",
                                         "poisoned-encoder(rate=0.04, targets=2)", "poisoned-encoder(canvas=resize)"]
    assert varying(rows, hidden)[5:7] == ["duplicate", "none"]
    assert usual_note((rows, hidden)) == ("settings: poisoned-encoder: canvas=keep, rate=0.1, refs=5, targets=5 "
                                          "where its label names no other value")


def test_without_a_majority_value_every_setting_names_the_param() -> None:
    two = [_pe(), _pe(poison_rate=0.05, canvas="resize")]
    assert varying(two) == ["poisoned-encoder(canvas=keep, rate=0.1)", "poisoned-encoder(canvas=resize, rate=0.05)"]
    three = [_pe(poison_rate=r) for r in (0.01, 0.05, 0.1)]
    assert varying(three) == [f"poisoned-encoder(rate={r})" for r in (0.01, 0.05, 0.1)]
    assert usual_note((two, lambda _: ()), (three, lambda _: ())) == ""
    assert varying([_pe(), _pe()]) == ["poisoned-encoder", "poisoned-encoder"]  # one setting: its name


def test_the_board_says_what_its_labels_leave_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = ({"poison_rate": 0.1, "target_class": 0}, {"poison_rate": 0.05, "target_class": 0},
                {"poison_rate": 0.1, "target_class": 1})
    for seed in range(3):
        for params in settings:
            append(tmp_path, backdoor_row(seed, hits=30, hits_clean=20, attack_params=params))
    note = "settings: ssl-backdoor: rate=0.1, target_class=0 where its label names no other value"
    for extra in ((), ("--by-seed",)):
        assert main(["leaderboard", "--store", str(tmp_path), "--format", "md", *extra]) == 0
        md = capsys.readouterr().out
        assert note in md and "ssl-backdoor(rate=0.05)" in md and "ssl-backdoor(target_class=1)" in md
        assert "rate=0.1, target_class=0)" not in md  # the shared setting is the bare name
    assert main(["leaderboard", "--store", str(tmp_path)]) == 0
    assert note in " ".join(capsys.readouterr().out.split())


def test_the_site_says_it_too(tmp_path: Path) -> None:
    from pe_bench.report.publish import publish

    store, out = tmp_path / "store", tmp_path / "site"
    for seed in range(3):
        for rate, target in ((0.1, 0), (0.05, 0), (0.1, 1)):
            append(store, backdoor_row(seed, hits=30, hits_clean=20, attack_params={"poison_rate": rate, "target_class": target}))
    publish(store, out)
    page = next(p for p in out.glob("*.html") if p.name != "index.html").read_text(encoding="utf-8")
    assert "settings: ssl-backdoor: rate=0.1, target_class=0 where its label names no other value" in page
