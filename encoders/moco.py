"""MoCo v2 encoder plugin.

Papers: He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual Representation
Learning", CVPR 2020; Chen, Fan, Girshick, He, "Improved Baselines with Momentum Contrastive
Learning", arXiv 2003.04297 (v2: MLP projection head, stronger augmentation, temperature 0.2).

A query encoder (backbone -> 2-layer MLP head) embeds one view; a key encoder, an exponential
moving average of the query encoder that gets no gradient, embeds the other view. InfoNCE
scores each query against its own key (positive) and a FIFO queue of keys from earlier batches
(negatives). After the loss the current keys replace the oldest queue entries; after every
optimiser step the key encoder moves towards the query encoder: k <- m * k + (1 - m) * q.
Downstream tasks use the query backbone's features.

The key encoder's weights are held as buffers, not parameters: they are saved in
`state_dict()` (so the artefact cache restores them), move with `.to()`, and never appear in
`model.parameters()`, so no optimiser built over the model can touch them. The queue
(`queue`, (queue_size, proj_dim) unit rows) and its write pointer (`queue_ptr`) are buffers
too; the queue starts as random unit vectors drawn from the global torch RNG at construction
(seeded by the pipeline), as in the reference implementation.

Deviations / assumptions [ours]:
- Optimiser defaults: SGD (momentum 0.9), lr 0.06, weight decay 5e-4, cosine schedule, as in
  the MoCo authors' CIFAR-10 demo (ImageNet: lr 0.03, weight decay 1e-4); a suite's `train`
  may override them. Batch size and augmentation come from the suite's recipe shared by every
  encoder method.
- `momentum` defaults to 0.99, not the paper's 0.999: 0.999 is tuned for 200-800 epochs on
  ImageNet (~1e5-1e6 steps); our short CPU runs take a few thousand steps, and a key encoder
  with a ~1000-step horizon would barely move. 0.99 is also the value of the MoCo authors'
  CIFAR-10 demo.
- Symmetric loss: the loss is the mean of InfoNCE(q(view1), k(view2)) and
  InfoNCE(q(view2), k(view1)), and both key sets are enqueued (2N keys per step), as in the
  MoCo authors' CIFAR-10 demo (`symmetric=True`, which sums the two terms instead of
  averaging). The paper's loss is the one-direction term.
- No shuffling BN: MoCo shuffles the key batch across GPUs so that a query and its positive
  key are not normalised with statistics of the same per-GPU sub-batch. On one device a
  permutation of the batch changes nothing (BatchNorm statistics are permutation-invariant),
  and emulating the per-GPU split needs split BatchNorm in the backbone (the demo's
  `SplitBatchNorm`), which the shared backbones do not have. Each view goes through each
  encoder in its own forward pass (both in train mode, as in the reference), so q(view1) uses
  view-1 batch statistics and its positive k(view2) view-2 statistics -- but all images of
  the batch share them. This is a known deviation: MoCo reports that without shuffling BN
  the model can exploit intra-batch statistics to lower the pretext loss. It also keeps
  training free of extra random draws (the paired-twin design of pe_bench.worker.train).
- The queue takes any number of keys per step (the reference requires queue_size to be a
  multiple of the batch size; here batches vary with the injected images): keys are written
  at `queue_ptr` with wrap-around, and if one step brings more keys than the queue holds,
  only the last `queue_size` are kept. Keys are L2-normalised and stored in float32.
- The queue never holds more keys than the pre-training set can fill with images other than
  the current batch's [ours]: before training, `before_training` caps the queue in use at
  n_images - batch_size keys (the default 4096 exceeds digits' ~1,100 pre-training images,
  where a full queue would score every query against stale keys of its own image). The
  buffer keeps `queue_size` rows, so cached weights load unchanged; only the first
  `queue_len` rows are negatives and written. The size in use is recorded with the encoder's
  training info (`fitted`); a set with no image beyond one batch is a PluginError.
- The keys are enqueued inside `training_loss`, right after the loss is computed, as the
  reference does in `forward`; calling `training_loss` outside the training loop therefore
  changes the queue.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pe_bench.encoders.backbones import projection_head
from pe_bench.encoders.base import EncoderMethod
from pe_bench.encoders.losses import info_nce
from pe_bench.encoders.params import MoCoParams
from pe_bench.errors import PluginError
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_encoder


def _frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` whose parameters are turned into (persistent) buffers of the same
    names: same forward, same state_dict keys, but invisible to `parameters()` and optimisers."""
    frozen = copy.deepcopy(module)
    for sub in frozen.modules():
        for name, param in list(sub._parameters.items()):
            del sub._parameters[name]
            sub.register_buffer(name, None if param is None else param.detach().clone())
    return frozen


@register_encoder("moco", label_params=("backbone",),
                  params="pe_bench.encoders.params:MoCoParams", modalities=("image",),
                  optimizer_defaults={"optimizer": "sgd", "lr": 0.06, "weight_decay": 5e-4})
