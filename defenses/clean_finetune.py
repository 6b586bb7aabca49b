"""`clean-finetune`: repair a trained encoder with a clean unlabeled set the defender trusts.

Slot: the spec's post-processing defense (../shared/PAPER.md, defense 5). Two modes:
- `finetune`: continue the encoder's own contrastive training on the clean set (PoisonedEncoder,
  Liu, Jia, Gong, USENIX Security 2022, evaluates fine-tuning on clean data);
- `distill`: train a freshly initialised student to match the (possibly poisoned) encoder's
  features on augmented clean images, the knowledge-distillation defense of Saha et al.
  (SSL-Backdoor, CVPR 2022).
Threat model: the defender holds `clean_images` unlabeled images known to be clean. Assumptions
[ours]: they are drawn (seeded) from the clean part of the pre-training distribution, i.e. the
defender has verified a subset of the scraped data; the number used is reported in every row.
`finetune` needs captions for image–text encoders and refuses them; `distill` works for all.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams, RepairContext
from pe_bench.registry import register_defense


@register_defense("clean-finetune")
class CleanFinetune(Defense):
    """Fine-tune (or distil) the trained encoder on `clean_images` trusted clean images."""

    class Params(PluginParams):
        mode: Literal["finetune", "distill"] = "finetune"
        clean_images: int = Field(500, ge=2)
        epochs: int = Field(20, ge=1)

    params: Params

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"clean_images": 16, "epochs": 1}

    def repair(self, encoder: Any, ctx: RepairContext) -> Any:
        p = self.params
        images = ctx.clean_images(p.clean_images)
        if p.mode == "finetune":
            return ctx.finetune(encoder, images, p.epochs)
        return ctx.distill(ctx.fresh_encoder(), encoder, images, p.epochs)
