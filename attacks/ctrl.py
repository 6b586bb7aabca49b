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
- YUV is the analogue BT.601 transform (the one their code takes from kornia), inverted
  exactly; images must have 3 channels and sides that are multiples of `window_size`.
- Poisons are triggered copies of the attacker's own target-class images (injected, not edited
  in place), budget = poison_rate of the clean pre-training set, and the target class per task:
  see `pe_bench.attacks.backdoor`.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
from pydantic import Field, model_validator
from scipy.fft import dctn, idctn

from pe_bench.attacks.backdoor import BackdoorAttack, BackdoorParams
from pe_bench.plugins.registry import register_attack

# analogue YUV (BT.601 luma weights), rows = Y, U, V; applied to RGB column vectors
RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                       [-0.147, -0.289, 0.436],
                       [0.615, -0.515, -0.100]])
CHANNELS = {"Y": 0, "U": 1, "V": 2}


class CTRLParams(BackdoorParams):
    magnitude: float = Field(100.0, gt=0, le=10_000)  # added to each chosen DCT coefficient
    window_size: int = Field(32, ge=2, le=1024)
    frequencies: tuple[int, ...] = Field((15, 31), min_length=1)  # (f, f) in every window
    channels: tuple[Literal["Y", "U", "V"], ...] = Field(("U", "V"), min_length=1)

    @model_validator(mode="after")
    def _inside_window(self) -> Self:
        outside = [f for f in self.frequencies if not 0 <= f < self.window_size]
        if outside:
            raise ValueError(f"frequencies {outside} lie outside a window of {self.window_size}")
        return self


def windows(x: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) -> (N, H/size, size, W/size, size): a view of the image's windows."""
    n, h, w = x.shape
    return x.reshape(n, h // size, size, w // size, size)


def add_frequencies(channel: np.ndarray, p: CTRLParams) -> np.ndarray:
    """One channel (N, H, W), float: + magnitude at (f, f) of every window's orthonormal DCT."""
    coeffs = dctn(windows(channel, p.window_size), axes=(2, 4), norm="ortho")
    for f in p.frequencies:
        coeffs[:, :, f, :, f] += p.magnitude
    return idctn(coeffs, axes=(2, 4), norm="ortho").reshape(channel.shape)


def frequency_trigger(images: np.ndarray, p: CTRLParams) -> np.ndarray:
    """uint8 (M, 3, H, W) images with CTRL's trigger, as a new uint8 array."""
    if images.shape[1] != 3:
        raise ValueError(f"ctrl needs RGB images, got {images.shape[1]} channel(s)")
    if images.shape[2] % p.window_size or images.shape[3] % p.window_size:
        raise ValueError(f"window_size {p.window_size} does not divide the "
                         f"{images.shape[2]}x{images.shape[3]} images")
    yuv = np.einsum("yc,nchw->nyhw", RGB_TO_YUV, images.astype(np.float64))
    for name in dict.fromkeys(p.channels):
        yuv[:, CHANNELS[name]] = add_frequencies(yuv[:, CHANNELS[name]], p)
    rgb = np.einsum("cy,nyhw->nchw", np.linalg.inv(RGB_TO_YUV), yuv)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@register_attack("ctrl", family="backdoor", stage="data", modalities=("image",),
                 budget_param="poison_rate")
class CTRL(BackdoorAttack):
    Params = CTRLParams
    params: CTRLParams

    def apply_trigger(self, images: np.ndarray, seed: int, rng: np.random.Generator,
                      test: bool = False) -> np.ndarray:
        """The trigger is fixed (no randomness): the same at every seed, poisons and tests alike."""
        return frequency_trigger(images, self.params)

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"window_size": 8, "frequencies": [3, 7]}
