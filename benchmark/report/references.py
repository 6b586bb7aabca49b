"""Papers' published headline numbers per attack, as typed rows: the "Published headlines" table
of docs/results/reference.md, transcribed cell for cell (tests/unit/report/test_references.py
holds the two together, so neither can drift). Hand-written data, never a pe-bench measurement:
the published site shows the rows of the attacks a matrix holds under that matrix, as the
papers' settings, which differ from the cells'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SOURCE = "docs/results/reference.md"
SPEC = ("the project's spec (../shared/PAPER.md, \"published reference rows\"), from the paper's own "
        "evaluation")
NOT_VERIFIED = "not verified offline"


@dataclass(frozen=True)
class Reference:
    """One row of the table: the attack (a plugin name) and how the paper ran it (`variant`,
    e.g. "(as a baseline)"), the paper, their setting, budget, clean accuracy, headline ASR or
    their own metric, and where the number was read."""

    attack: str
    variant: str
    paper: str
    setting: str
    budget: str
    ca: str
    metric: str
    source: str


REFERENCES: tuple[Reference, ...] = (
    Reference("poisoned-encoder", "", "Liu, Jia, Gong, USENIX Security 2022 (arXiv 2205.06401)",
              "multiple datasets, not named in the abstract", NOT_VERIFIED,
              '"maintaining the testing accuracy" (no number)', '"high attack success rates" (no number)',
              "abstract, deepai.org/publication/poisonedencoder-poisoning-the-unlabeled-pre-training-data"
              "-in-contrastive-learning"),
    Reference("ssl-backdoor", "", "Saha et al., CVPR 2022 (arXiv 2105.10123)",
              "ImageNet-100, MoCo v2 / BYOL: not verified offline", NOT_VERIFIED, NOT_VERIFIED,
              '"many false positives for the target category" (no number)',
              "abstract, openaccess.thecvf.com (CVPR 2022 paper page)"),
    Reference("ssl-backdoor", "(as a defense's baseline)",
              "Tejankar et al., CVPR 2023 (PatchSearch, arXiv 2304.01482)", "not named in the abstract",
              "not named in the abstract", "clean model 64.6%",
              "backdoored model's accuracy on triggered images 38.2% (63.7% after their defense)",
              "abstract, ar5iv.labs.arxiv.org/html/2304.01482"),
    Reference("poisoned-encoder", "(as a backdoor baseline)",
              "re-run in CorruptEncoder's evaluation (CVPR 2024)",
              "ImageNet-100, MoCo v2, ResNet18", "0.5%, 3 references", "61.1% (clean encoder 61.2%)",
              "35.5% (clean encoder 0.4%)", SPEC),
    Reference("ssl-backdoor", "(as a baseline)", "re-run in CorruptEncoder's evaluation (CVPR 2024)",
              "ImageNet-100, MoCo v2", "0.5%", "61.3%", "14.3%", SPEC),
    Reference("ctrl", "", "Li et al., ICCV 2023 (arXiv 2210.07346)",
              "headline: not named; their code's example: CIFAR-10, SimCLR, ResNet18, 800 epochs",
              "≤ 1% (code example: `--poison_ratio 0.01`, magnitude 100, window 32, frequencies 15 and "
              "31 of channels 1, 2)", NOT_VERIFIED, "≥ 99%",
              "abstract, ar5iv.labs.arxiv.org/html/2210.07346; README of github.com/meet-cjli/CTRL"),
    Reference("corrupt-encoder", "", "Zhang, Liu, Jia, Gong, CVPR 2024 (arXiv 2211.08229)",
              "ImageNet-100, MoCo v2", "0.5%, 3 reference images", "61.6%", "92.9% (abstract: > 90%)",
              SPEC + "; abstract (openreview.net/forum?id=sCd7pHnXMG)"),
    Reference("corrupt-encoder", "(+, support poisons)", "same paper", "ImageNet-100, MoCo v2", "0.5%",
              "61.7%", "99.5%", SPEC),
    Reference("noisy-alignment", "", "Chen et al., ICCV 2025 (arXiv 2508.14015)", "ImageNet-100 (summary)",
              NOT_VERIFIED, '"maintaining clean-data accuracy" (no number)',
              "up to +45.9 points ASR over prior data-poisoning backdoors (a third-party summary, not "
              "the paper's text)",
              "abstract, arxiv.org/html/2508.14015v1; summary, en.papernotes.org (ICCV2025 notes)"),
    Reference("badencoder", "", "Jia, Liu, Gong, IEEE S&P 2022 (arXiv 2108.00352)",
              "CIFAR-10 pre-training, SimCLR; downstream STL-10", "no poisons (fine-tunes the encoder)",
              "BA 76.18%", "99.73%", SPEC),
    Reference("carlini-terzis", "targeted", "Carlini, Terzis, ICLR 2022 (arXiv 2106.09667)",
              "Conceptual Captions (3 million pairs), CLIP-style", "0.0001% (3 of 3 million)", NOT_VERIFIED,
              '"misclassifies a particular test input" (rate not in the abstract)',
              "abstract, ar5iv.labs.arxiv.org/html/2106.09667"),
    Reference("carlini-terzis", "backdoor", "same paper", "Conceptual Captions, CLIP-style",
              "0.01% (300 of 3 million), a small patch", NOT_VERIFIED,
              '"misclassify test images by overlaying a small patch" (rate not in the abstract)',
              "abstract, ar5iv.labs.arxiv.org/html/2106.09667"),
)


def of_attacks(attacks: Iterable[str]) -> list[Reference]:
    """The rows of the named attacks (plugin names), in the table's order."""
    wanted = set(attacks)
    return [ref for ref in REFERENCES if ref.attack in wanted]
