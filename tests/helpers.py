"""Small synthetic data for tests: no files, no downloads."""

from __future__ import annotations

import importlib
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from pe_bench.attacks.base import AttackContext
from pe_bench.plugins.types import ImageArray
from pe_bench.plugins.types import Task


def solid_images(labels: np.ndarray, size: int = 8, channels: int = 3, noise: int = 20,
                 seed: int = 0) -> np.ndarray:
    """One flat colour per class (class c -> value 20 + 20c), plus a little noise."""
    rng = np.random.default_rng(seed)
    base = (20 + 20 * labels.astype(np.int64))[:, None, None, None]
    imgs = base + rng.integers(-noise, noise + 1, size=(len(labels), channels, size, size))
    return np.clip(imgs, 0, 255).astype(np.uint8)


def toy_task(name: str = "toy", n_classes: int = 4, per_class: int = 12, size: int = 8) -> Task:
    train_y = np.repeat(np.arange(n_classes), per_class)
    test_y = np.repeat(np.arange(n_classes), per_class // 2)
    classes = tuple(str(c) for c in range(n_classes))
    return Task(
        name,
        ImageArray(solid_images(train_y, size, seed=1), train_y, classes),
        ImageArray(solid_images(test_y, size, seed=2), test_y, classes),
    )


def write_dist_info(site: Path, name: str, version: str, group: str, entry_points: dict[str, str]) -> Path:
    """A fake installed distribution in `site` (a folder on sys.path) declaring `entry_points`
    in `group`, as pip would leave it; any other version of it there is removed first."""
    for old in site.glob(f"{name.replace('-', '_')}-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")
    lines = [f"[{group}]", *(f"{k} = {v}" for k, v in entry_points.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    importlib.invalidate_caches()
    return info


def _example_installed() -> bool:
    try:
        metadata.distribution("pe-bench-defense-example")
    except metadata.PackageNotFoundError:
        return False
    return True


# for tests whose suites name the example package's `random-drop` defense
needs_example_plugin = pytest.mark.skipif(
    not _example_installed(),
    reason="examples/pe-bench-defense-example is not installed (`make test` installs it)")


def four_class_context(size: int, seed: int = 0) -> AttackContext:
    """An attack's context on a toy task: four classes of flat images (class c: value 20 + 20c),
    8 train and 8 test images per class, 3 noise-free images per class held by the attacker,
    200 random pre-training images."""
    labels, own = np.repeat(np.arange(4), 8), np.repeat(np.arange(4), 3)
    classes = ("a", "b", "c", "d")
    task = Task("toy", ImageArray(solid_images(labels, size, seed=1), labels, classes),
                ImageArray(solid_images(labels, size, seed=2), labels, classes),
                ImageArray(solid_images(own, size, noise=0, seed=3), own, classes))
    pre = np.random.default_rng(5).integers(0, 256, (200, 3, size, size), dtype=np.uint8)
    return AttackContext(pre, (task,), seed)


def placeholder_data(root: Path) -> Path:
    """A data dir in which every built-in dataset is found but none can be read: empty files
    named as each dataset folder's Parquet shards (and STL-10's unlabeled file, which has no
    Parquet form). Enough for `validate`, whose `Dataset.locate` reads no file."""
    from pe_bench.plugins.registry import DATASETS

    builtins = [name for name, info in DATASETS.infos().items() if info.builtin]
    for folder in {getattr(DATASETS.get(name), "folder", None) for name in builtins} - {None}:
        (root / str(folder)).mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            (root / str(folder) / f"{split}-00000-of-00001.parquet").touch()
    (root / "stl10" / "stl10_binary").mkdir(parents=True, exist_ok=True)
    (root / "stl10" / "stl10_binary" / "unlabeled_X.bin").touch()
    return root


def tiny_suite(name: str, attacks: str, defenses: str = "[none]") -> str:
    """A suite that runs in seconds in-process (digits at 16 px, 128 images, one epoch, a width-4
    SimCLR); `attacks` and `defenses` are YAML lists."""
    return f"""\
name: {name}
seeds: [0]
train: {{epochs: 1, batch_size: 64}}
datasets:
  - name: digits
    pretrain: {{dataset: {{name: digits, params: {{resolution: 16}}}}, max_images: 128}}
    tasks: [{{name: digits, dataset: {{name: digits, params: {{resolution: 16}}}}}}]
encoders: [{{name: simclr, params: {{width: 4, proj_hidden_dim: 16, proj_dim: 8}}}}]
attacks: {attacks}
defenses: {defenses}
"""
