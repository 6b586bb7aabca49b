"""Plugin provenance: which code produced a row, and an artefact cache that never serves an
encoder trained by a plugin's old code nor fails on an artefact that no longer loads.

The end-to-end tests run tiny suites in-process; a fake installed encoder package (a
`*.dist-info` folder in a temporary site on the path, as in tests/unit/plugins/test_plugin_package.py) lets
a test bump a plugin's version between runs."""

from __future__ import annotations

import hashlib
import importlib
import json
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from pe_bench.cli import main
from pe_bench.plugins.types import EncoderMeta
from pe_bench.plugins.registry import BUILTIN_ORIGIN, DEFENSES, ENCODERS, REGISTRIES, Registry, provenance_of
from pe_bench.config.spec import PluginRef, PretrainSpec, TaskSpec, TrainSpec, TrialSpec
from tests.helpers import write_dist_info

ENCODER_SOURCE = """
    from pe_bench.encoders.simclr import SimCLR

    class TinyEncoder(SimCLR):
        '''SimCLR under another name: a stand-in for a third-party encoder.'''
"""
SUITE = """\
name: {name}
seeds: [0]
plugins: {plugins}
train: {{epochs: 1, batch_size: 64}}
datasets:
  - name: digits
    pretrain: {{dataset: {{name: digits, params: {{resolution: 16}}}}, max_images: 128}}
    tasks: [{{name: digits, dataset: {{name: digits, params: {{resolution: 16}}}}}}]
encoders: [{{name: {encoder}, params: {{width: 4, proj_hidden_dim: 16, proj_dim: 8}}}}]
attacks: [none]
"""


class Site:
    """A temporary folder first on a subprocess's path: modules and fake distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"prov_{uuid.uuid4().hex[:8]}"
        root.mkdir(parents=True)

    def module(self, name: str, source: str) -> str:
        full = f"{self.prefix}_{name}"
        (self.root / f"{full}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return full

    def install(self, dist: str, version: str, group: str, entry_points: dict[str, str]) -> None:
        """(Re)install a fake distribution at `version`, replacing any other version of it."""
        write_dist_info(self.root, dist, version, group, entry_points)

    def suite(self, encoder: str, plugins: tuple[str, ...] = ()) -> Path:
        path = self.root.parent / f"{encoder}.yaml"
        path.write_text(SUITE.format(name="prov", encoder=encoder, plugins=list(plugins)), encoding="utf-8")
        return path


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


def spec(encoder: str = "simclr") -> TrialSpec:
    digits = PluginRef(name="digits")
    task = TaskSpec(name="digits", dataset=PluginRef(name="parquet", params={"path": "x"}))
    return TrialSpec(suite="s", dataset="digits", seed=0, pretrain=PretrainSpec(dataset=digits),
                     tasks=(task,), encoder=PluginRef(name=encoder), attack=PluginRef(name="duplicate"),
                     defense=PluginRef(name="none"), train=TrainSpec(), evaluation={"probe": "linear"})


# -- what a row records --------------------------------------------------------------------------
def test_builtins_are_pe_bench_and_its_version() -> None:
    from pe_bench import __version__

    assert provenance_of("encoders", "simclr") == f"{BUILTIN_ORIGIN} {__version__}"
    used = spec().plugins_used()
    assert used == {"attacks": ("duplicate",), "datasets": ("digits", "parquet"), "defenses": ("none",),
                    "encoders": ("simclr",)}
    # a clean encoder does not depend on the attack, but on the task datasets (the attacker's
    # held-out split of each task is removed from its pre-training set)
    assert spec().plugins_used(("encoders", "attacks", "datasets"), poisoned=False) == {
        "encoders": ("simclr",), "datasets": ("digits", "parquet")}


def test_an_unpackaged_module_is_named_with_a_hash_of_its_source(site: Site,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site.root))
    name = f"prov-local-defense-{site.prefix}"
    module = site.module("hooks", f"""
        from pe_bench.defenses.base import Defense
        from pe_bench.plugins.registry import register_defense

        @register_defense("{name}")
        class Local(Defense):
            pass
    """)
    importlib.import_module(module)
    try:
        source = (site.root / f"{module}.py").read_bytes()
        expected = f"module {module} sha256:{hashlib.sha256(source).hexdigest()[:16]}"
        assert provenance_of("defenses", name) == expected
    finally:  # the real registry forgets the throw-away plugin
        DEFENSES._loaded.pop(name, None)


def test_pretrain_key_follows_the_plugin_version_but_trial_and_cell_keys_do_not(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site.root))
    module = site.module("enc", ENCODER_SOURCE)
    keys = []
    for version in ("1.0", "1.1"):
        site.install("tiny-encoders", version, "pe_bench.encoders", {"tiny": f"{module}:TinyEncoder"})
        fresh = Registry("encoders", ["pe_bench.encoders"], "register_encoder", EncoderMeta)
        monkeypatch.setitem(REGISTRIES, "encoders", fresh)
        assert provenance_of("encoders", "tiny") == f"tiny-encoders {version}"
        s = spec("tiny")
        keys.append((s.pretrain_key(None), s.pretrain_key(s.poison_id()), s.trial_key, s.cell_key))
    (clean1, poisoned1, trial1, cell1), (clean2, poisoned2, trial2, cell2) = keys
    assert clean1 != clean2 and poisoned1 != poisoned2
    assert (trial1, cell1) == (trial2, cell2)  # the leaderboard and --resume are unaffected


# -- the artefact cache, end to end (in-process runs in this process) ---------------------------
def run(suite: Path, store: Path) -> list[dict[str, object]]:
    """`pe-bench run SUITE --in-process`; the rows it wrote."""
    before = set(store.rglob("*.parquet"))
    assert main(["run", str(suite), "--in-process", "--store", str(store), "--no-leaderboard"]) == 0
    return [row for path in sorted(set(store.rglob("*.parquet")) - before)
            for row in pq.read_table(path).to_pylist()]


@pytest.fixture
def encoders_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real encoder registry, free to re-read installed packages; restored afterwards (its
    index as before, the fake plugin forgotten). SimCLR registers first, so it stays."""
    importlib.import_module("pe_bench.encoders.simclr")
    monkeypatch.setattr(ENCODERS, "_index", None)
    yield
    ENCODERS._loaded.pop("tiny", None)


