"""`pe-bench run --in-process`: the trials run one after another in the driver, without Ray.

The run is a subprocess in which `import ray` fails, so nothing on this path may need Ray; the
integration tests check that it gives the same numbers as the Ray path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pe_bench.cli import main
from pe_bench.store.results import scan
from tests.integration._support import REPO, cli_env, pe_bench, write_suite


@pytest.fixture
def no_ray(tmp_path: Path) -> dict[str, str]:
    """A subprocess environment in which `import ray` raises ImportError."""
    blocker = tmp_path / "blocker" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("ray is blocked in this test")\n')
    env = cli_env()
    env["PYTHONPATH"] = f"{blocker.parent}:{env['PYTHONPATH']}"
    return env


def test_runs_without_ray(tmp_path: Path, no_ray: dict[str, str]) -> None:
    suite = write_suite(tmp_path / "tiny.yaml", "tiny")
    store = tmp_path / "store"
    done = subprocess.run(pe_bench("run", suite, "--in-process", "--store", store), env=no_ray,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 ok, 0 failed" in done.stderr
    assert "pe-bench leaderboard: tiny" in done.stdout
    rows = scan(store, "tiny").to_pylist()
    assert sorted(r["attack"] for r in rows) == ["duplicate", "none"]
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["node_id"] is None and r["ray_version"] is None and r["torch_version"]
    # the attacked row found the clean twin in the cache the first row filled
    assert sum(r["cache_hits"] for r in rows) >= 1
    again = subprocess.run(pe_bench("run", suite, "--in-process", "--store", store, "--resume",
                                    "--no-leaderboard"), env=no_ray, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "0 ok, 0 failed, 2 already done" in again.stderr, again.stderr


def test_failing_trial_is_an_error_row_and_the_run_goes_on(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "bad.yaml", "bad")
    config = yaml.safe_load(suite.read_text())
    # the task's resolution differs from the pre-training set's: every trial must fail cleanly
    config["datasets"][0]["tasks"][0]["dataset"]["params"]["resolution"] = 8
    suite.write_text(yaml.safe_dump(config, sort_keys=False))
    store = tmp_path / "store"
    assert main(["run", str(suite), "--in-process", "--store", str(store), "--no-leaderboard"]) == 1
    rows = scan(store, "bad").to_pylist()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"error"}
    assert all("resolution" in r["error"] for r in rows), [r["error"] for r in rows]


def test_in_process_and_address_exclude_each_other(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path / "tiny.yaml", "tiny")
    assert main(["run", str(suite), "--in-process", "--address", "auto", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--in-process" in err and "--address" in err, err


# full.yaml at toy scale: the datasets this machine has (CIFAR-10, GTSRB) in place of STL-10,
# SVHN and EuroSAT; a small backbone, 1 epoch, a few hundred images, one seed, one CPU (full.yaml
# asks for `device: cuda`)
TOY_FULL = [
    "seeds=[0]", "resources={cpu: 1, gpu: 0}", "max_concurrent=1", "train.device=cpu",
    "train.epochs=1", "train.batch_size=64", "train.warmup_epochs=0", "evaluation.batch_size=256",
    "datasets.0.pretrain.max_images=200",
    "datasets.0.tasks=[{name: cifar10, dataset: cifar10, train_size: 100, test_size: 50},"
    " {name: gtsrb, dataset: gtsrb, train_size: 100, test_size: 50}]",
    "datasets.1={name: gtsrb, pretrain: {dataset: gtsrb, max_images: 200},"
    " tasks: [{name: gtsrb, dataset: gtsrb, train_size: 100, test_size: 50}]}",
    *(f"encoders.{i}.params={{backbone: small-cnn, width: 8, proj_hidden_dim: 32, proj_dim: 16}}"
      for i in (0, 1)),
    "encoders.2.params={backbone: small-cnn, width: 8, proj_dim: 16, text_dim: 16, text_depth: 1}",
    "exclude.0.dataset=gtsrb",  # the setting that stands in for STL-10's uncaptioned one
    "attacks.11.params={steps: 1, batch_size: 64}",  # badencoder's fine-tuning
]
NEW_ATTACKS = {"ssl-backdoor", "ctrl", "corrupt-encoder", "noisy-alignment", "badencoder", "carlini-terzis"}


@pytest.mark.data
def test_full_suite_at_toy_scale_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`--set` shrinks the paper-scale grid (2 settings x 3 encoders x 14 attacks, less the
    excluded cells) until it runs here in minutes, every cell of it: the way to try a cluster
    suite before the cluster."""
    data = Path(os.environ.get("PE_BENCH_DATA") or REPO.parent / "shared" / "data")
    if not all((data / name).is_dir() for name in ("cifar10", "gtsrb")):
        pytest.skip(f"CIFAR-10 and GTSRB not found in {data}")
    monkeypatch.setenv("PE_BENCH_DATA", str(data))
    full = REPO / "suites" / "full.yaml"
    overrides = [arg for item in TOY_FULL for arg in ("--set", item)]
    store = tmp_path / "store"
    assert main(["run", str(full), "--in-process", "--store", str(store), "--no-leaderboard",
                 *overrides]) == 0, capsys.readouterr().err
    rows = scan(store, "full").to_pylist()
    # image-only encoders: 14 attacks less carlini-terzis' 2; CLIP (first setting only): none,
    # badencoder and carlini-terzis' 2 variants
    assert len(rows) == 2 * 2 * 12 + 4 and {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    assert {(r["dataset"], r["encoder"]) for r in rows} == {
        (d, e) for d in ("cifar10", "gtsrb") for e in ("simclr", "moco")} | {("cifar10", "clip")}
    assert {r["attack"] for r in rows} == {"none", "poisoned-encoder", "duplicate", "blend"} | NEW_ATTACKS
    assert {r["attack"] for r in rows if r["encoder"] == "clip"} == {"none", "badencoder", "carlini-terzis"}
    assert {r["family"] for r in rows if r["attack"] in NEW_ATTACKS - {"carlini-terzis"}} == {"backdoor"}
    assert {r["family"] for r in rows if r["attack"] == "carlini-terzis"} == {"targeted", "backdoor"}
    # each setting's attacker splits leave its 200 pre-training images, the same in every cell
    assert all(r["n_pretrain"] < 200 and r["seed"] == 0 for r in rows)
    assert len({(r["dataset"], r["n_pretrain"]) for r in rows}) == 2
    attacked = [r for r in rows if r["attack"] != "none"]
    assert all(r["asr"] is not None for r in attacked)
    assert all(r["n_poisons"] > 0 for r in attacked if r["attack"] != "badencoder")  # it injects none
