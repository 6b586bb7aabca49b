"""`roclip`: pre-train the CLIP-style encoder with images paired to pool captions, not their own.

Paper: Yang, Gao, Mirzasoleiman, "Robust Contrastive Language-Image Pre-training against Data
Poisoning and Backdoor Attacks" (RoCLIP), NeurIPS 2023; facts from the authors' released
training code (BigML-CS-UCLA/RoCLIP). A poisoned image-caption pair works because the
contrastive loss pulls the image towards its planted caption. RoCLIP keeps a pool of captions
(a first-in first-out memory bank of the text embeddings of recent batches, 21,845 entries by
default) and, every K-th epoch (K = `--break_epoch`, 2 by default: epochs 2, 4, ...), pairs
each image in the loss with the pool caption nearest to the image's embedding instead of its
own caption; the other epochs train as plain CLIP. A poisoned image rarely has its planted
caption as nearest neighbour, so the pair loses its pull; clean images are mostly matched to
captions of their own kind. The pool entries are detached embeddings, so a matching epoch
trains the image side only. The authors also augment (`--cross_aug`): images with a flip,
random resized crop, colour jitter (0.5, 0.5, 0.5, 0.1) w.p. 0.8, grayscale w.p. 0.2 and a
Gaussian blur; captions with EDA (WordNet synonym replacement, random insertion, swap,
deletion).

Threat model: the defender controls the training recipe and has no clean data and no
knowledge of the attack. Applies to encoders trained on image+text only (the grid excludes
image-only encoders with the reason).
Deviations [ours]:
- The pool is `pool_fraction` of the clean pre-training set (default 0.022: the release's
  21,845-entry memory bank over the 1M CC3M pairs we read the paper to pre-train on [our
  reading, not verified offline]; 24 captions on digits' 1,078 images, 110 on 5,000 CIFAR-10
  images), or `pool_size` captions where set; `every` is the authors' 2. Earlier runs (before
  training revision 5) used 1,024 captions, about 90% of the digits set: nearly all of it.
- Limitation where its numbers are read: captions here are class names in 80 templates
  (pe_bench.plugins.captions), so the nearest pool caption names a class and matching pairs an
  image with a pseudo-label of its predicted class; on web captions the pool holds unrelated
  descriptions. RoCLIP's effect here is that of pseudo-labelled caption swapping.
- The pool fills in every epoch and an empty pool keeps the batch's own captions
  (pe_bench.encoders.caption_pool says why).
- No extra augmentation: every encoder already trains on the suite's recipe (flip, crop,
  colour jitter, grayscale: the authors' image augmentations but the blur, which at 32x32
  would erase the image), kept so comparisons with other defenses stay fair; EDA needs
  WordNet and the captions here are class-name templates, whose template choice already
  varies the wording.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from pe_bench.defenses.base import Defense, PluginParams
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_defense
from pe_bench.config.spec import CaptionMatching, TrainSpec


@register_defense("roclip")
class RoCLIP(Defense):
    """Pair each image with its nearest pool caption every `every`-th epoch."""

    modalities = ("image", "text")
    families = ("targeted", "backdoor")  # RoCLIP is evaluated against both data poisoning and backdoors
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("the pool is `pool_fraction` of the clean pre-training set (default 0.022: 24 "
                  "captions on digits), or `pool_size` captions where set; `every` is the authors' 2; "
                  "runs before training revision 5 used 1,024 captions, nearly all of digits",
                  "the release's 21,845-entry bank over the 1M CC3M pairs we read the paper to "
                  "pre-train on (our reading, not verified offline)"),
        Deviation("captions are class names in 8 templates, so the nearest pool caption names a "
                  "class: matching pairs an image with a pseudo-label of its predicted class",
                  "offline captions (`pe_bench.plugins.captions`); on web captions the pool holds "
                  "unrelated descriptions",
                  "not isolated: roclip's numbers (defenses-matrix-clip.md, revision 5) are those of "
                  "pseudo-labelled caption swapping"),
        Deviation("the pool fills in every epoch; an empty pool keeps the batch's own captions",
                  "the authors' bank starts from random vectors, which pair the first images of the "
                  "first matching epoch with noise (`pe_bench.encoders.caption_pool`)"),
        Deviation("no extra augmentation: the suite's recipe (the authors' image augmentations but the "
                  "blur), no EDA on captions",
                  "kept so comparisons with other defenses stay fair; the blur would erase a 32 × 32 "
                  "image; EDA needs WordNet, and the template choice already varies the wording"),
    )

    class Params(PluginParams):
        pool_size: int | None = Field(None, ge=1)  # captions in the pool (a FIFO of recent batches)
        pool_fraction: float = Field(0.022, gt=0, le=1)  # unset pool_size: this share of the clean set
        every: int = Field(2, ge=1)  # K: epochs K, 2K, ... (1-based) match; 1: every epoch

    params: Params

    def configure_training(self, train: TrainSpec) -> TrainSpec:
        p = self.params
        return train.replace(caption_matching=CaptionMatching(
            pool_size=p.pool_size, pool_fraction=p.pool_fraction, every=p.every))

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        return {"pool_size": 16}
