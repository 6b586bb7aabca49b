"""The example plugin passes pe-bench's defense contract and drops what it says."""

import pytest

from pe_bench.testing import check_defense, tiny_data

RandomDrop = pytest.importorskip(
    "pe_bench_defense_example",
    reason="examples/pe-bench-defense-example is not installed (`make test` installs it)",
).RandomDrop


def test_contract() -> None:
    assert check_defense(RandomDrop)["hooks"] == ("sanitize",)


def test_drops_the_requested_fraction() -> None:
    data = tiny_data()
    kept, removed = RandomDrop.from_dict({"fraction": 0.25}).sanitize(data, seed=0)
    assert len(removed) == round(0.25 * data.size) and kept.size == data.size - len(removed)


def test_registered_through_its_entry_point() -> None:
    from importlib.metadata import version

    from pe_bench.testing import check_registered

    provenance = check_registered("defenses", "random-drop")["provenance"]
    assert provenance == f"pe-bench-defense-example {version('pe-bench-defense-example')}"
