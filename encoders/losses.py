"""Contrastive losses as pure functions of tensors.

Each is computed in float32 whatever the input dtype (bfloat16 logits lose the small
differences between negatives that these losses live on), and each is tested against a slow,
loop-based reference in tests/encoders/test_losses.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy), SimCLR: Chen et al., ICML 2020.

    `z1[i]` and `z2[i]` are projections of two views of image i. For each of the 2N views the
    positive is the other view of the same image and the other 2N-2 views are negatives; the
    loss is the mean over all 2N anchors (both directions).
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent expects two (N, D) tensors of one shape, got {z1.shape}, {z2.shape}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.t() / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    idx = torch.arange(n, device=z.device)
    targets = torch.cat([idx + n, idx])
    return F.cross_entropy(logits, targets)
