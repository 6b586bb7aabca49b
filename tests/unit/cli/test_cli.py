"""The command line: bad input is exit status 2 and one line on stderr, never a traceback.

Runs `pe_bench.cli.main` in-process (capsys); no Ray session is ever started here: `run` must
stop at validation. The malformed suites are those of test_suite.py (tests/fixtures/suites/bad).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pe_bench.cli import main
from tests.bad_suites import BAD_SUITES, FIXTURES, expectation
from tests.helpers import needs_example_plugin

REPO = Path(__file__).resolve().parents[3]
SMOKE = REPO / "suites" / "smoke.yaml"


def bad_cases() -> list[Any]:
    cases = []
    for path in BAD_SUITES:
        key, fragment = expectation(path)
        cases.append(pytest.param(str(path), key, fragment, id=path.stem))
    cases.append(pytest.param(str(FIXTURES / "no_such_suite.yaml"), "", "no such suite file",
                              id="missing_file"))  # fmt: skip
    return cases


def assert_one_line_error(stderr: str, file: str, key: str = "", fragment: str = "") -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("pe-bench: error: "), line
    assert file in line, line
    if key:
        assert f"{file}: {key}: " in line, line
    assert fragment in line, line
    return line


def assert_ray_not_started() -> None:
    ray = sys.modules.get("ray")
    if ray is not None:
        assert not ray.is_initialized()


@pytest.mark.parametrize(("path", "key", "fragment"), bad_cases())
def test_validate_bad_suite(capsys: pytest.CaptureFixture[str], path: str, key: str,
                            fragment: str) -> None:  # fmt: skip
    assert main(["validate", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(err, path, key, fragment)


@pytest.mark.parametrize(("path", "key", "fragment"), bad_cases())
def test_run_bad_suite_fails_before_ray(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        path: str, key: str, fragment: str) -> None:  # fmt: skip
    store = tmp_path / "store"
    assert main(["run", path, "--store", str(store), "--data-dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(err, path, key, fragment)
    assert_ray_not_started()
    assert not store.exists()  # nothing written for a suite that never ran


def test_validate_smoke_prints_count_and_axes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SMOKE)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "suite smoke: 6 trials, 2 clean pre-training runs"
    for axis in ("datasets (1): digits", "encoders (1): simclr",
                 "attacks (3): none, poisoned-encoder, duplicate", "defenses (1): none",
                 "seeds (2): 0, 1"):  # fmt: skip
        assert f"  {axis}" in lines


def test_validate_shows_excluded_cells(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    data["exclude"] = [{"attack": "duplicate", "reason": "not in this table"}]
    path = tmp_path / "excluding.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "suite smoke: 4 trials" in out
    assert "  excluded: 2 trials (1 cell): not in this table" in out  # one cell at both seeds


def test_list_attacks_shows_builtins_with_origin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["list", "attacks"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = [line for line in out.splitlines() if " attacks " in line]
    for name in ("none", "poisoned-encoder", "duplicate"):
        assert any(re.search(rf"\b{re.escape(name)}\s.*\bpe-bench\b", row) for row in rows), out
    assert "defenses" not in out and "simclr" not in out


def test_list_all_kinds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind, name in (("attacks", "poisoned-encoder"), ("defenses", "none"),
                       ("encoders", "simclr"), ("datasets", "digits")):  # fmt: skip
        assert re.search(rf"\b{kind}\b.*\b{re.escape(name)}\b.*\bpe-bench\b", out), out


def test_list_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["list", "attack"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("exists", [True, False], ids=["empty-dir", "missing-dir"])
def test_leaderboard_of_empty_store(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    exists: bool) -> None:  # fmt: skip
    store = tmp_path / "store"
    if exists:
        store.mkdir()
    assert main(["leaderboard", "--store", str(store)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "no ok rows" in assert_one_line_error(err, str(store))


@needs_example_plugin
def test_validate_counts_unique_pre_training_runs(capsys: pytest.CaptureFixture[str]) -> None:
    suite = Path(__file__).resolve().parents[2] / "fixtures" / "suites" / "defenses-smoke.yaml"
    assert main(["validate", str(suite)]) == 0
    out = capsys.readouterr().out.splitlines()
    # trained by defenses: dedup, conservative-crop, early-stop, partition-ensemble, knn-density's
    # retraining, random-drop; decree trains nothing (it scores the encoders it is given)
    assert out[1].startswith("  unique pre-training runs: 8 (1 clean twins, 1 poisoned, "
                             "6 trained by defenses), plus 0 encoder-stage fine-tunes and "
                             "1 post-processing repairs;")


def test_validate_counts_encoder_stage_attacks_as_fine_tunes(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    """`badencoder` (stage encoder) fine-tunes the clean twin and injects no data: it is no
    poisoned pre-training; the data-stage attack is one per seed."""
    raw = yaml.safe_load((FIXTURES / "minimal.yaml").read_text(encoding="utf-8"))
    raw["seeds"] = [0, 1]
    raw["attacks"] += [{"name": "badencoder", "params": {"steps": 1}},
                       {"name": "badencoder", "params": {"steps": 2}}]
    suite = tmp_path / "stages.yaml"
    suite.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["validate", str(suite)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "suite minimal: 8 trials, 2 clean pre-training runs"
    assert out[1] == ("  unique pre-training runs: 4 (2 clean twins, 2 poisoned, 0 trained by defenses), "
                      "plus 4 encoder-stage fine-tunes and 0 post-processing repairs; every other cell "
                      "reuses them from the cache")


def test_leaderboard_sort_by_unknown_metric_is_one_line(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    from pe_bench.store.results import append
    from tests.rows import row

    append(tmp_path, row(0, [True]))
    assert main(["leaderboard", "--store", str(tmp_path), "--sort", "speed"]) == 2
    assert "unknown metric 'speed'" in assert_one_line_error(capsys.readouterr().err, "--sort")
    assert main(["leaderboard", "--store", str(tmp_path), "--sort=-asr", "--format", "csv"]) == 0


def test_validate_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SMOKE), "--set", "seeds=[0]", "--set", "attacks=[none]"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "suite smoke: 1 trials, 1 clean pre-training runs"
    assert "  seeds (1): 0" in out and "  attacks (1): none" in out


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(("item", "key", "fragment"), [
    ("train.epochs=0", "--set train.epochs", "greater than or equal to 1"),
    ("datasets.2.name=x", "--set datasets.2.name", "datasets has no item '2'"),
    ("train.epochs", "--set train.epochs", "expected KEY.PATH=VALUE"),
])
def test_bad_override_is_exit_2_and_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             command: str, item: str, key: str, fragment: str) -> None:
    store = tmp_path / "store"
    extra = ["--store", str(store), "--in-process"] if command == "run" else []
    assert main([command, str(SMOKE), "--set", "seeds=[0]", "--set", item, *extra]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(err, str(SMOKE), key, fragment)
    assert_ray_not_started()
    assert not store.exists()


@pytest.mark.parametrize("command", [["validate", str(SMOKE)], ["list"]], ids=["print", "rich"])
def test_closed_stdout_is_a_quiet_exit(command: list[str]) -> None:
    """`pe-bench ... | head -0`: the reader is gone before the first write; exit 1, no traceback."""
    import subprocess

    child = subprocess.Popen([sys.executable, "-m", "pe_bench.cli", *command], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err
