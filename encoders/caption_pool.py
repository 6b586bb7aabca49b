"""RoCLIP's caption pool for image–text encoders (the `roclip` defense; pe_bench.defenses.roclip).

Yang, Gao, Mirzasoleiman, "Robust Contrastive Language-Image Pre-training against Data
Poisoning and Backdoor Attacks", NeurIPS 2023. The pool is a first-in first-out queue of the
detached caption embeddings of the most recent batches (the authors' released training code
keeps a memory bank of text embeddings and enqueues each batch's after the look-up); in a
matching epoch every image's partner in the contrastive loss is the pool caption nearest to the
image's embedding (cosine similarity), looked up before the batch's own captions join the pool,
so a poisoned image is paired with what it looks like rather than with its planted caption.
Deviations [ours]: the pool fills in every epoch, not only in matching ones (the authors' bank
starts from random vectors, which pair the first images of the first matching epoch with
noise); a matching step with an empty pool (K = 1, the very first batch) keeps the batch's own
captions.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from pe_bench.encoders.losses import full_precision


def nearest(queries: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Index of each query's nearest pool row by cosine similarity (ties: the lowest index),
    in float32 under any autocast (a bf16 matmul could pick another caption on GPU than on CPU)."""
    with full_precision(queries):
        sims = F.normalize(queries.float(), dim=1) @ F.normalize(pool.float(), dim=1).t()
        return sims.argmax(dim=1)


class CaptionPool:
    """The queue of `size` caption embeddings and which epochs match (every `every`-th, 1-based,
    as in the authors' code: with K = 2, epochs 2, 4, ...)."""

    def __init__(self, size: int, every: int) -> None:
        self.size, self.every = size, every
        self.bank: torch.Tensor | None = None
        self.matching = False

    def start_epoch(self, epoch: int) -> None:
        """Enter epoch `epoch` (0-based)."""
        self.matching = (epoch + 1) % self.every == 0

    def push(self, captions: torch.Tensor) -> None:
        """Enqueue a batch's caption embeddings (detached), dropping the oldest beyond `size`."""
        rows = captions.detach().float()
        joined = rows if self.bank is None else torch.cat([self.bank, rows])
        self.bank = joined[-self.size:]

    def partners(self, images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """The caption embedding each image is contrasted with this step: in a matching epoch
        its nearest pool caption (no gradient flows into the pool), else its own; then the
        batch's captions join the pool."""
        out = captions
        if self.matching and self.bank is not None:
            out = self.bank[nearest(images.detach(), self.bank)]
        self.push(captions)
        return out
