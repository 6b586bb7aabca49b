"""Test-only defenses that suites load with `plugins: [tests.integration.hooks]`.

Hook signatures take `*args` so they keep working while the Defense API grows.
They let a test decide, from outside the Ray workers, when a trial may finish or whether it
fails: each waits for (or checks) a marker file named in its params.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from pe_bench.defenses.base import Defense, PluginParams, PretrainData
from pe_bench.plugins.registry import register_defense

WAIT_LIMIT_S = 120.0


class MarkerParams(PluginParams):
    marker: str


@register_defense("test-stall")
class Stall(Defense):
    """After both encoders are trained (and cached), announce it in `<marker>.reached`, then
    block until `marker` exists: a trial that a test can kill after its pre-training."""

    Params = MarkerParams

    def repair(self, encoder: Any, *args: Any, **kwargs: Any) -> Any:
        marker = Path(self.params.marker)
        marker.with_name(marker.name + ".reached").touch()
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not marker.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{marker} never appeared")
            time.sleep(0.05)
        return encoder


@register_defense("test-flaky")
class Flaky(Defense):
    """Raises in pre-processing until `marker` exists: a cell that fails, then is retried."""

    Params = MarkerParams

    def sanitize(self, data: PretrainData, *args: Any, **kwargs: Any) -> tuple[PretrainData, np.ndarray]:
        if not Path(self.params.marker).exists():
            raise RuntimeError(f"flaky defense: {self.params.marker} is missing")
        return super().sanitize(data, *args, **kwargs)


class BarrierParams(PluginParams):
    folder: str
    parties: int = 2


@register_defense("test-barrier")
class Barrier(Defense):
    """Each trial checks in (a file in `folder`) and waits until `parties` trials have: they
    then all run at the same time, on as many nodes as one trial per node needs."""

    Params = BarrierParams

    def sanitize(self, data: PretrainData, *args: Any, **kwargs: Any) -> tuple[PretrainData, np.ndarray]:
        folder = Path(self.params.folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / uuid.uuid4().hex).touch()
        deadline = time.monotonic() + WAIT_LIMIT_S
        while len(list(folder.iterdir())) < self.params.parties:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(list(folder.iterdir()))} trials reached the barrier")
            time.sleep(0.05)
        return super().sanitize(data, *args, **kwargs)
