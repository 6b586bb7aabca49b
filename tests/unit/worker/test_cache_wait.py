"""Waiting on a key another trial is building (issue #25, point 5): nobody blocks inside
`flock`; a waiter polls and gets the builder's artefact (built once), a trial can ask without
waiting and do other work, and a dead builder's lock passes to the waiter, which builds."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import torch

from pe_bench.worker import cache as cache_module
from pe_bench.worker.cache import ArtifactCache

State = dict[str, torch.Tensor]


def weights(value: float) -> State:
    return {"w": torch.full((2, 2), value)}


def test_a_waiter_gets_the_builders_artefact_and_the_key_is_built_once(tmp_path: Path) -> None:
    building, release, builds = threading.Event(), threading.Event(), []

    def slow_build() -> tuple[State, dict[str, float]]:
        builds.append("first")
        building.set()
        release.wait(10)
        return weights(1.0), {"seconds": 1.0}

    first = threading.Thread(target=ArtifactCache(tmp_path).get_or_create,
                             args=("encoders", "k", slow_build))
    first.start()
    assert building.wait(10)
    # asked without waiting: None at once, nothing built
    busy = ArtifactCache(tmp_path).get_or_create("encoders", "k", lambda: builds.append("x"), wait=False)
    assert busy is None
    got: list[tuple[State, dict, bool]] = []
    waiter = threading.Thread(target=lambda: got.append(ArtifactCache(tmp_path).get_or_create(
        "encoders", "k", lambda: (builds.append("second"), (weights(2.0), {}))[1])))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and not got  # polling, not done
    release.set()
    first.join(10)
    waiter.join(10)
    state, info, hit = got[0]
    assert builds == ["first"] and hit and info == {"seconds": 1.0}
    assert torch.equal(state["w"], weights(1.0)["w"])


def test_a_stored_artefact_is_read_without_the_lock(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    cache.get_or_create("encoders", "k", lambda: (weights(3.0), {}))
    held = cache_module.acquire(tmp_path / "encoders" / "k.lock")  # someone rebuilding, say
    try:
        state, _, hit = cache.get_or_create("encoders", "k", lambda: (weights(4.0), {}), wait=False)
    finally:
        assert held is not None
        cache_module.release(held)
    assert hit and torch.equal(state["w"], weights(3.0)["w"])


def _build_forever(root: str, started: str) -> None:
    """A builder that takes the key's lock and never finishes (until it is killed)."""

    def build() -> tuple[State, dict[str, float]]:
        Path(started).touch()
        time.sleep(600)
        return weights(9.0), {}

    ArtifactCache(root).get_or_create("encoders", "k", build)


def test_a_dead_builders_lock_passes_to_the_waiter(tmp_path: Path) -> None:
    started = tmp_path / "started"
    builder = multiprocessing.get_context("spawn").Process(target=_build_forever,
                                                           args=(str(tmp_path / "cache"), str(started)))
    builder.start()
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists()
        got: list[tuple[State, dict, bool]] = []
        waiter = threading.Thread(target=lambda: got.append(ArtifactCache(tmp_path / "cache").get_or_create(
            "encoders", "k", lambda: (weights(5.0), {"by": "waiter"}))))
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive()  # the builder holds the lock
        os.kill(builder.pid, signal.SIGKILL)  # preempted mid-build
        waiter.join(30)
    finally:
        builder.kill()
        builder.join()
    state, info, hit = got[0]
    assert not hit and info == {"by": "waiter"} and torch.equal(state["w"], weights(5.0)["w"])
