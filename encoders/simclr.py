"""SimCLR encoder plugin.

Paper: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020. Backbone -> 2-layer MLP projection head -> NT-Xent over
the 2N views of a batch.

Deviations / assumptions [ours]: the default optimiser is Adam (lr 1e-3, weight decay 1e-6),
common in small-batch SimCLR reimplementations, not LARS (which targets batches of 4096); a
suite's `train` may override it; the projection head uses
BatchNorm after its hidden layer as in SimCLR v2's head.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from pe_bench.encoders.backbones import projection_head
from pe_bench.encoders.base import EncoderMethod
from pe_bench.encoders.losses import nt_xent
from pe_bench.encoders.params import SimCLRParams
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_encoder


@register_encoder("simclr", label_params=("backbone",),
                  params="pe_bench.encoders.params:SimCLRParams", modalities=("image",),
                  optimizer_defaults={"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6})
class SimCLR(EncoderMethod):
    Params = SimCLRParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the default optimiser is Adam (lr 1e-3, weight decay 1e-6), not LARS; a suite's "
                  "`train` may override it",
                  "LARS targets batches of 4096; Adam is common in small-batch SimCLR "
                  "reimplementations"),
        Deviation("the projection head has BatchNorm after its hidden layer",
                  "as in SimCLR v2's head"),
    )

    def __init__(self, params: SimCLRParams, in_channels: int = 3) -> None:
        super().__init__(params, in_channels)
        self.head = projection_head(self.feature_dim, params.proj_hidden_dim, params.proj_dim)
        self.temperature = params.temperature

    def training_loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        z = self.head(self.backbone(torch.cat([view1, view2])))
        z1, z2 = z.chunk(2)
        return nt_xent(z1, z2, self.temperature)
