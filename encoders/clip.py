"""CLIP-style image–text encoder plugin, trained from scratch.

Paper: Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021. An image encoder and a text encoder are projected to one space and
trained with the symmetric contrastive loss over a batch's image–caption pairs; the
temperature is learned (logit scale initialised at 1/0.07, clamped at 100).

Deviations / assumptions [ours]: offline captions are class names in templates
(pe_bench.plugins.captions), so "image–text" pre-training here is weakly supervised by labels; the text
encoder is a 2-layer Transformer over hashed word tokens; one augmented view per image is used
(CLIP uses a random crop only; we apply the suite's augmentation recipe to every encoder so
comparisons stay fair); optimiser AdamW, lr 5e-4, weight decay 0.2 as in CLIP, unless the suite
sets its own. Downstream: linear probe on image features, or zero-shot from
class-name prompts averaged over all templates. A recipe's `caption_matching` (the `roclip`
defense) pairs images with pool captions in some epochs (pe_bench.encoders.caption_pool).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pe_bench.encoders.base import EncoderMethod
from pe_bench.encoders.caption_pool import CaptionPool
from pe_bench.plugins.captions import MAX_TOKENS, VOCAB_SIZE, class_prompts
from pe_bench.encoders.losses import clip_loss
from pe_bench.encoders.params import CLIPParams
from pe_bench.encoders.text import TextEncoder
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_encoder
from pe_bench.config.spec import TrainSpec


@register_encoder("clip", label_params=("backbone",),
                  params="pe_bench.encoders.params:CLIPParams", modalities=("image", "text"),
                  optimizer_defaults={"optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.2})
class CLIP(EncoderMethod):
    Params = CLIPParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("trained from scratch on offline captions: class names in templates "
                  "(`pe_bench.plugins.captions`), so image–text pre-training here is weakly "
                  "supervised by labels",
                  "no web caption corpus offline"),
        Deviation("the text encoder is a 2-layer Transformer over hashed word tokens",
                  "ours: a small text encoder for templated captions (`pe_bench.encoders.text`)"),
        Deviation("one augmented view per image, with the suite's augmentation recipe (CLIP uses a "
                  "random crop only)",
                  "the suite's recipe applies to every encoder, so comparisons stay fair"),
    )
    max_logit_scale = math.log(100.0)

    def __init__(self, params: CLIPParams, in_channels: int = 3) -> None:
        super().__init__(params, in_channels)
        self.text = TextEncoder(VOCAB_SIZE, MAX_TOKENS, params.text_dim, params.text_depth)
        self.image_proj = nn.Linear(self.feature_dim, params.proj_dim, bias=False)
        self.text_proj = nn.Linear(params.text_dim, params.proj_dim, bias=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / params.init_temperature)))
        self.caption_pool: CaptionPool | None = None  # set per run from the recipe; not a weight
        self.n_images = 0  # clean images of the current run (before_training), sizing the pool

    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_logit_scale).exp()

    def training_loss(self, view1: torch.Tensor, view2: torch.Tensor,
                      text: torch.Tensor | None = None) -> torch.Tensor:
        if text is None:
            raise ValueError("clip needs captions: the training loop passes `text` token ids")
        image = self.image_proj(self.backbone(view1))
        captions = self.text_proj(self.text(text))
        if self.caption_pool is not None:
            captions = self.caption_pool.partners(image, captions)
        return clip_loss(image, captions, self.logit_scale())

    def before_training(self, n_images: int, batch_size: int) -> dict[str, Any]:
        """Remember the run's clean-set size: RoCLIP's pool may be a share of it."""
        self.n_images = n_images
        return {}

    def before_epoch(self, epoch: int, recipe: TrainSpec) -> None:
        """Follow the recipe's `caption_matching`: a fresh pool at a run's first epoch."""
        matching = recipe.caption_matching
        if matching is None:
            self.caption_pool = None
            return
        if epoch == 0 or self.caption_pool is None:
            self.caption_pool = CaptionPool(matching.pool(self.n_images), matching.every)
        self.caption_pool.start_epoch(epoch)

    @torch.no_grad()
    def zero_shot_weights(self, classes: Sequence[str]) -> torch.Tensor:
        """(C, D) unit class embeddings: the mean over templates of unit text embeddings."""
        device = self.log_scale.device
        prompts = torch.from_numpy(class_prompts(classes)).to(device)
        c, t, n = prompts.shape
        emb = nn.functional.normalize(self.text_proj(self.text(prompts.view(c * t, n))).float(), dim=1)
        return nn.functional.normalize(emb.view(c, t, -1).mean(1), dim=1)

    @torch.no_grad()
    def zero_shot_proba(self, features: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Class probabilities from backbone features (as returned by `features`)."""
        weights = self.zero_shot_weights(classes)
        feats = torch.from_numpy(features).to(weights.device)
        image = nn.functional.normalize(self.image_proj(feats).float(), dim=1)
        logits = self.logit_scale().float() * image @ weights.t()
        return torch.softmax(logits, dim=1).cpu().numpy()
