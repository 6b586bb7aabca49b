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
- Search budget: `steps` 300 Adam steps (betas (0.9, 0.999)) at `lr` 0.1 in batches of
  `batch_size` 64, against the release's up to 1,000 epochs (4,000 steps in batches of 256,
  `main.py`'s default; 8,000 in the 128 of `run_decree.py`'s `run`), early-stopped, with Adam
  betas (0.5, 0.9) at lr `--lr` (1e-3 in `main.py`, 0.5 in `run_decree.py`) for the first 30
  epochs, then 0.1, and 0.05 from epoch 50 (CIFAR-10/STL-10 encoders; 200 / 500 for
  CLIP/ImageNet) [release at commit 9c13b88, `main.py`: `adjust_learning_rate`, `epochs =
  1000`, `--batch_size`, `--lr`]. Kept: one step passes a batch forward and back through the
  encoder, and suites/defenses-matrix.yaml, which runs the defaults, scores two encoders in
  each of its decree rows; the release's step count is out of reach on 2 CPU cores.
- Penalty schedule: x `adjust` (1.2) up or down after every step, from `mask_weight` 1e-3 on
  the one-channel mask's sum; the release multiplies or divides its weight (init 1e-3, floor
  1e-5) by 5 after 5 consecutive steps above or below its threshold, on the sum of the mask
  repeated over 3 channels (3x ours for one mask), and succeeds at a mean pairwise cosine of
  0.99 (`--thres`) of uncentred embeddings, against our 0.9 of centred ones.
- One mask shared by the colour channels as in the release; sigmoid-parameterised mask and
  pattern (the release: tanh), random-normal initialisation (the release: uniform, `rand`),
  at the trial's resolution.
- Clean data: `clean_images` 1,000 trusted clean images (the release's 10% class-balanced
  sample of the 10,000-image CIFAR-10 or STL-10 test set, `main.py` `sample(0.1)`; 256 before),
  capped at the pool; a batch is drawn from them at every step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams, RepairContext
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_defense


class DecreeParams(PluginParams):
    clean_images: int = Field(1000, ge=2)  # trusted clean images the search stamps (the release's)
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
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("score = 1 − PL1 of the smallest mask that reached the similarity target (0 if none "
                  "did); flagged when PL1 < `threshold`, default 0.1",
                  "higher means more suspicious, like every pe-bench score; 0.1 is our reading of "
                  "DECREE's decision rule (a trigger under a tenth of the image), the paper's exact "
                  "value unchecked",
                  "not measured: suites/defenses-matrix.yaml reads its operating point on digits, "
                  "clean twins and `duplicate`-trained encoders as negative controls; its table "
                  "(defenses-matrix.md, revision 4) is withdrawn, re-run pending (docs/results/README.md)"),
        Deviation("embeddings are centred on the clean images' mean embedding before the cosine "
                  "similarity; success at a mean pairwise cosine of `target_similarity` 0.9 (the "
                  "release: 0.99 of uncentred embeddings)",
                  "a small ReLU network's features are all positive and already similar without a "
                  "trigger, which would let a clean encoder collapse with an empty mask"),
        Deviation("search budget: `steps` 300 Adam steps (betas (0.9, 0.999)) at `lr` 0.1 in batches "
                  "of `batch_size` 64; the release runs up to 1,000 epochs (4,000 steps in batches of "
                  "256), early-stopped, Adam betas (0.5, 0.9) with a stepped learning rate",
                  "the release's step count is out of reach on 2 CPU cores; one step passes a batch "
                  "forward and back through the encoder"),
        Deviation("penalty schedule: × `adjust` (1.2) up or down after every step, from `mask_weight` "
                  "1e-3 on the one-channel mask's sum; the release multiplies or divides by 5 after 5 "
                  "consecutive steps above or below its threshold, on the mask repeated over 3 "
                  "channels",
                  "ours; the docstring records the release (commit 9c13b88), not why we differ"),
        Deviation("one mask shared by the colour channels, as in the release; sigmoid-parameterised "
                  "mask and pattern (the release: tanh), random-normal initialisation (the release: "
                  "uniform), at the trial's resolution",
                  "ours; no reason recorded"),
        Deviation("`clean_images` 1,000 trusted clean images (256 before), capped at the pool; a batch "
                  "is drawn from them at every step",
                  "the release's 10% class-balanced sample of a 10,000-image test set"),
    )

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
