"""`none`: no defense; the reference row every defense is compared with."""

from __future__ import annotations

from typing import ClassVar

from pe_bench.defenses.base import Defense
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_defense


@register_defense("none")
class NoDefense(Defense):
    """Implements no hook: the pre-training set, recipe and encoder pass through unchanged."""

    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = ()  # no paper: the undefended reference
