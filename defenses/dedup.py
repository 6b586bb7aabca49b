"""`dedup`: duplicate-region filter, a pre-processing defense against concatenation poisons.

Slot: the spec's pre-processing "duplicate-region filter" (shared/PAPER.md, defenses, 1).
Attack it targets: PoisonedEncoder (Liu, Jia, Gong, USENIX Security 2022), whose poisons all
repeat one target input x_i beside different references, and the `duplicate` baseline's plain
copies of x_i. Idea source: perceptual hashing, here the average hash (aHash: grayscale, area
downscale to a hash_size x hash_size grid, one bit per cell "brighter than the grid mean"),
applied to sub-regions of each image.

Threat model: the defender sees only the pre-training images, never which were injected, and
treats every image alike whatever its canvas shape. Assumption: poisons repeat a region
(near-)verbatim in several images; clean images rarely do.

Design [ours]: each image is hashed per region (`regions`, fractions of its own canvas: a 32x64
canvas's `left` half is the 32x32 target). Region hashes of all images are pooled, so a
left-layout poison's target half matches a right-layout one's, a plain copy's whole image, and
(area resizing commutes with the attack's box-filter squeeze) a `canvas: resize` poison's half.
Near-uniform regions (hash-grid std < `min_contrast`) are not hashed: blank halves would all
collide. Two regions match when their hashes are within Hamming distance `max_distance` and
their grids differ by at most `max_gray_diff` per cell on average; candidates come from
multi-index hashing (see `near_pairs`), so no all-pairs pass. An image goes when one of its
regions matches regions of at least `min_count` other images.

Deviations and limits: the grid check is ours. aHash alone collides on natural images (on
CIFAR-10 train, every sky-over-ground half shares a few hashes: 2,928 of 50k clean images had a
half hash-equal to 5+ others'); with the check, none at the defaults. Crops are fixed halves, not
a sliding window, so a target pasted at another offset or scale escapes, as does an attack with
at most `min_count` poisons per target. Clean images sharing the repeated content go too, e.g.
the attacker's references when they come from the pre-training set.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams, PretrainData
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_defense

Region = Literal["whole", "left", "right", "top", "bottom"]
# (row start, row end, column start, column end) as fractions of the canvas
BOXES: dict[str, tuple[float, float, float, float]] = {
    "whole": (0.0, 1.0, 0.0, 1.0), "left": (0.0, 1.0, 0.0, 0.5), "right": (0.0, 1.0, 0.5, 1.0),
    "top": (0.0, 0.5, 0.0, 1.0), "bottom": (0.5, 1.0, 0.0, 1.0),
}
CHUNK = 4096  # images hashed at once (bounds the float32 working set)
MAX_CELLS = 1 << 26  # candidate pairs x grid cells checked at once (bounds memory)


class DedupParams(PluginParams):
    hash_size: int = Field(8, ge=4, le=16)  # hash grid side: hash_size**2 bits per region
    max_distance: int = Field(2, ge=0, le=8)  # Hamming distance up to which hashes match
    max_gray_diff: float = Field(4.0, ge=0, le=255)  # mean |grid difference| of a match
    min_count: int = Field(5, ge=1)  # other images an image's region must match to go
    min_contrast: float = Field(8.0, ge=0)  # std (0..255 gray) of a region's hash grid
    regions: tuple[Region, ...] = Field(("whole", "left", "right", "top", "bottom"), min_length=1)


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of an area (box) resize: each output cell averages the input
    pixels it covers, fractional overlaps weighted, so any size maps onto the hash grid."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
    return (overlap / (n_in / n_out)).astype(np.float32)


def region_grids(images: np.ndarray, p: DedupParams) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale hash grids, uint8 (n, len(regions), hash_size**2), of uint8 (n, C, H, W)
    images, and a mask of the regions with enough contrast to hash."""
    n, _, h, w = images.shape
    grids = np.zeros((n, len(p.regions), p.hash_size**2), dtype=np.uint8)
    empty = []  # regions of no pixel (a canvas under 2 pixels high or wide)
    for k, name in enumerate(p.regions):
        y0, y1, x0, x1 = BOXES[name]
        rows, cols = slice(round(y0 * h), round(y1 * h)), slice(round(x0 * w), round(x1 * w))
        if rows.start == rows.stop or cols.start == cols.stop:
            empty.append(k)
            continue
        a_rows = area_matrix(rows.stop - rows.start, p.hash_size)
        a_cols = area_matrix(cols.stop - cols.start, p.hash_size).T
        for start in range(0, n, CHUNK):
            gray = images[start:start + CHUNK, :, rows, cols].astype(np.float32).mean(1)
            grid = (a_rows @ gray @ a_cols).reshape(len(gray), -1)
            grids[start:start + CHUNK, k] = np.clip(np.rint(grid), 0, 255)
    valid = grids.std(2) >= p.min_contrast
    valid[:, empty] = False
    return grids, valid


