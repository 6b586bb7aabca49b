"""`mudjacking`: patch a deployed encoder from one bug report, keeping clean embeddings.

Source: Liu, Reiter, Gong, "Mudjacking: Patching Backdoor Vulnerabilities in Foundation Models",
USENIX Security 2024 (arXiv 2402.14977). After deployment a downstream user reports a *bug
instance* (x_b, x_r): an input x_b the classifier built on the encoder got wrong (a
trigger-embedded input) and a reference x_r of the same true class that it got right. It is
wrong because f(x_b) is far from the features of its class, so the provider fine-tunes f by
gradient descent on three terms: *effectiveness* (f(x_b) similar to f(x_r)), *locality* (clean
inputs keep the features the deployed encoder gave them) and *generalizability* (other inputs
carrying the same trigger are patched too: the trigger is reverse-engineered from the bug
instance and stamped inputs must keep their clean features).

Threat model: the provider has the encoder and the bug report, never the poisoned data or which
attack ran; a repair, so ASR and PA are those of the patched encoder. In pe-bench the report
comes from the engine (`RepairContext.bug_report`, built by `pe_bench.worker.defend.bug_report`): a
backdoor's triggered test input, or for the targeted track the attack's (first) target input,
with a reference of its true class; a trial without an attack has none and is left unchanged.

Deviations and assumptions [ours]:
- Locality reads `clean_images` trusted clean images of the pre-training distribution (counted
  in `clean_used`) plus x_r; we could not check here which clean inputs the paper uses.
- Effectiveness pulls f(x_b) to the *deployed* encoder's f(x_r) (a fixed anchor), and every
  term is 1 - cosine similarity; weights `locality` and `generalizability` on the second and
  third terms; Adam on all encoder weights, batch-norm statistics frozen (eval mode).
- The trigger is reverse-engineered as a mask m and pattern p (sigmoid-parameterised, one mask
  for all channels) such that f((1 - m) x_r + m p) matches f(x_b), under an L1 penalty on m
  (`mask_weight`, `trigger_steps` Adam steps), as in DECREE-style inversion. For the targeted
  track x_b carries no trigger; the term is kept (set `generalizability: 0` to drop it).
- `repair_steps` counts the encoder's optimiser steps only; the trigger search adds none.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from pydantic import Field

from pe_bench.defenses.base import BugReport, Defense, PluginParams, RepairContext
from pe_bench.plugins.registry import register_defense


class MudjackingParams(PluginParams):
    clean_images: int = Field(128, ge=1)  # trusted clean inputs for the locality term
    steps: int = Field(100, ge=1)  # encoder optimiser steps
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, ge=1)  # clean inputs per step
    locality: float = Field(1.0, ge=0)  # weight of the locality term
    generalizability: float = Field(1.0, ge=0)  # weight of the stamped-inputs term
    trigger_steps: int = Field(100, ge=0)  # steps of the trigger reverse-engineering
    trigger_lr: float = Field(0.1, gt=0)
    mask_weight: float = Field(0.01, ge=0)  # L1 weight on the mask (share of the image)


def cosine_gap(a: Any, b: Any) -> Any:
    """Mean of 1 - cosine similarity between matching rows."""
    import torch

    return (1 - torch.nn.functional.cosine_similarity(a, b, dim=1)).mean()


def _features(model: Any, images: Any) -> Any:
    """Features of float images in [0, 1] (normalised as in training)."""
    from pe_bench.plugins.tensors import normalize

    return model.features(normalize(images)).float()


def invert_trigger(features: Any, bug: Any, reference: Any, p: MudjackingParams, gen: Any
                   ) -> tuple[Any, Any]:
    """(mask, pattern) that make the reference look like the bug to the deployed encoder
    `features` (frozen), with a small mask: the generalizability term's estimated trigger."""
    import torch

    h, w = bug.shape[-2:]
    mask_raw = (torch.randn((1, 1, h, w), generator=gen) * 0.1 - 2.0).to(bug.device).requires_grad_()
    pattern_raw = torch.randn((1, bug.shape[1], h, w), generator=gen).to(bug.device).requires_grad_()
    opt = torch.optim.Adam([mask_raw, pattern_raw], lr=p.trigger_lr)
    with torch.no_grad():
        goal = features(bug)
    for _ in range(p.trigger_steps):
        mask, pattern = torch.sigmoid(mask_raw), torch.sigmoid(pattern_raw)
        stamped = (1 - mask) * reference + mask * pattern
        loss = cosine_gap(features(stamped), goal) + p.mask_weight * mask.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.sigmoid(mask_raw).detach(), torch.sigmoid(pattern_raw).detach()


def patch(encoder: Any, report: BugReport, clean: np.ndarray, p: MudjackingParams, seed: int) -> Any:
    """Fine-tune `encoder` in place on the three terms; returns it."""
    import copy

    import torch

    from pe_bench.plugins.tensors import cuda_channels_last, to_float

    device = next(cuda_channels_last(encoder).parameters()).device  # NHWC on CUDA only
    gen = torch.Generator(device="cpu").manual_seed(seed)
    deployed = copy.deepcopy(encoder).eval()
    for param in deployed.parameters():
        param.requires_grad_(False)

    def as_float(images: np.ndarray) -> Any:
        return to_float(torch.tensor(np.asarray(images), device=device))

    bug, ref, x = as_float(report.bug[None]), as_float(report.reference[None]), as_float(clean)
    x = torch.cat([x, ref])
    before, after = partial(_features, deployed), partial(_features, encoder)
    mask, pattern = invert_trigger(before, bug, ref, p, gen)
    with torch.no_grad():
        anchor, kept = before(ref), before(x)
    encoder.eval()
    opt = torch.optim.Adam(encoder.parameters(), lr=p.lr)
    for _ in range(p.steps):
        pick = torch.randperm(len(x), generator=gen)[:p.batch_size].to(device)
        batch = x[pick]
        loss = (cosine_gap(after(bug), anchor) + p.locality * cosine_gap(after(batch), kept[pick])
                + p.generalizability * cosine_gap(after((1 - mask) * batch + mask * pattern), kept[pick]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return encoder.eval()


@register_defense("mudjacking")
class Mudjacking(Defense):
    """Patches the encoder from the trial's one bug report; without a report, changes nothing."""

    families = ("backdoor",)  # Mudjacking patches backdoor vulnerabilities from a bug report

    Params = MudjackingParams
    params: MudjackingParams

    def repair(self, encoder: Any, ctx: RepairContext) -> Any:
        report = ctx.bug_report
        if report is None:
            return encoder
        p = self.params
        clean = ctx.clean_images(min(p.clean_images, len(ctx.pool)))
        for param in encoder.parameters():
            param.requires_grad_(True)
        patched = patch(encoder, report, clean, p, ctx.seed)
        ctx.steps += p.steps
        ctx.images += p.steps * (min(p.batch_size, len(clean) + 1) + 1)
        return patched

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"clean_images": 16, "steps": 3, "batch_size": 8, "trigger_steps": 3}
