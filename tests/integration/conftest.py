"""Fixtures shared by the Ray integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration._support import REPO, cli_env


@pytest.fixture
def ray_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The run starts Ray in-process; its workers import the test hooks from the repository."""
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", cli_env()["PYTHONPATH"])
    monkeypatch.syspath_prepend(str(REPO))
    yield
    ray.shutdown()
