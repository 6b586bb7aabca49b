"""Pixel sizes that follow the image side: the one rule every built-in plugin with a size in
pixels uses (attack triggers, PatchSearch's window).

Papers state such sizes for one image size (a 50-px trigger on 224 x 224 images; a 10-px one on
CIFAR-10's 32 x 32). pe-bench keeps each one's share of the side: a plugin declares its size at
32 x 32 (the paper's share of 32, rounded as its docstring says) and an unset size becomes that
share of the side of the images it meets, rounded half up (at 16 x 16: half the 32-px size).
"""

from __future__ import annotations

import math

REFERENCE_SIDE = 32


def side_scaled(pixels_at_32: float, side: int) -> int:
    """`pixels_at_32` at an image side of `side`, the same share of it, rounded half up, >= 1."""
    return max(1, math.floor(pixels_at_32 * side / REFERENCE_SIDE + 0.5))
