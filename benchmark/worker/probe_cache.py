"""An encoder's downstream classifier outputs, cached per (encoder, task) in the artefact cache.

Every trial evaluates its clean twin on the cell's tasks, and every defense of a cell the same
undefended poisoned encoder: the same features and the same probe, again and again (156 trials
for 15 twins in full.yaml, 10 sklearn probes each on the CPU while the GPU idles). The outputs
are a function of the encoder's weights (its cache key), the task's images, train labels and
class names (hashed by content, so a backdoor's triggered inputs appended to the test split,
or a task of another name with the same data, are told apart or shared correctly), the
evaluation spec, the device the features are computed on, the code (`PROBE_REVISION`) and the
numerical libraries' versions. Stored exactly (the arrays' own dtypes), so a hit hands back
the very arrays recomputing gives (tests/unit/worker/test_probe_cache.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import sklearn
import torch

from pe_bench.attacks.base import Task
from pe_bench.config.spec import EvalSpec, canonical_hash
from pe_bench.worker.cache import ArtifactCache
from pe_bench.worker.evaluate import Classify, ProbeOutput

PROBE_REVISION = 1  # bump when the probes or `train.encode` change what they compute
KIND = "probes"


def task_digest(task: Task) -> str:
    """sha256 of what a classifier's outputs on `task` depend on: train images and labels,
    test images (triggered inputs included) and class names; not the test labels or the name."""
    digest = hashlib.sha256()
    for array in (task.train.images, task.train.labels, task.test.images):
        data = np.ascontiguousarray(array)
        digest.update(f"{data.dtype.str}{data.shape}".encode())
        digest.update(data.data.cast("B"))
    digest.update(json.dumps(list(task.test.classes)).encode())
    return digest.hexdigest()[:32]


def probe_identity(encoder_key: str, evaluation: EvalSpec, device: str) -> dict[str, Any]:
    """Everything but the task a cached classifier output depends on."""
    return {"revision": PROBE_REVISION, "encoder": encoder_key, "device": device,
            "evaluation": evaluation.model_dump(mode="json"),
            "versions": {"numpy": np.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__}}


def to_state(out: ProbeOutput) -> dict[str, torch.Tensor]:
    state = {"pred": torch.from_numpy(np.ascontiguousarray(out.pred)),
             "proba": torch.from_numpy(np.ascontiguousarray(out.proba))}
    if out.votes is not None:
        state["votes"] = torch.from_numpy(np.ascontiguousarray(out.votes))
    return state


def from_state(state: dict[str, torch.Tensor]) -> ProbeOutput:
    votes = state.get("votes")
    return ProbeOutput(state["pred"].numpy(), state["proba"].numpy(),
                       None if votes is None else votes.numpy())


def _fits(task: Task) -> Callable[[dict[str, torch.Tensor]], bool]:
    """Whether a cached output has one prediction and one probability row per test input."""
    n, c = len(task.test), len(task.test.classes)

    def check(state: dict[str, torch.Tensor]) -> bool:
        pred, proba = state.get("pred"), state.get("proba")
        return (pred is not None and proba is not None and tuple(pred.shape) == (n,)
                and tuple(proba.shape) == (n, c) and set(state) <= {"pred", "proba", "votes"})

    return check


def cached(classify: Classify, cache: ArtifactCache, identity: dict[str, Any],
           tally: Counter[str]) -> Classify:
    """`classify`, its outputs read from the cache where stored (`tally` counts "hit" and
    "computed")."""

    def run(task: Task) -> ProbeOutput:
        key = canonical_hash({**identity, "task": task_digest(task)})
        state, _, hit = cache.get_or_create(KIND, key, lambda: (to_state(classify(task)), {}),
                                            usable=_fits(task))
        tally["hit" if hit else "computed"] += 1
        return from_state(state)

    return run
