"""`decree`: encoder-level backdoor detection by trigger inversion (a detector; it repairs nothing).

Source: Feng, Tao, Cheng, Shen, Xu, Liu, Zhang, Ma, Zhang, "Detecting Backdoors in Pre-trained
Encoders" (DECREE), CVPR 2023. A backdoored encoder maps any input carrying its trigger to
nearly one embedding, so a *small* trigger that makes the embeddings of clean inputs collapse
exists; for a clean encoder only a large one does. DECREE searches for it: a mask m and a
pattern p, stamped as x' = (1 - m) x + m p on clean images, optimised to maximise the mean
pairwise cosine similarity of the embeddings of the stamped images under an L1 penalty on m
whose weight is raised while the similarity target is met and lowered while it is not. The
verdict reads the inverted trigger's size relative to the image, the PL1-norm ||m||_1 / (H W):
small means backdoored.

Threat model: the defender has the encoder and a small set of clean unlabeled images (here
`clean_images` of the trusted pool, counted in `clean_used`), no labels, no downstream task, no
knowledge of the trigger or of the pre-training data. It changes no encoder: ASR and PA stay
those of the undefended encoder; its output is `encoder_score` for the attacked encoder and
`encoder_score_clean` for its clean twin, and the leaderboard's encoder AUROC over seeds.

Deviations and assumptions [ours]:
- Score = 1 - PL1 of the smallest mask that reached the similarity target during the search
  (1 - 1 = 0 if none did), so that higher means more suspicious like every pe-bench score;
  flagged when PL1 < `threshold`. The default 0.1 is our reading of DECREE's decision rule
  (a trigger under a tenth of the image); we could not check the paper's exact value here.
- Embeddings are centred on the clean images' mean embedding before the cosine similarity:
  the features of a small ReLU network are all positive and already similar without any
  trigger, which would let a clean encoder "collapse" with an empty mask.
- A few hundred Adam steps at the trial's resolution (`steps`, `lr`, `batch_size`), one mask
  shared by the colour channels, sigmoid-parameterised mask and pattern, a multiplicative
  penalty schedule (x `adjust` up or down each step); the paper's schedule and step counts
  for 224x224 encoders differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams, RepairContext
from pe_bench.plugins.registry import register_defense


class DecreeParams(PluginParams):
    clean_images: int = Field(256, ge=2)  # trusted clean images the search stamps
    steps: int = Field(300, ge=1)  # optimiser steps of the search
    lr: float = Field(0.1, gt=0)
    batch_size: int = Field(64, ge=2)
    target_similarity: float = Field(0.9, gt=0, le=1)  # mean pairwise cosine that counts as collapse
    mask_weight: float = Field(1e-3, gt=0)  # initial weight of the mask's L1 norm (pixels)
    adjust: float = Field(1.2, gt=1)  # penalty weight factor per step
    threshold: float = Field(0.1, gt=0, le=1)  # flagged when the inverted PL1-norm is below


def collapse(features: Any, centre: Any) -> Any:
    """Mean pairwise cosine similarity of centred features (off-diagonal pairs only)."""
    import torch

    z = torch.nn.functional.normalize(features - centre, dim=1)
    sim = z @ z.T
    n = len(z)
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


def invert(encoder: Any, images: np.ndarray, p: DecreeParams, seed: int) -> float:
    """The PL1-norm of the smallest mask reaching `target_similarity` (1.0 if none did)."""
    import torch

    from pe_bench.plugins.tensors import cuda_channels_last, normalize, to_float

    device = next(cuda_channels_last(encoder).parameters()).device  # NHWC on CUDA only
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = to_float(torch.tensor(images, device=device))
    with torch.no_grad():
        centre = encoder.features(normalize(x)).float().mean(0)
    h, w = x.shape[-2:]
    mask_raw = torch.randn((1, 1, h, w), generator=gen).to(device).mul_(0.1).sub_(2.0).requires_grad_()
    pattern_raw = torch.randn((1, x.shape[1], h, w), generator=gen).to(device).requires_grad_()
    opt = torch.optim.Adam([mask_raw, pattern_raw], lr=p.lr)
    weight, best = p.mask_weight, 1.0
    for _ in range(p.steps):
        batch = x[torch.randperm(len(x), generator=gen)[:p.batch_size].to(device)]
        mask, pattern = torch.sigmoid(mask_raw), torch.sigmoid(pattern_raw)
        stamped = (1 - mask) * batch + mask * pattern
        similarity = collapse(encoder.features(normalize(stamped)).float(), centre)
        size = mask.sum() / (h * w)
        loss = -similarity + weight * mask.sum()  # the L1 norm of the mask, in pixels
        opt.zero_grad()
        loss.backward()
        opt.step()
        if float(similarity.detach()) >= p.target_similarity:
            best = min(best, float(size.detach()))
            weight *= p.adjust
        else:
            weight /= p.adjust
    return best


@register_defense("decree")
class Decree(Defense):
    """Scores an encoder by how small a trigger collapses its embeddings of clean images."""

    families = ("backdoor",)  # DECREE detects backdoored encoders by trigger inversion

    Params = DecreeParams
    params: DecreeParams

    def score_encoder(self, encoder: Any, ctx: RepairContext) -> float:
        """1 - the inverted trigger's PL1-norm (the encoder is a copy; its weights stay)."""
        for param in encoder.parameters():
            param.requires_grad_(False)
        images = ctx.clean_images(min(self.params.clean_images, len(ctx.pool)))
        return 1.0 - invert(encoder.eval(), images, self.params, ctx.seed)

    def flag_encoder(self, score: float) -> bool | None:
        return bool(1.0 - score < self.params.threshold)

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"clean_images": 16, "steps": 3, "batch_size": 8}
