"""Patch triggers whose size follows the image side (the rule: pe_bench.plugins.scale).

The papers state a trigger's size for one image size (SSL-Backdoor and Noisy Alignment 50 px,
CorruptEncoder 40 px and Carlini–Terzis 16 px on 224 x 224 images; BadEncoder 10 px on
CIFAR-10's 32 x 32). Each patch attack declares its size at 32 x 32 (`PATCH_AT_32`) and an
unset `patch_size` becomes the same share of the side of the images it is applied to; a
`patch_size` set in a suite is used as given, in pixels. Placement ranges are already
fractions of the side.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pe_bench.plugins.scale import side_scaled
from pe_bench.plugins.types import PluginParams


class PatchSized(PluginParams):
    """A square patch trigger whose side is `patch_size` pixels, or (unset) the plugin's size
    at 32 x 32 scaled to the images' side (`side_scaled`)."""

    PATCH_AT_32: ClassVar[int] = 8
    patch_size: int | None = Field(None, ge=1, le=1024)  # pixels; None: PATCH_AT_32 scaled to the side

    def patch(self, side: int) -> int:
        """The patch's side in pixels on images whose shorter side is `side`."""
        return self.patch_size if self.patch_size is not None else side_scaled(self.PATCH_AT_32, side)
