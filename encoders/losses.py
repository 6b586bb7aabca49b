"""Contrastive losses as pure functions of tensors.

Each is computed in float32 whatever the input dtype and whatever autocast the caller runs
under (the training step's bf16 autocast would otherwise run the logits' matmul in bfloat16,
which loses the small differences between negatives that these losses live on: issue #25
measured an 11% gradient error for InfoNCE with a 256-key queue), so CPU and GPU compute the
same loss from the same features. Each is tested against a slow, loop-based reference
(tests/unit/encoders/test_losses.py) and under `torch.autocast("cpu", torch.bfloat16)` against
itself outside it (tests/unit/encoders/test_autocast.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def full_precision(like: torch.Tensor) -> torch.autocast:
    """Autocast switched off on `like`'s device: the context every loss computes in."""
    return torch.autocast(like.device.type, enabled=False)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy), SimCLR: Chen et al., ICML 2020.

    `z1[i]` and `z2[i]` are projections of two views of image i. For each of the 2N views the
    positive is the other view of the same image and the other 2N-2 views are negatives; the
    loss is the mean over all 2N anchors (both directions).
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent expects two (N, D) tensors of one shape, got {z1.shape}, {z2.shape}")
    n = z1.shape[0]
    with full_precision(z1):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        logits = z @ z.t() / temperature
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        idx = torch.arange(n, device=z.device)
        targets = torch.cat([idx + n, idx])
        return F.cross_entropy(logits, targets)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE as in MoCo (He et al., CVPR 2020; v2: Chen et al., arXiv 2003.04297).

    `q[i]` (query encoder) and `k[i]` (momentum key encoder) embed two views of image i: the
    positive pair. The negatives of every query are the `queue` rows (keys of earlier batches),
    never the other keys of the current batch. Keys and queue carry no gradient.
    """
    if q.shape != k.shape or q.ndim != 2 or queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(
            f"info_nce expects q, k (N, D) and queue (K, D); got {q.shape}, {k.shape}, {queue.shape}")
    with full_precision(q):
        q = F.normalize(q.float(), dim=1)
        k = F.normalize(k.float(), dim=1).detach()
        negatives = F.normalize(queue.float(), dim=1).detach()
        positive = (q * k).sum(1, keepdim=True)
        logits = torch.cat([positive, q @ negatives.t()], dim=1) / temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
              logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric contrastive loss (Radford et al., ICML 2021).

    Row i of each input embeds the i-th image and its caption. Logits are
    `logit_scale * cos(image_i, text_j)`; the loss is the mean of the image->text and the
    text->image cross entropies with the matching pair as the target.
    """
    if image_features.shape != text_features.shape or image_features.ndim != 2:
        raise ValueError(
            f"clip_loss expects two (N, D) tensors; got {image_features.shape}, {text_features.shape}")
    with full_precision(image_features):
        img = F.normalize(image_features.float(), dim=1)
        txt = F.normalize(text_features.float(), dim=1)
        scale = logit_scale.float() if isinstance(logit_scale, torch.Tensor) else logit_scale
        logits = scale * img @ txt.t()
        targets = torch.arange(len(img), device=img.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
