"""`decree`'s trigger-size measure and decision rule. The release (commit 9c13b88) measures a mask
as the L1 norm of the one (H, W) mask repeated over 3 colour channels and computes no PL1 itself;
ours, the one-channel mask's share of the image, is that L1 over the L1 of an all-ones 3-channel
image (3 H W). A default threshold or normalisation changed without its declaration fails here."""

from __future__ import annotations

import sys

import torch

from pe_bench.plugins.registry import DEFENSES


def _release_pl1(mask: list[list[float]]) -> float:
    """Slow reference: the release's L1 of the mask repeated over 3 channels, over the L1 of an
    all-ones image of the same shape (the largest a mask in [0, 1] can be)."""
    repeated = [[[abs(v) for v in row] for row in mask] for _ in range(3)]
    l1 = sum(v for channel in repeated for row in channel for v in row)
    ones = sum(1.0 for _ in range(3) for row in mask for _ in row)
    return l1 / ones


def _pl1(mask: torch.Tensor) -> float:
    decree = DEFENSES.get("decree")
    return float(sys.modules[decree.__module__].pl1(mask))


def test_pl1_is_the_release_s_3_channel_mask_l1_over_3hw() -> None:
    # a 4x5 mask: a 2x3 block of ones and one half-on pixel, 6.5 pixels of 20
    mask = [[0.0] * 5 for _ in range(4)]
    for i in (1, 2):
        for j in (1, 2, 3):
            mask[i][j] = 1.0
    mask[3][4] = 0.5
    got = _pl1(torch.tensor(mask, dtype=torch.float64)[None, None])
    assert got == _release_pl1(mask) == 6.5 / 20
    assert _pl1(torch.zeros(1, 1, 7, 3)) == 0.0 and _pl1(torch.ones(1, 1, 7, 3)) == 1.0


def test_the_flag_flips_at_the_threshold() -> None:
    decree = DEFENSES.get("decree").from_dict({})
    assert decree.params.threshold == 0.1
    assert decree.flag_encoder(1 - 0.099) is True  # a trigger under a tenth of the image
    assert decree.flag_encoder(1 - 0.101) is False
    assert decree.flag_encoder(0.0) is False  # no mask reached the similarity target
    strict = DEFENSES.get("decree").from_dict({"threshold": 0.05})
    assert strict.flag_encoder(1 - 0.049) is True and strict.flag_encoder(1 - 0.051) is False


def test_the_docstring_cites_the_release_commit_and_its_missing_threshold() -> None:
    doc = sys.modules[DEFENSES.get("decree").__module__].__doc__ or ""
    assert "9c13b88" in doc and "computes no PL1" in doc and "lines 257-261, 290" in doc
