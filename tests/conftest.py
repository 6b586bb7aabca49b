"""Tests use one intra-op thread: the machine has two cores and pytest shares them with Ray
workers and other jobs; oversubscribed BLAS threads made tiny training steps ~30x slower."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pe_bench.datasets.loading import clear_memo

torch.set_num_threads(1)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private decode cache and an empty memo (modules that read datasets use it for every
    test: `pytestmark = pytest.mark.usefixtures("isolated")`)."""
    monkeypatch.setenv("PE_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PE_BENCH_DATA", raising=False)
    clear_memo()
    yield tmp_path / "cache"
    clear_memo()


INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two tiers: `integration` (tests/integration: Ray sessions, subprocess runs, real kills)
    and `unit` (everything else, fast). `pytest -m unit` runs the fast tier alone."""
    for item in items:
        inside = INTEGRATION in Path(str(item.fspath)).parents
        item.add_marker(pytest.mark.integration if inside else pytest.mark.unit)
