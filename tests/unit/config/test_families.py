"""Two attack families, one row schema: the `family` column (old stores read as targeted),
backdoor lines read per seed beside targeted lines read per target pair, both families on
every board and in the figure; and which cells can run, stated once (`inapplicable`) and
shown in `validate` and docs/applicability.md."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet
from pe_bench.cli import main
from pe_bench.config.grid import applicability, inapplicable
from pe_bench.report.leaderboard import aggregate, from_store, to_csv, to_markdown
from pe_bench.store.metrics import TRIGGER_HITS
from pe_bench.report.plot.figure import points
from pe_bench.plugins.registry import ATTACKS
from pe_bench.store.results import append, latest_ok, scan
from pe_bench.store.schema import SCHEMA
from pe_bench.report.stats import sign_flip_p
from tests.rows import backdoor_row, row, typed

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "suites" / "smoke.yaml"
NEW = ("family", "n_triggered", *TRIGGER_HITS)  # columns schema version 4 added


def _schema_without(schema: pa.Schema, names: tuple[str, ...]) -> pa.Schema:
    """The schema as version 3 wrote it: without `names`, at the top and inside the tasks."""
    def strip(t: pa.DataType) -> pa.DataType:
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, strip(f.type)) for f in t if f.name not in names])
        if pa.types.is_list(t):
            return pa.list_(strip(t.value_type))
        return t
    return pa.schema([pa.field(f.name, strip(f.type)) for f in schema if f.name not in names])


def test_a_store_written_before_families_reads_as_targeted(tmp_path: Path) -> None:
    record = row(0, [True, False])
    old = _schema_without(SCHEMA, NEW)
    values = {k: record[k] for k in old.names}
    values.update({k: datetime.fromisoformat(values[k]) for k in ("started_at", "finished_at")})
    table = pa.Table.from_pylist([values], schema=old)
    (tmp_path / "suite=unit" / "run=v3").mkdir(parents=True)
    pq.write_table(table.replace_schema_metadata({"pe_bench_schema": "3"}),
                   tmp_path / "suite=unit" / "run=v3" / "old.parquet")
    (got,) = scan(tmp_path).to_pylist()
    assert got["family"] is None and got["n_triggered"] is None
    assert got["tasks"][0]["triggered_hits"] is None and got["asr"] == 0.5
    (line,) = aggregate(typed([got]))
    assert line.family == "targeted" and line.intervals["delta_asr"] is not None


def test_rows_carry_their_attacks_family(tmp_path: Path) -> None:
    append(tmp_path, row(0, [True]))
    append(tmp_path, backdoor_row(0, 30, 10))
    families = {r["attack"]: r["family"] for r in scan(tmp_path).to_pylist()}
    assert families == {"poisoned-encoder": "targeted", "ssl-backdoor": "backdoor"}


def test_a_backdoor_line_reads_its_delta_asr_per_seed(tmp_path: Path) -> None:
    hits = [(30, 10), (25, 20), (40, 12)]  # per seed: (attacked, clean twin) of 100 triggered inputs
    for seed, (h, c) in enumerate(hits):
        append(tmp_path, backdoor_row(seed, h, c))
    (line,) = from_store(tmp_path)
    ci = line.intervals["delta_asr"]
    deltas = [(h - c) / 100 for h, c in hits]
    assert line.family == "backdoor" and line.pairs == 0 and line.triggered == 300
    assert ci is not None and ci.units == 3  # the seed is the unit, not the 300 inputs
    assert ci.mean == pytest.approx(sum(deltas) / 3) and ci.p == sign_flip_p(deltas)
    half = 4.302652729911275 * statistics.stdev(deltas) / math.sqrt(3)  # Student's t(2, 0.975)
    assert (ci.low, ci.high) == pytest.approx((ci.mean - half, ci.mean + half))
    assert line.intervals["delta_p"] is None  # no target pairs: no p(target)
    md = to_markdown([line], "t")
    assert "| 95/300 |" in md and "| 42/300 |" in md  # hits and clean hits over triggered inputs
    assert "sign-flip test over seeds" in md


def test_both_families_share_every_board_and_the_figure(tmp_path: Path) -> None:
    for seed in range(3):
        append(tmp_path, row(seed, [True, False, True]))
        append(tmp_path, backdoor_row(seed, 30 + seed, 10))
    lines = from_store(tmp_path)
    assert {ln.family for ln in lines} == {"targeted", "backdoor"}
    md, csv = to_markdown(lines, "t"), to_csv(lines)
    assert "| family |" in md and "| backdoor |" in md and "| targeted |" in md
    assert "backdoor" in csv and "targeted" in csv
    pts, skipped = points(latest_ok(scan(tmp_path)))
    assert not skipped and {p.line.family for p in pts} == {"targeted", "backdoor"}


def test_leaderboard_plot_and_publish_commands_show_both_families(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    for seed in range(3):
        append(store, row(seed, [True, False]))
        append(store, backdoor_row(seed, 30, 10))
    assert main(["leaderboard", "--store", str(store), "--format", "md"]) == 0
    assert "backdoor" in capsys.readouterr().out
    assert main(["plot", "--store", str(store), "--out", str(tmp_path / "fig")]) == 0
    svg = (tmp_path / "fig.svg").read_text(encoding="utf-8")
    assert 'id="backdoor' in svg and 'id="targeted' in svg
    assert main(["publish", "--store", str(store), "--out", str(tmp_path / "site")]) == 0
    published = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.md"))
    assert "backdoor" in published and "targeted" in published


# -- applicability -----------------------------------------------------------------------------------
@pytest.fixture
def supply_chain(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A registered encoder-stage attack (BadEncoder's threat model), removed afterwards."""
    monkeypatch.setattr(ATTACKS, "_loaded", dict(ATTACKS._loaded))

    @ATTACKS.register("supply-chain-test", family="backdoor", stage="encoder", modalities=("image",))
    class SupplyChain(Attack):
        def craft(self, ctx: AttackContext) -> PoisonSet:
            return PoisonSet()

    yield "supply-chain-test"


