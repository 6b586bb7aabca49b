"""Captions for CLIP-style pre-training on labelled image datasets, built offline.

Each image gets one caption from a class-name template ("a photo of a {}."), the template drawn
with a seeded generator; zero-shot classification averages the text embeddings of every
template per class (prompt ensembling, Radford et al., ICML 2021). Tokens are lower-cased words
hashed into a fixed vocabulary: no vocabulary file to ship or keep in sync, and the same
sentence always gives the same ids.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of the small {}.",
    "a cropped photo of a {}.",
    "an image showing a {}.",
    "a close-up photo of the {}.",
    "a picture of one {}.",
)
PAD = 0
VOCAB_SIZE = 4096
MAX_TOKENS = 16


def tokenize(texts: Sequence[str], max_tokens: int = MAX_TOKENS, vocab_size: int = VOCAB_SIZE) -> np.ndarray:
    """(N, max_tokens) int64 ids; 0 is padding, words hash into 1..vocab_size-1."""
    out = np.full((len(texts), max_tokens), PAD, dtype=np.int64)
    for i, text in enumerate(texts):
        words = re.findall(r"[a-z0-9]+", text.lower())[:max_tokens]
        out[i, : len(words)] = [1 + zlib.crc32(w.encode()) % (vocab_size - 1) for w in words]
    return out


def captions(labels: np.ndarray, classes: Sequence[str], seed: int) -> list[str]:
    """One templated caption per image (its class name in a randomly drawn template)."""
    rng = np.random.default_rng([seed, 0xC1])
    picks = rng.integers(0, len(TEMPLATES), size=len(labels))
    return [TEMPLATES[t].format(classes[int(y)]) for t, y in zip(picks, labels, strict=True)]


def class_prompts(classes: Sequence[str]) -> np.ndarray:
    """(C, T, max_tokens) token ids: every template for every class, for zero-shot weights."""
    return np.stack([tokenize([t.format(c) for t in TEMPLATES]) for c in classes])
