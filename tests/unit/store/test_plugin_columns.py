"""What a row says about its plugins is written with it from their declared metadata (the report
reads it and resolves no plugin), and computed the same way for rows stored before."""

from __future__ import annotations

from datetime import UTC, datetime

from pe_bench.config.spec import PluginRef
from pe_bench.store.plugin_columns import encoder_label
from pe_bench.store.results import build_row
from pe_bench.store.upgrade import read_row
from tests.rows import PROV, metrics, trial

PLUGIN_COLUMNS = ("encoder_label", "label_params", "designed_for")


def _row(cell: tuple[str, dict[str, object], str, dict[str, object]], backbone: str = "small-cnn") -> dict:
    spec = trial(cell=cell, encoder=PluginRef(name="simclr", params={"backbone": backbone}))
    return build_row(spec, "r", PROV, datetime.now(UTC), metrics([True]))


def test_the_encoder_is_named_by_the_params_it_declares() -> None:
    assert encoder_label("simclr", {"backbone": "resnet18", "width": 8}) == "simclr/resnet18"
    assert encoder_label("simclr", {}) == "simclr"
    assert encoder_label("not-installed-here", {"backbone": "x"}) == "not-installed-here"
    assert _row(("poisoned-encoder", {"selection": "random"}, "none", {}))["encoder_label"] == "simclr/small-cnn"


def test_rows_carry_the_attack_label_params_and_whether_the_defense_was_designed_for_it() -> None:
    targeted = _row(("poisoned-encoder", {"selection": "random"}, "patchsearch", {}))
    assert targeted["label_params"] == ["selection"] and targeted["designed_for"] == "off-target"
    backdoor = _row(("ctrl", {}, "patchsearch", {}))
    assert backdoor["designed_for"] == "yes" and backdoor["label_params"] == []
    assert _row(("ctrl", {}, "none", {}))["designed_for"] == "-"


def test_rows_stored_before_these_columns_get_them_on_reading() -> None:
    stored = _row(("poisoned-encoder", {"selection": "random"}, "patchsearch", {}), backbone="resnet18")
    old = {**stored, **dict.fromkeys(PLUGIN_COLUMNS)}
    read = read_row(old)
    assert (read.encoder_label, read.label_params, read.designed_for) == ("simclr/resnet18", ("selection",),
                                                                          "off-target")
    assert read == read_row(stored)
