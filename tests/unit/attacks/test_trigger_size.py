"""Trigger sizes follow the image side (pe_bench.plugins.scale, pe_bench.attacks.trigger_size): each patch trigger keeps
its paper's share of the side, CTRL its window, frequencies and per-pixel amplitude."""

from __future__ import annotations

import numpy as np
import pytest

from pe_bench.attacks.ctrl import frequency_trigger
from pe_bench.plugins.scale import side_scaled
from pe_bench.plugins.registry import ATTACKS

# the papers' trigger sides over their images' sides, and what the plugins use at 32 x 32
PAPERS = {"ssl-backdoor": (50 / 224, 8), "noisy-alignment": (50 / 224, 7), "corrupt-encoder": (40 / 224, 6),
          "carlini-terzis": (16 / 224, 3), "badencoder": (10 / 32, 10)}


def test_the_rule_rounds_half_up_and_never_reaches_zero() -> None:
    assert [side_scaled(8, s) for s in (32, 16, 8, 64, 224)] == [8, 4, 2, 16, 56]
    assert side_scaled(7, 16) == 4 and side_scaled(3, 16) == 2 and side_scaled(1, 8) == 1


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_each_patch_keeps_its_papers_share_of_the_side(name: str) -> None:
    share, at_32 = PAPERS[name]
    variant = {"variant": "backdoor"} if name == "carlini-terzis" else {}
    params = ATTACKS.get(name).from_dict(variant).params
    assert params.patch(32) == at_32 and abs(at_32 / 32 - share) < 0.5 / 32 + 1 / 32  # within rounding
    assert params.patch(16) == side_scaled(at_32, 16) and params.patch(224) == side_scaled(at_32, 224)
    assert ATTACKS.get(name).Params.model_validate({**variant, "patch_size": 5}).patch(16) == 5  # a set size is kept


def test_ctrl_at_16_px_is_its_32_px_trigger_on_a_window_half_as_wide() -> None:
    params = ATTACKS.get("ctrl").from_dict({}).params
    assert params.resolved(32) == type(params.resolved(32))(32, (15, 31), 100.0)
    assert params.resolved(16) == type(params.resolved(16))(16, (7, 15), 50.0)
    assert params.resolved(64).size == 32  # larger images: the release's 32-px window, tiled
    # the same per-pixel amplitude: the trigger moves a flat grey image as much at 16 px as at 32
    moved = [np.abs(frequency_trigger(np.full((1, 3, s, s), 128, np.uint8), params).astype(int) - 128).max()
             for s in (32, 16)]
    assert abs(moved[0] - moved[1]) <= 2
