"""The example plugin passes pe-bench's defense contract, drops what it says and reports scores
that rank poisons no better than chance."""

import numpy as np
import pytest

from pe_bench.store.detection import auroc
from pe_bench.testing import check_defense, tiny_data

RandomDrop = pytest.importorskip(
    "pe_bench_defense_example",
    reason="examples/pe-bench-defense-example is not installed (`make test` installs it)",
).RandomDrop


def test_contract() -> None:
    assert check_defense(RandomDrop)["hooks"] == ("score",)


def test_drops_the_requested_fraction() -> None:
    data = tiny_data()
    kept, removed, scores = RandomDrop.from_dict({"fraction": 0.25}).filter(data, seed=0)
    assert len(removed) == round(0.25 * data.size) and kept.size == data.size - len(removed)
    assert scores.shape == (data.size,) and set(removed) == set(np.argsort(-scores)[:len(removed)])


def test_its_scores_rank_poisons_at_chance() -> None:
    data = tiny_data()
    poison = np.arange(data.size) >= len(data.clean)
    got = [auroc(RandomDrop.from_dict({}).filter(data, seed=s)[2], poison) for s in range(200)]
    assert abs(np.mean(got) - 0.5) < 0.05


def test_registered_through_its_entry_point() -> None:
    from importlib.metadata import version

    from pe_bench.testing import check_registered

    provenance = check_registered("defenses", "random-drop")["provenance"]
    assert provenance == f"pe-bench-defense-example {version('pe-bench-defense-example')}"