def test_an_encoder_stage_attack_excludes_pre_and_in_processing_defenses(supply_chain: str) -> None:
    for defense in ("dedup", "conservative-crop", "early-stop", "partition-ensemble"):
        assert "stage encoder" in (inapplicable(supply_chain, "simclr", defense) or "")
    for defense in ("none", "clean-finetune"):
        assert inapplicable(supply_chain, "simclr", defense) is None
    assert inapplicable(supply_chain, "clip", "none") is None  # it brings no data to caption


def test_image_only_data_cannot_poison_an_image_text_encoder() -> None:
    for attack in ("ssl-backdoor", "ctrl", "poisoned-encoder"):
        assert "image data only" in (inapplicable(attack, "clip", "none") or "")
        assert inapplicable(attack, "moco", "dedup") is None
    assert inapplicable("none", "clip", "dedup") is None


def test_image_caption_poisons_run_on_image_text_and_image_only_encoders() -> None:
    """carlini-terzis injects image+text: nothing is missing for clip, and an image-only encoder
    trains on its images with the captions dropped (train.py)."""
    for encoder in ("clip", "simclr", "moco"):
        assert inapplicable("carlini-terzis", encoder, "dedup") is None


def test_validate_lists_the_excluded_cells_with_their_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    data["encoders"] = [*data["encoders"], {"name": "clip"}]
    data["attacks"] = [*data["attacks"], {"name": "ssl-backdoor"}]
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "): the attack injects image data only; encoder clip trains on image+text" in out
    assert "× clip × ssl-backdoor × none" in out


def test_the_committed_applicability_table_is_what_the_command_prints() -> None:
    printed = subprocess.run([sys.executable, "-m", "pe_bench.cli", "list", "--applicability"],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert printed == applicability()
    assert (ROOT / "docs" / "applicability.md").read_text(encoding="utf-8") == printed, (
        "docs/applicability.md is stale: pe-bench list --applicability > docs/applicability.md")
    assert "| ssl-backdoor | backdoor | data | image | clip |" in printed


def test_every_builtin_attack_declares_family_stage_and_modalities() -> None:
    for name in ATTACKS.names():
        declared = ATTACKS.infos()[name].declared
        if ATTACKS.infos()[name].builtin:
            assert {"family", "stage", "modalities"} <= set(declared), name
    assert json.loads(json.dumps(ATTACKS.metadata("ctrl").model_dump()))["family"] == "backdoor"