def ahash(grids: np.ndarray) -> np.ndarray:
    """Average-hash bits of (m, cells) grids: one bit per cell, brighter than the grid mean."""
    return grids > grids.mean(1, keepdims=True)


def _group(keys: np.ndarray) -> np.ndarray:
    """Group label of each row of a (n, bytes) uint8 key array (equal rows, equal label)."""
    if keys.shape[1] == 0:
        return np.zeros(len(keys), dtype=np.int64)
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


def _bucket_pairs(labels: np.ndarray, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every pair (i, j), i != j, of items sharing a label, in chunks of about `limit` pairs
    (a large bucket costs its size squared; chunks keep memory flat)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    ends = np.r_[starts[1:], len(labels)]
    later = np.repeat(ends, ends - starts) - np.arange(len(labels)) - 1  # partners after each
    cum = np.cumsum(later)
    out, pos = [], 0
    while pos < len(labels):
        stop = max(pos + 1, int(np.searchsorted(cum, cum[pos] - later[pos] + limit, "right")))
        counts = later[pos:stop]
        first = np.repeat(np.arange(pos, stop), counts)
        offset = np.arange(len(first)) - np.repeat(np.cumsum(counts) - counts, counts)
        out.append((order[first], order[first + 1 + offset]))
        pos = stop
    return [(i, j) for i, j in out if len(i)]


def near_pairs(grids: np.ndarray, p: DedupParams) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i < j, of grids whose aHashes are within `max_distance` and whose cells
    differ by at most `max_gray_diff` on average. Multi-index hashing: by pigeonhole a pair
    within the distance agrees exactly on one of max_distance + 1 bit bands, so only pairs
    sharing a band bucket are checked. Bands are interleaved: a contiguous band (the top rows)
    is shared by every sky-over-ground image, 40x more candidates on CIFAR-10."""
    bits = ahash(grids)
    words = np.packbits(bits, axis=1)
    limit = max(1, MAX_CELLS // bits.shape[1])
    firsts, seconds = [], []
    for k in range(p.max_distance + 1):
        band = np.arange(k, bits.shape[1], p.max_distance + 1)
        for i, j in _bucket_pairs(_group(np.packbits(bits[:, band], axis=1)), limit):
            near = np.bitwise_count(words[i] ^ words[j]).sum(1, dtype=np.int64) <= p.max_distance
            i, j = i[near], j[near]
            diff = np.abs(grids[i].astype(np.int16) - grids[j]).mean(1)
            firsts.append(np.minimum(i, j)[diff <= p.max_gray_diff])
            seconds.append(np.maximum(i, j)[diff <= p.max_gray_diff])
    if not firsts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    code = np.unique(np.concatenate(firsts) * len(bits) + np.concatenate(seconds))
    return code // len(bits), code % len(bits)


def match_counts(grids: np.ndarray, owner: np.ndarray, p: DedupParams) -> np.ndarray:
    """For each hashed region, how many other images own a matching region. Identical grids
    are compared once (a node per distinct grid); a node's images are those owning it."""
    node = _group(grids)
    n_nodes, base = int(node.max()) + 1, int(owner.max()) + 1
    first = np.zeros(n_nodes, dtype=np.int64)
    first[node[::-1]] = np.arange(len(node))[::-1]  # one representative region per node
    a, b = near_pairs(grids[first], p)
    src = np.concatenate([np.arange(n_nodes), a, b])  # neighbours, self included
    dst = np.concatenate([np.arange(n_nodes), b, a])
    owned = np.unique(node * base + owner)  # (node, image) pairs, sorted by node
    starts = np.searchsorted(owned // base, np.arange(n_nodes + 1))
    per = starts[dst + 1] - starts[dst]
    rows = np.repeat(starts[dst], per) + np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    linked = np.unique(np.repeat(src, per) * base + owned[rows] % base)
    distinct = np.bincount(linked // base, minlength=n_nodes)
    return distinct[node] - 1


@register_defense("dedup")
class DuplicateRegionFilter(Defense):
    """Removes images one of whose regions (near-)duplicates regions of `min_count`+ others.

    Its score per image is the largest number of other images one of its regions matches (0
    when no region is hashed), so the row gets AUROC / AUPRC over the poisons besides the
    operating point at `min_count`."""

    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the design is ours: average hashes (aHash) of fixed regions of each image "
                  "(`regions`, fractions of its own canvas), pooled over all images, candidates by "
                  "multi-index hashing; an image goes when a region matches regions of `min_count`+ "
                  "others",
                  "the spec names a duplicate-region filter (PAPER.md, defense 1), no paper; "
                  "PoisonedEncoder's poisons repeat one target input beside different references"),
        Deviation("two regions match only if their hashes are within `max_distance` and their grids "
                  "also differ by at most `max_gray_diff` per cell on average (the grid check); "
                  "near-uniform regions are not hashed",
                  "aHash alone collides on natural images, and blank halves would all collide",
                  "on CIFAR-10 train, 2,928 of 50k clean images had a half hash-equal to 5+ others' "
                  "with aHash alone; none with the grid check at the defaults (module docstring)"),
        Deviation("fixed regions (halves and the whole image), not a sliding window: a target pasted "
                  "at another offset or scale escapes, as does an attack with at most `min_count` "
                  "poisons per target",
                  "ours: the poisons it targets hold the repeated target as one half of the canvas"),
        Deviation("clean images sharing the repeated content go too, e.g. the attacker's references "
                  "when they come from the pre-training set",
                  "a filter of repeated content cannot tell a poison from a clean image that repeats it",
                  "with the attacker's data held out, 0.0 clean images removed against "
                  "`poisoned-encoder` on digits (docs/results/README.md, defenses.md)"),
    )

    # repeated target regions are PoisonedEncoder's poisons; its paper evaluates pre-processing against it
    families = ("targeted",)

    Params = DedupParams
    params: DedupParams

    def match_scores(self, images: list[np.ndarray]) -> np.ndarray:
        """Per image (row order over `images` concatenated), the most other images one of its
        hashed regions matches."""
        n = sum(len(arr) for arr in images)
        out = np.zeros(n, dtype=np.int64)
        hashed = [region_grids(arr, self.params) for arr in images if len(arr)]
        if not hashed:
            return out
        grids = np.concatenate([g for g, _ in hashed])
        valid = np.concatenate([v for _, v in hashed])
        owner = np.broadcast_to(np.arange(len(grids))[:, None], valid.shape)[valid]
        if len(owner):
            np.maximum.at(out, owner, match_counts(grids[valid], owner, self.params))
        return out

    def flagged(self, images: list[np.ndarray]) -> np.ndarray:
        """Ids (row order over `images` concatenated) of the images to remove."""
        return self.flag(self.match_scores(images).astype(np.float64))

    def score(self, data: PretrainData, seed: int) -> np.ndarray:
        """Deterministic: `seed` is unused (no sampling, no ties to break)."""
        return self.match_scores(data.images()).astype(np.float64)

    def flag(self, scores: np.ndarray) -> np.ndarray:
        return np.flatnonzero(scores >= self.params.min_count).astype(np.int64)
