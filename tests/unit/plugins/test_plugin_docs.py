"""docs/plugins.md's examples work as printed: each block marked `<!-- example: KIND -->` is
written to a module of its own; a fresh process imports them, runs the matching contract check
on each plugin, and runs a suite that uses all four (as a suite's own `plugins:` modules)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "plugins.md"
KINDS = {"attack": "attacks", "defense": "defenses", "encoder": "encoders", "dataset": "datasets"}
SUITE = """\
name: docs-examples
seeds: [0]
plugins: {modules}
train: {{epochs: 1, batch_size: 32}}
datasets:
  - name: stripes
    pretrain: {{dataset: {{name: stripes, params: {{resolution: 16, per_class: 32}}}}}}
    tasks: [{{name: stripes, dataset: {{name: stripes, params: {{resolution: 16, per_class: 16}}}}}}]
encoders: [{{name: barlow-twins, params: {{width: 4, proj_hidden_dim: 16, proj_dim: 8}}}}]
attacks: [none, {{name: noisy-copies, params: {{poison_rate: 0.1, targets_per_task: 2}}}}]
defenses: [none, drop-wide]
"""
CHECK = """
import importlib, json, sys
from pe_bench import testing
from pe_bench.cli import main
from pe_bench.plugins.registry import REGISTRIES

sys.path.insert(0, sys.argv[1])
done = {}
for module, kind, name in json.loads(sys.argv[2]):
    importlib.import_module(module)
    plugin = REGISTRIES[kind + "s"].get(name)
    args = (plugin, sys.argv[1]) if kind == "dataset" else (plugin,)
    getattr(testing, "check_" + kind)(*args)
    done[kind] = testing.check_registered(kind + "s", name)["provenance"]
print(json.dumps(done))
sys.exit(main(["run", sys.argv[3], "--in-process", "--store", sys.argv[4], "--no-leaderboard"]))
"""


def examples() -> dict[str, str]:
    """kind -> the source of its example block."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- example: (\w+) -->\n```python\n(.*?)```", text, re.S)
    return dict(blocks)


def test_there_is_one_example_per_kind() -> None:
    found = examples()
    assert sorted(found) == sorted(KINDS)
    for kind, source in found.items():
        assert f"@register_{kind}(" in source, kind


def test_every_example_meets_its_contract_and_runs_in_a_suite(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    plugins = []
    for kind, source in examples().items():
        module = f"docs_example_{kind}"
        (site / f"{module}.py").write_text(source, encoding="utf-8")
        name = re.search(rf'@register_{kind}\("([^"]+)"', source)
        assert name, kind
        plugins.append((module, kind, name.group(1)))
    suite, store = tmp_path / "suite.yaml", tmp_path / "store"
    suite.write_text(SUITE.format(modules=[m for m, _, _ in plugins]), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", CHECK, str(site), json.dumps(plugins), str(suite), str(store)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    provenance = json.loads(proc.stdout.strip().splitlines()[0])
    assert all(p.startswith(f"module docs_example_{k} sha256:") for k, p in provenance.items())
    rows = [r for path in store.rglob("*.parquet") for r in pq.read_table(path).to_pylist()]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    attacked = [r for r in rows if r["attack"] == "noisy-copies"]
    assert all(r["n_poisons"] > 0 for r in attacked)
    versions = json.loads(attacked[0]["plugin_versions"])
    assert versions["attacks"]["noisy-copies"].startswith("module docs_example_attack sha256:")
