"""Ray places GPU work only where the suite asks for it (issue #25, point 4).

Ray 2.60 sets CUDA_VISIBLE_DEVICES only for trials it gives GPUs, so a trial that asks for none
would see every card of its node; `hide_unrequested_gpus` (called first in every trial) hides
them. The session declares one GPU that this machine need not have: Ray hands out its id all
the same, which is what a trial on a GPU node sees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pe_bench.api import validate_suite
from pe_bench.config.spec import Resources
from pe_bench.engines.base import RunContext
from pe_bench.errors import SuiteError
from tests.integration._support import write_suite

pytestmark = pytest.mark.ray


def report_visible(config: dict[str, Any]) -> None:
    from ray import tune

    from pe_bench.engines.ray_tune import hide_unrequested_gpus

    hide_unrequested_gpus()
    tune.report({"visible": repr(os.environ.get("CUDA_VISIBLE_DEVICES"))})


def _visible(gpu: float, tmp_path: Path) -> str:
    from ray import tune

    tuner = tune.Tuner(tune.with_resources(report_visible, {"cpu": 1, "gpu": gpu}),
                       param_space={"x": tune.grid_search([0])},
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    return str(tuner.fit()[0].metrics["visible"])


def test_trials_see_gpus_only_when_they_ask_for_them(ray_session: None, tmp_path: Path) -> None:
    import ray

    ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_AIR_NEW_OUTPUT": "0"}})
    assert _visible(0, tmp_path / "none") == "''"  # hidden (Ray 2.60 alone leaves it unset)
    assert _visible(0.5, tmp_path / "half") == "'0'"  # a fractional GPU: its card, shared


def test_cuda_recipe_in_trials_that_ask_for_no_gpu_is_refused_before_ray_starts(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from pe_bench.engines.ray_tune import RayEngine

    suite = write_suite(tmp_path / "cuda.yaml", "cuda")
    specs = validate_suite(suite, ["train.device=cuda"]).grid.trials
    ctx = RunContext(store=tmp_path, data_dir=tmp_path, cache=str(tmp_path / "cache"), run_id="r1",
                     provenance={}, resources=Resources(cpu=1, gpu=0), max_concurrent=1,
                     source=str(suite))
    with pytest.raises(SuiteError, match=r"resources\.gpu: train\.device is cuda but each trial asks "
                                         r"for 0 GPUs"):
        RayEngine().run(specs, ctx, sink=None)  # type: ignore[arg-type]  # refused before any row
    assert not ray.is_initialized()
