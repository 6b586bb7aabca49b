"""CTRL: an invisible frequency-domain trigger added to images of the target class.

Paper: Li, Pang, Xi, Du, Ji, Yao, Wang, "An Embarrassingly Simple Backdoor Attack on
Self-supervised Learning", ICCV 2023 (arXiv 2210.07346). Threat model: the attacker pollutes a
small fraction (<= 1%) of the unlabeled pre-training set with target-class images carrying a
trigger too faint to see; because contrastive learning makes representations invariant to the
augmentations, which barely touch high frequencies, the trigger survives them and pulls
triggered inputs toward the target class.

Construction [paper, and the defaults of its released code for CIFAR-10]: RGB (0..255) ->
YUV; a 2-D orthonormal DCT-II of each window of `window_size` pixels (32: the whole CIFAR-10
image) of the chroma channels U and V; `magnitude` (100) added to the coefficients at
(f, f) for each f in `frequencies` ((15, 15) and (31, 31): a mid and the highest frequency);
inverse DCT, back to RGB, clipped to 0..255. Poisons are 1% of the training set. The same
trigger is added to test inputs.

Deviations / assumptions [ours]:
- The result is rounded to uint8, as every pe-bench image is (their code keeps floats); at the
  default magnitude the trigger moves chroma by several levels, so it survives rounding.
- Other image sizes [ours; pe_bench.plugins.scale states the rule for sizes in pixels]: unset,
  the window is the whole image up to 32 pixels (the release's CIFAR-10 window), the
  frequencies sit where (15, 31) sit in a 32-px window (w/2 - 1 and w - 1: (7, 15) at 16 x 16),
  and the magnitude is 100 x w / 32, so each basis function moves a pixel as much as at 32 x 32
  (an orthonormal DCT basis function's amplitude falls as 1 / w). Set values are used as given.
- YUV is the analogue BT.601 transform (the one their code takes from kornia), inverted
  exactly; images must have 3 channels and sides that are multiples of `window_size`.
- Poisons are triggered copies of the attacker's own target-class images (injected, not edited
  in place), budget = poison_rate of the clean pre-training set, and the target class per task:
  see `pe_bench.attacks.backdoor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import Field, model_validator
from scipy.fft import dctn, idctn

from pe_bench.attacks.backdoor import BackdoorAttack, BackdoorParams
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack
from pe_bench.plugins.scale import REFERENCE_SIDE

# analogue YUV (BT.601 luma weights), rows = Y, U, V; applied to RGB column vectors
RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                       [-0.147, -0.289, 0.436],
                       [0.615, -0.515, -0.100]])
CHANNELS = {"Y": 0, "U": 1, "V": 2}


class CTRLParams(BackdoorParams):
    # unset (None): their 32-px values, scaled to the images' side (`resolved`)
    magnitude: float | None = Field(None, gt=0, le=10_000)  # added to each chosen DCT coefficient
    window_size: int | None = Field(None, ge=2, le=1024)
    frequencies: tuple[int, ...] | None = Field(None, min_length=1)  # (f, f) in every window
    channels: tuple[Literal["Y", "U", "V"], ...] = Field(("U", "V"), min_length=1)

    @model_validator(mode="after")
    def _inside_window(self) -> Self:
        if self.window_size is not None and self.frequencies is not None:
            outside = [f for f in self.frequencies if not 0 <= f < self.window_size]
            if outside:
                raise ValueError(f"frequencies {outside} lie outside a window of {self.window_size}")
        return self

    def resolved(self, side: int) -> Window:
        """Window, frequencies and magnitude on images whose shorter side is `side`."""
        window = self.window_size or min(side, REFERENCE_SIDE)
        frequencies = self.frequencies or (window // 2 - 1, window - 1)
        outside = [f for f in frequencies if not 0 <= f < window]
        if outside:
            raise ValueError(f"frequencies {outside} lie outside a window of {window}")
        magnitude = self.magnitude if self.magnitude is not None else 100.0 * window / REFERENCE_SIDE
        return Window(window, frequencies, magnitude)


@dataclass(frozen=True)
class Window:
    size: int
    frequencies: tuple[int, ...]
    magnitude: float


def windows(x: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) -> (N, H/size, size, W/size, size): a view of the image's windows."""
    n, h, w = x.shape
    return x.reshape(n, h // size, size, w // size, size)


def add_frequencies(channel: np.ndarray, w: Window) -> np.ndarray:
    """One channel (N, H, W), float: + magnitude at (f, f) of every window's orthonormal DCT."""
    coeffs = dctn(windows(channel, w.size), axes=(2, 4), norm="ortho")
    for f in w.frequencies:
        coeffs[:, :, f, :, f] += w.magnitude
    return idctn(coeffs, axes=(2, 4), norm="ortho").reshape(channel.shape)


def frequency_trigger(images: np.ndarray, p: CTRLParams) -> np.ndarray:
    """uint8 (M, 3, H, W) images with CTRL's trigger, as a new uint8 array."""
    if images.shape[1] != 3:
        raise ValueError(f"ctrl needs RGB images, got {images.shape[1]} channel(s)")
    w = p.resolved(min(images.shape[2:]))
    if images.shape[2] % w.size or images.shape[3] % w.size:
        raise ValueError(f"window_size {w.size} does not divide the "
                         f"{images.shape[2]}x{images.shape[3]} images")
    yuv = np.einsum("yc,nchw->nyhw", RGB_TO_YUV, images.astype(np.float64))
    for name in dict.fromkeys(p.channels):
        yuv[:, CHANNELS[name]] = add_frequencies(yuv[:, CHANNELS[name]], w)
    rgb = np.einsum("cy,nyhw->nchw", np.linalg.inv(RGB_TO_YUV), yuv)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@register_attack("ctrl", family="backdoor", stage="data", modalities=("image",),
                 budget_param="poison_rate")
class CTRL(BackdoorAttack):
    Params = CTRLParams
    params: CTRLParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the triggered image is rounded to uint8 (their code keeps floats)",
                  "every pe-bench image is uint8; at the default magnitude the trigger moves chroma by "
                  "several levels, so it survives rounding"),
        Deviation("other image sizes, where unset: the window is the whole image up to 32 px, the "
                  "frequencies sit at (w/2 − 1, w − 1) ((7, 15) at 16 × 16) and the magnitude is "
                  "100 × w / 32; set values are used as given",
                  "keeps the release's CIFAR-10 setting per pixel: an orthonormal DCT basis function's "
                  "amplitude falls as 1 / w (`pe_bench.plugins.scale`)",
                  "not isolated; at 16 × 16, with the trigger scaled to the side, most of the "
                  "32 × 32 effect was lost (3 calibration seeds: docs/performance.md)"),
        Deviation("YUV is the analogue BT.601 transform, inverted exactly; images must have 3 channels "
                  "and sides that are multiples of `window_size`",
                  "the transform their code takes from kornia"),
        Deviation("poisons are triggered copies of the attacker's own target-class images, injected "
                  "rather than edited in place; budget `poison_rate` of the clean pre-training "
                  "set; the target class `target_class`, or one drawn per seed and task",
                  "the attacker only injects images, the threat model of every attack here; one budget "
                  "and one evaluation for every backdoor (`pe_bench.attacks.backdoor`)"),
    )

    def apply_trigger(self, images: np.ndarray, seed: int, rng: np.random.Generator,
                      test: bool = False) -> np.ndarray:
        """The trigger is fixed (no randomness): the same at every seed, poisons and tests alike."""
        return frequency_trigger(images, self.params)

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"window_size": 8, "frequencies": [3, 7]}
