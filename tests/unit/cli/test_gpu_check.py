"""ops/gpu_check.sh rehearsed on CPU (REHEARSAL=1: toy sizes, the same steps as on a lent GPU):
every step succeeds, every image-only encoder is measured, both tracks of the suite run, and
$OUT holds only what a lent machine returns; a failing step stops the work and fails the script.

The data is a tiny CIFAR-10 in the Parquet layout written here, passed as DATA: a step that did
not get the data directory would find no (or other) data."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
STEPS = ("install", "environment", "data", "throughput", "suite", "board", "rows")
NAME = re.compile(r"[A-Za-z0-9._-]+")
MAX_FILES, MAX_FOLDERS = 8, 2  # what a lent machine brings back from $OUT


def tiny_cifar10(root: Path) -> Path:
    """300 train / 100 test 32x32 images, the class marked in one colour channel."""
    rng = np.random.default_rng(0)
    img_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for split, n in (("train", 300), ("test", 100)):
        labels = np.arange(n) % 10
        rows = []
        for i, label in enumerate(labels):
            image = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            image[:, :, label % 3] += np.uint8(20 * label)
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            rows.append({"bytes": buf.getvalue(), "path": f"{i}.png"})
        table = pa.table({"img": pa.array(rows, img_type), "label": pa.array(labels.astype(np.int64))})
        (root / "cifar10").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "cifar10" / f"{split}-00000-of-00001.parquet")
    return root


def not_returnable(out: Path) -> list[str]:
    """What a lent machine would not bring back from `out`: files beyond the first 8, files
    more than 2 folders down, names outside [A-Za-z0-9._-], anything not a plain file."""
    problems, files = [], []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not all(NAME.fullmatch(part) for part in rel.parts):
            problems.append(f"name: {rel}")
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            problems.append(f"not a plain file: {rel}")
        elif path.is_file():
            files.append(rel)
            if len(rel.parts) - 1 > MAX_FOLDERS:
                problems.append(f"too deep: {rel}")
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files: {[str(f) for f in files]}")
    return problems


def test_not_returnable_names_each_breach(tmp_path: Path) -> None:
    for rel in ("a/b/ok.txt", "a/b/c/deep.txt", "odd=name.parquet", *(f"f{i}" for i in range(6))):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    problems = not_returnable(tmp_path)
    assert any(p.startswith("too deep: a/b/c/deep.txt") for p in problems), problems
    assert "name: odd=name.parquet" in problems and any(p.startswith("9 files") for p in problems)
    assert not_returnable(tmp_path / "a") == []


def rehearse(tmp_path: Path, data: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "out"
    env = {**os.environ, "REHEARSAL": "1", "PY": sys.executable, "OUT": str(out),
           "STORE": str(tmp_path / "store"), "DATA": str(data), "OMP_NUM_THREADS": "1",
           "PE_BENCH_CACHE": str(tmp_path / "decode")}
    env.pop("PE_BENCH_DATA", None)
    done = subprocess.run(["bash", "ops/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    return done, out


def status_of(out: Path) -> dict[str, int]:
    lines = (out / "status.txt").read_text().splitlines()
    return {line.split()[0]: int(line.split()[1].removeprefix("rc=")) for line in lines
            if line.split()[0] in STEPS}


def test_rehearsal_on_cpu_every_step_ok(tmp_path: Path) -> None:
    data = tiny_cifar10(tmp_path / "data")
    done, out = rehearse(tmp_path, data)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert status_of(out) == dict.fromkeys(STEPS, 0)
    assert (out / "status.txt").read_text().splitlines()[-1].startswith("result: ok")
    assert not_returnable(out) == []
    assert {p.name for p in out.iterdir()} == {"status.txt", "log.txt", "environment.txt",
                                               "throughput.json", "throughput.txt", "leaderboard.md",
                                               "rows.tgz"}
    payload = json.loads((out / "throughput.json").read_text())
    assert payload["complete"] and payload["config"]["data_dir"] == str(data)
    assert all("error" not in r for r in payload["rows"]), payload["rows"]
    assert {r["encoder"] for r in payload["rows"]} >= {"simclr", "moco"}  # every image-only one
    with tarfile.open(out / "rows.tgz") as archive:
        names = archive.getnames()
        assert not [n for n in names if "_cache" in n]
        rows = [pq.read_table(archive.extractfile(n)).to_pylist()[0]  # type: ignore[arg-type]
                for n in names if n.endswith(".parquet")]
    assert sorted(r["attack"] for r in rows) == ["ctrl", "duplicate", "none", "poisoned-encoder"]
    assert {r["status"] for r in rows} == {"ok"} and {r["family"] for r in rows} == {"targeted", "backdoor"}
    board = (out / "leaderboard.md").read_text()
    assert "| poisoned-encoder |" in board and "| ctrl |" in board and "other = duplicate" in board


def test_a_failing_step_stops_the_work_and_fails_the_script(tmp_path: Path) -> None:
    done, out = rehearse(tmp_path, tmp_path / "no-data")
    assert done.returncode == 1, done.stdout[-3000:]
    status = status_of(out)
    assert status["install"] == status["environment"] == 0 and status["data"] == 2
    assert "throughput" not in status and "suite" not in status  # stopped there
    assert "board" in status and status["rows"] == 0  # what finished is still packed
    assert (out / "status.txt").read_text().splitlines()[-1].startswith("result: FAILED at data rc=2")
    assert "not found" in (out / "log.txt").read_text()
    assert not_returnable(out) == []


@pytest.mark.parametrize("script", ["ops/gpu_check.sh", "ops/prepare_gpu_check.sh"])
def test_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", script], cwd=ROOT).returncode == 0