class MoCo(EncoderMethod):
    queue: torch.Tensor  # buffers (register_buffer), typed for readers of the code
    queue_ptr: torch.Tensor
    Params = MoCoParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("optimiser defaults SGD (momentum 0.9), lr 0.06, weight decay 5e-4, cosine schedule "
                  "(ImageNet: lr 0.03, weight decay 1e-4); batch size and augmentation are the "
                  "suite's, shared by every encoder",
                  "as in the MoCo authors' CIFAR-10 demo; a suite's `train` may override them"),
        Deviation("`momentum` defaults to 0.99, not the paper's 0.999",
                  "0.999 is tuned for ~1e5-1e6 ImageNet steps; a key encoder with a ~1000-step horizon "
                  "would barely move in our few thousand; 0.99 is the CIFAR-10 demo's"),
        Deviation("symmetric loss: the mean of InfoNCE(q(view1), k(view2)) and InfoNCE(q(view2), "
                  "k(view1)), both key sets enqueued; the paper's loss is the one-direction term",
                  "as in the authors' CIFAR-10 demo (`symmetric=True`, which sums the two terms)"),
        Deviation("no shuffling BN: each view goes through each encoder in its own forward pass, all "
                  "images of a batch sharing BatchNorm statistics",
                  "on one device a permutation changes nothing and the shared backbones have no split "
                  "BatchNorm; it also keeps training free of extra random draws",
                  "not measured; MoCo reports that without it the model can exploit intra-batch "
                  "statistics to lower the pretext loss"),
        Deviation("the queue takes any number of keys per step, written with wrap-around (only the "
                  "last `queue_size` kept); keys L2-normalised, stored in float32",
                  "batches vary with the injected images; the reference needs `queue_size` to be a "
                  "multiple of the batch size"),
        Deviation("the queue in use is capped at n_images − batch_size keys (recorded as the row's "
                  "`encoder.fitted`)",
                  "the default 4096 exceeds digits' ~1,100 pre-training images, where a full queue "
                  "would score every query against stale keys of its own image"),
    )

    def __init__(self, params: MoCoParams, in_channels: int = 3) -> None:
        super().__init__(params, in_channels)
        self.head = projection_head(self.feature_dim, params.proj_hidden_dim, params.proj_dim)
        self.key_backbone = _frozen_copy(self.backbone)
        self.key_head = _frozen_copy(self.head)
        self.temperature = params.temperature
        self.momentum = params.momentum
        self.register_buffer("queue", F.normalize(torch.randn(params.queue_size, params.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.queue_size = params.queue_size
        self.queue_len = params.queue_size  # rows in use (before_training caps it)

    def before_training(self, n_images: int, batch_size: int) -> dict[str, int]:
        """Cap the queue in use at the keys the other images of the set can fill."""
        room = n_images - batch_size
        if room < 1:
            raise PluginError(f"moco: {n_images} pre-training images in batches of {batch_size} "
                              f"leave no other images for the queue: use more images or a smaller batch")
        self.queue_len = min(self.queue_size, room)
        self.queue_ptr.remainder_(self.queue_len)
        return {"queue_size": self.queue_len}

    def _ema_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(key tensors, query parameters) matched by name; looked up afresh every call because
        `.to()` replaces buffer tensors."""
        keys, queries = [], []
        for query, key in ((self.backbone, self.key_backbone), (self.head, self.key_head)):
            key_buffers = dict(key.named_buffers())
            for name, param in query.named_parameters():
                keys.append(key_buffers[name])
                queries.append(param.detach())
        return keys, queries

    def key_weights(self) -> dict[str, torch.Tensor]:
        """The key encoder's EMA-tracked weights (its BatchNorm running statistics excluded),
        named as the matching query parameters in `backbone.*` / `head.*`."""
        out = {}
        for prefix, query, key in (("backbone", self.backbone, self.key_backbone),
                                   ("head", self.head, self.key_head)):
            key_buffers = dict(key.named_buffers())
            out.update({f"{prefix}.{name}": key_buffers[name] for name, _ in query.named_parameters()})
        return out

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.key_head(self.key_backbone(x))

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        """Write `keys` at the pointer with wrap-around, as if written one by one: the pointer
        advances by len(keys) mod queue_size; with more keys than slots, the last ones win."""
        size, n = self.queue_len, len(keys)
        kept = F.normalize(keys.float(), dim=1)[-size:]
        idx = (self.queue_ptr + (n - len(kept)) + torch.arange(len(kept), device=keys.device)) % size
        self.queue[idx] = kept
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def training_loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        # One forward per view and encoder, so that (as in the reference) a query and its
        # positive key are never normalised with the statistics of one and the same BN batch.
        q1, q2 = self.head(self.backbone(view1)), self.head(self.backbone(view2))
        k1, k2 = self._keys(view1), self._keys(view2)
        queue = self.queue[:self.queue_len]
        loss = (info_nce(q1, k2, queue, self.temperature)
                + info_nce(q2, k1, queue, self.temperature)) / 2
        # In-place update after the loss: info_nce keeps a normalised copy of the queue for
        # backward, and autograd's version counter would flag it if that ever changed.
        self._enqueue(torch.cat([k1, k2]))
        return loss

    @torch.no_grad()
    def after_step(self) -> None:
        keys, queries = self._ema_pairs()
        if self.momentum == 1.0 or not keys:
            return
        torch._foreach_mul_(keys, self.momentum)
        torch._foreach_add_(keys, queries, alpha=1.0 - self.momentum)
