"""`decree`: encoder-level backdoor detection by trigger inversion (a detector; it repairs nothing).

Source: Feng, Tao, Cheng, Shen, Xu, Liu, Zhang, Ma, Zhang, "Detecting Backdoors in Pre-trained
Encoders" (DECREE), CVPR 2023. A backdoored encoder maps any input carrying its trigger to
nearly one embedding, so a *small* trigger that makes the embeddings of clean inputs collapse
exists; for a clean encoder only a large one does. DECREE searches for it: a mask m and a
pattern p, stamped as x' = (1 - m) x + m p on clean images, optimised to maximise the mean
pairwise cosine similarity of the embeddings of the stamped images under an L1 penalty on m
whose weight is raised while the similarity target is met and lowered while it is not. The
verdict reads the inverted trigger's size relative to the image, the PL1-norm: small means
backdoored. Release read: github.com/GiantSeaweed/DECREE at commit 9c13b88 (9c13b88bba862aef
bc85a1d79dbd3e8d12458a24, 2023-09-25): `main.py`, `run_decree.py`, `utils.py`, `README.md`; the
line numbers below are `main.py`'s at that commit.

Threat model: the defender has the encoder and a small set of clean unlabeled images (here
`clean_images` of the trusted pool, counted in `clean_used`), no labels, no downstream task, no
knowledge of the trigger or of the pre-training data. It changes no encoder: ASR and PA stay
those of the undefended encoder; its output is `encoder_score` for the attacked encoder and
`encoder_score_clean` for its clean twin, and the leaderboard's encoder AUROC over seeds.

Deviations and assumptions [ours]:
- Score = 1 - PL1 of the smallest mask that reached the similarity target during the search
  (1 - 1 = 0 if none did), so that higher means more suspicious like every pe-bench score;
  flagged when PL1 < `threshold` (default 0.1). Our PL1 is the one-channel mask's share of the
  image, sum(m) / (H W) (`pl1`). The release's mask measure is the L1 norm of the (H, W) mask
  repeated over the 3 colour channels, clipped to [0, 1] (lines 257-261, 290), so ours is that
  L1 divided by 3 H W, the L1 of an all-ones image. The release computes no PL1 and names no
  detection threshold: `main.py` returns and appends to `--result_file` the raw L1 of the
  smallest mask that met the similarity target (lines 301-306, 380-385, 404-406), and the
  README leaves "the PL1-norm can be then easily computed from the L1-norm" to the reader. The
  denominator and the 0.1 are therefore the paper's, which we could not check; dividing by the
  largest clean image's L1 instead would read 2.36x higher on digits (3 H W over the L1 of the
  brightest of scikit-learn's 8x8 digits, mean intensity 0.423).
- Embeddings are centred on the clean images' mean embedding before the cosine similarity:
  the features of a small ReLU network are all positive and already similar without any
  trigger, which would let a clean encoder "collapse" with an empty mask.
- Search budget: `steps` 300 Adam steps (betas (0.9, 0.999)) at `lr` 0.1 in batches of
  `batch_size` 64, against the release's up to 1,000 epochs (line 219; 4,000 steps in batches
  of 256, `main.py`'s default, line 389; 8,000 in the 128 of `run_decree.py`'s `run`), with
  Adam betas (0.5, 0.9) (lines 208-209) at lr `--lr` (1e-3 in `main.py`, line 391; 0.5 in
  `run_decree.py`) for the first 30 epochs, then 0.1, and 0.05 from epoch 50 (CIFAR-10/STL-10
  encoders; 200 / 500 for CLIP/ImageNet; `adjust_learning_rate`, lines 29-45), early-stopped
  once an epoch's mean cosine exceeds 0.99 and the best L1 has not improved for more than 10
  steps (35 for CLIP/ImageNet; lines 231-238, 308-314, 374-383). Kept: one step passes a batch
  forward and back through the encoder, and suites/defenses-matrix.yaml, which runs the
  defaults, scores two encoders in each of its decree rows; the release's step count is out of
  reach on 2 CPU cores.
- Penalty schedule: x `adjust` (1.2) up or down after every step, from `mask_weight` 1e-3 on
  the one-channel mask's sum; the release multiplies or divides its weight (init 1e-3, lines
  214-217) by 5 once more than 5 consecutive steps were above or below its threshold (up only
  below 1e5; down only while at least 1e-5, the CIFAR-10/STL-10 floor, 1e-7 for CLIP/ImageNet;
  reset to 1e-3 after more than 10 successful steps below the floor; lines 231-238, 316-345),
  on the sum of the mask repeated over 3 channels (3x ours for one mask), and succeeds at a
  mean pairwise cosine above 0.99 (`--thres`, line 400; `utils.py` `compute_self_cos_sim`) of
  uncentred embeddings, against our 0.9 of centred ones.
- One mask shared by the colour channels as in the release; sigmoid-parameterised mask and
  pattern (the release: tanh, lines 165-166, 258-259), random-normal initialisation (the
  release: uniform, `rand`, lines 157-161), at the trial's resolution.
- Clean data: `clean_images` 1,000 trusted clean images (the release's 10% class-balanced
  sample of the 10,000-image CIFAR-10 or STL-10 test set, `main.py` `sample(0.1)`, lines
  178-191; 256 before), capped at the pool; a batch is drawn from them at every step.
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


def pl1(mask: Any) -> Any:
    """The PL1-norm of a (1, 1, H, W) mask: its share of the image, sum(m) / (H W), which is the
    release's L1 of the mask repeated over 3 channels divided by 3 H W (see the module doc)."""
    h, w = mask.shape[-2:]
    return mask.sum() / (h * w)


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
        size = pl1(mask)
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
                  "did); flagged when PL1 < `threshold`, default 0.1; PL1 = the release's 3-channel "
                  "mask L1 / 3 H W (the one-channel mask's share of the image)",
                  "higher means more suspicious, like every pe-bench score; the release (commit "
                  "9c13b88) computes no PL1 and names no detection threshold (`main.py` returns the "
                  "raw mask L1, lines 380-385, 404-406; its README leaves PL1 to the reader), so the "
                  "denominator and 0.1 are our reading of the paper, unchecked; dividing by the "
                  "largest clean image's L1 instead reads 2.36× higher on digits",
                  "defenses-matrix.md (revision 5, digits, 10 seeds): encoder AUROC against the clean "
                  "twins 0.990 / 0.950 / 0.590 (corrupt-encoder / noisy-alignment / badencoder), 0.560 "
                  "for `duplicate`-trained encoders (no trigger); at 0.1 it flags every encoder, 10/10 "
                  "attacked and 10/10 clean in each cell (docs/results/README.md)"),
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
                  "1e-3 on the one-channel mask's sum; the release multiplies or divides by 5 once more "
                  "than 5 consecutive steps were above or below its threshold, on the mask repeated "
                  "over 3 channels",
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