def reinstalled(site: Site, version: str, module: str) -> None:
    """Install `tiny-encoders` at `version`; the registry sees it as a new process would."""
    site.install("tiny-encoders", version, "pe_bench.encoders", {"tiny": f"{module}:TinyEncoder"})
    ENCODERS._index = None
    ENCODERS._loaded.pop("tiny", None)


@pytest.mark.usefixtures("isolated", "encoders_registry")
def test_a_new_plugin_version_never_receives_encoders_of_the_old_one(
        site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site.root))
    module = site.module("enc", ENCODER_SOURCE)
    suite, store = site.suite("tiny"), tmp_path / "store"
    reinstalled(site, "1.0", module)
    (first,) = run(suite, store)
    (again,) = run(suite, store)  # same version: the cached encoder is reused
    reinstalled(site, "2.0", module)
    (bumped,) = run(suite, store)
    assert [r["status"] for r in (first, again, bumped)] == ["ok"] * 3, bumped["error"]
    assert (first["cache_hits"], again["cache_hits"], bumped["cache_hits"]) == (0, 1, 0)
    versions = [json.loads(str(r["plugin_versions"]))["encoders"] for r in (first, bumped)]
    assert versions == [{"tiny": "tiny-encoders 1.0"}, {"tiny": "tiny-encoders 2.0"}]
    assert first["trial_key"] == bumped["trial_key"]
    assert first["ca"] == bumped["ca"]  # the same code, retrained: the same numbers


@pytest.mark.usefixtures("isolated")
def test_a_cached_encoder_that_no_longer_loads_is_retrained(site: Site, tmp_path: Path) -> None:
    suite, store = site.suite("simclr"), tmp_path / "store"
    (first,) = run(suite, store)
    (weights,) = (store / "_cache" / "encoders").glob("*.pt")
    rows = []
    for damage in ("garbage", "other-architecture"):
        if damage == "garbage":
            weights.write_bytes(b"not a state dict")
        else:  # what a changed architecture leaves behind: other keys and shapes
            torch.save({"backbone.body.0.0.weight": torch.zeros(2, 2)}, weights)
        unreadable = damage == "garbage"
        with pytest.warns(UserWarning, match="rebuilding unreadable") if unreadable else nullcontext():
            rows += run(suite, store)
    (last,) = run(suite, store)  # the retrained encoder replaced the broken one
    assert [r["status"] for r in (first, *rows, last)] == ["ok"] * 4, [r["error"] for r in rows]
    assert [r["cache_hits"] for r in (first, *rows, last)] == [0, 0, 0, 1]
    assert {r["ca"] for r in (first, *rows, last)} == {first["ca"]}
