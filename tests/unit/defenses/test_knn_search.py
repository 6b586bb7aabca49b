"""`knn-density`'s neighbour search (issue #25, point 5): top-k in blocks, not a full sort of
every block, and exactly what a brute-force stable sort gives (distances bit for bit, ties to
the lower index), so the defense's scores and removals do not move on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pe_bench.defenses import knn_density
from pe_bench.defenses.knn_density import density_scores, nearest, smallest, unit_rows


def brute_force(x: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's distances to all rows (computed in blocks of `chunk` rows, as the defense
    does: BLAS may round a product of other shapes differently) and each row sorted whole
    (stable): the search as it was before top-k."""
    sq = (x * x).sum(1)
    dist, idx = np.zeros((len(x), k)), np.zeros((len(x), k), dtype=np.int64)
    for start in range(0, len(x), chunk):
        rows = np.arange(start, min(start + chunk, len(x)))
        d2 = np.maximum(sq[rows, None] + sq[None, :] - 2.0 * x[rows] @ x.T, 0.0)
        d2[np.arange(len(rows)), rows] = np.inf
        idx[rows] = np.argsort(d2, axis=1, kind="stable")[:, :k]
        dist[rows] = np.sqrt(np.take_along_axis(d2, idx[rows], axis=1))
    return dist, idx


def features(n: int, seed: int = 0) -> np.ndarray:
    """Unit rows with exact duplicates (ties at every rank) and a tie at the k-th neighbour."""
    f = np.random.default_rng(seed).normal(size=(n, 6)).astype(np.float32)
    f[10:40] = f[3]  # 31 copies: every one has 30 neighbours at distance 0
    f[50:53] = f[60]
    return unit_rows(f)


@pytest.mark.parametrize("k", [1, 4, 16, 31, 40])
def test_blocked_topk_search_equals_a_brute_force_stable_sort(monkeypatch: pytest.MonkeyPatch,
                                                              k: int) -> None:
    monkeypatch.setattr(knn_density, "CHUNK", 64)  # several blocks, the last one short
    x = features(300)
    dist, idx = nearest(x, k)
    ref_dist, ref_idx = brute_force(x, k, 64)
    assert np.array_equal(idx, ref_idx)
    assert np.array_equal(dist, ref_dist)  # bit for bit


def test_smallest_breaks_ties_at_the_kth_value_by_the_lower_column() -> None:
    d2 = torch.tensor([[3.0, 1.0, 2.0, 1.0, 2.0, 0.5],
                       [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
                       [float("nan"), 1.0, 0.0, float("nan"), 3.0, 2.0]], dtype=torch.float64)
    got = smallest(d2, 3)
    ref = torch.from_numpy(np.argsort(d2.numpy(), axis=1, kind="stable")[:, :3])
    assert torch.equal(got, ref)
    assert got.tolist()[:2] == [[5, 1, 3], [0, 1, 2]]


@pytest.mark.parametrize("detector", ["k-dist", "slof"])
def test_scores_match_the_brute_force_reference(detector: str) -> None:
    x = features(200, seed=1)
    dist, idx = brute_force(unit_rows(x), 16, knn_density.CHUNK)  # the scores normalise again
    kdist = dist[:, -1]
    ref = kdist if detector == "k-dist" else kdist / np.maximum(kdist[idx].mean(1), 1e-12)
    assert np.array_equal(density_scores(x, 16, detector), ref)


def test_the_device_branch_finds_the_same_neighbours() -> None:
    """The branch a GPU takes (torch's float64 distances), run here on CPU tensors: the same
    neighbours, distances equal up to rounding."""
    x = unit_rows(np.random.default_rng(2).normal(size=(150, 6)))
    t = torch.from_numpy(x)
    d2 = knn_density._block(t, (t * t).sum(1), slice(0, 150))
    order = smallest(d2, 8)
    ref_dist, ref_idx = brute_force(x, 8, 150)
    assert np.array_equal(order.numpy(), ref_idx)
    assert np.allclose(np.sqrt(d2.gather(1, order).numpy()), ref_dist, rtol=0, atol=1e-12)
