"""What a trial measured, as frozen, validated models: per target pair, per task, per trial.

The worker builds them (`pipeline.run_trial`), the store's row model (`pe_bench.store.schema.TrialRow`)
wraps them, and the Arrow schema and the leaderboard's columns are derived from their fields:
a new metric is one field here plus one entry in `pe_bench.report.columns` (CONTRIBUTING.md).
Validation rejects NaN and infinities, fractions outside [0, 1] and counts that cannot be
(more successes than target pairs), so a plugin that returns garbage makes an error row
instead of a row that skews every mean it enters. Torch-free: the control plane reads these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0.0)]


@dataclass(frozen=True)
class PairMean:
    """Marks a metric that is the mean of a `TargetOutcome` field over target pairs (a task's,
    or every task's pooled); None without pairs. `pair_means` computes all of them."""

    field: str


@dataclass(frozen=True)
class Flat:
    """Marks a nested model whose fields are stored as columns of the enclosing row (named by
    `template`, e.g. "time_{}_s") instead of as one struct column."""

    template: str = "{}"


class Frozen(BaseModel):
    """Immutable, no unknown fields, no NaN or infinity anywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class TargetOutcome(Frozen):
    """One target pair (x_i, y_i): its outcome on this encoder, on the paired clean twin and on
    the undefended poisoned encoder of the same seed (the same as this one without a defense)."""

    index: Count = Field(description="position of x_i in the task's test split")
    true_class: Count
    target_class: Count
    hit: bool = Field(description="this encoder's classifier predicts y_i for x_i")
    hit_clean: bool
    hit_undefended: bool
    p: Fraction = Field(description="p(y_i | x_i) under this encoder's classifier")
    p_clean: Fraction
    p_undefended: Fraction
    p_vote: Fraction | None = Field(default=None, description="share of an ensemble's members "
                                    "predicting y_i (None for a single encoder)")
    rank: int = Field(ge=1, description="rank of y_i among the classes (1 = top)")
    rank_clean: int = Field(ge=1)


class Metrics(Frozen):
    """Accuracies and attack success, for one task or pooled over a trial's tasks. CA is the
    clean twin's accuracy, PA this (possibly defended) encoder's; target inputs are excluded
    from both. ASR and its kin are rates over target pairs (targeted attacks) or, for a
    backdoor, over its triggered test inputs (`n_triggered`: the test inputs of the other
    classes with the trigger, counted per encoder); None where there are neither (no attack).
    A backdoor's BA (the attacked encoder's clean accuracy) is PA."""

    ca: Fraction
    pa: Fraction
    pa_undefended: Fraction
    n_targets: Count
    successes: Count
    n_triggered: Count | None = Field(default=None, description="triggered test inputs of the other "
                                      "classes (backdoor attacks; None: targeted)")
    triggered_hits: Count | None = Field(default=None, description="of them, assigned to the target "
                                         "class by this encoder's classifier")
    triggered_hits_clean: Count | None = Field(default=None, description="the same on the clean twin")
    triggered_hits_undefended: Count | None = Field(default=None, description="the same on the "
                                                    "undefended poisoned encoder")
    asr: Annotated[Fraction | None, PairMean("hit")] = None
    baseline_asr: Annotated[Fraction | None, PairMean("hit_clean")] = None
    asr_undefended: Annotated[Fraction | None, PairMean("hit_undefended")] = None
    p_target: Annotated[Fraction | None, PairMean("p")] = None
    p_target_clean: Annotated[Fraction | None, PairMean("p_clean")] = None
    p_target_undefended: Annotated[Fraction | None, PairMean("p_undefended")] = None
    p_target_vote: Annotated[Fraction | None, PairMean("p_vote")] = None

    @model_validator(mode="after")
    def _counts_agree(self) -> Self:
        if self.successes > self.n_targets:
            raise ValueError(f"successes ({self.successes}) exceed n_targets ({self.n_targets})")
        triggered = self.n_triggered or 0
        for name in TRIGGER_HITS:
            if (getattr(self, name) or 0) > triggered:
                raise ValueError(f"{name} ({getattr(self, name)}) exceed n_triggered ({self.n_triggered})")
        if (self.asr is None) != (self.n_targets == 0 and triggered == 0):
            raise ValueError(f"asr is {self.asr} with {self.n_targets} target pairs and "
                             f"{triggered} triggered inputs")
        return self


class TaskMetrics(Metrics):
    """One downstream task, with every target pair drawn in it."""

    task: str
    n_classes: int = Field(ge=1)
    n_test: Count
    targets: tuple[TargetOutcome, ...] = ()
    trigger_target: int | None = Field(default=None, ge=0, description="a backdoor's target class "
                                       "in this task (None: targeted, or a store from before it)")

    @model_validator(mode="after")
    def _targets_agree(self) -> Self:
        hits = sum(t.hit for t in self.targets)
        if (self.n_targets, self.successes) != (len(self.targets), hits):
            raise ValueError(f"n_targets / successes ({self.n_targets} / {self.successes}) do not "
                             f"match the {len(self.targets)} target pairs ({hits} hits)")
        return self


class DefenseReport(Frozen):
    """What a defense cost and how well it told poisons (and backdoored encoders) apart.
    Filter scores are None for a defense without a filter hook; threshold-free detection
    metrics need per-image scores (`score`, `score_trained`); encoder scores need
    `score_encoder`. Costs are the defense's own work, not wall time (docs/metrics.md)."""

    defense_hooks: str = Field(description="the stage hooks the defense implements, comma-separated")
    n_encoders: int = Field(ge=1, description="encoders behind the defended classifier (>1: they vote)")
    n_removed: Count = 0
    clean_removed: Count | None = None
    poison_recall: Fraction | None = Field(default=None, description="TPR at the filter's threshold")
    poison_precision: Fraction | None = None
    poison_fpr: Fraction | None = Field(default=None, description="clean images removed / clean images")
    poison_f1: Fraction | None = None
    poison_auroc: Fraction | None = Field(default=None, description="AUROC of the per-image scores, "
                                          "poisons positive (None: the defense reports no scores)")
    poison_auprc: Fraction | None = Field(default=None, description="average precision of the same")
    poison_recall_fpr1: Fraction | None = Field(default=None, description="share of poisons its "
                                                "scores flag at a 1% clean false-positive rate")
    poison_recall_fpr5: Fraction | None = Field(default=None, description="the same at 5%")
    encoder_score: float | None = Field(default=None, description="score_encoder of the attacked "
                                        "(undefended poisoned) encoder; higher = more suspicious")
    encoder_score_clean: float | None = Field(default=None, description="the same of the clean twin")
    encoder_flagged: bool | None = Field(default=None, description="the attacked encoder judged "
                                         "backdoored at the defense's threshold (None: no threshold)")
    encoder_flagged_clean: bool | None = None
    clean_used: Count | None = Field(default=0, description="trusted clean images a repair or "
                                     "detector used (None: a store from before it was recorded)")
    repair_steps: Count | None = Field(default=None, description="optimiser steps a repair took per "
                                       "encoder (None: no repair, or a store from before it was counted)")
    defense_cpu_s: Seconds | None = Field(default=None, description="CPU seconds of the defense's "
                                          "hooks (None: recorded before CPU time was, or no hook)")
    extra_train_cpu_s: float | None = Field(default=None, description="CPU seconds of the pre-training "
                                            "it caused minus the undefended training it replaced")
    extra_steps: int | None = Field(default=None, description="optimiser steps vs the undefended "
                                    "training (negative: it saved some)")
    extra_images: int | None = Field(default=None, description="training images processed vs the "
                                     "undefended training")


class Timings(Frozen):
    """Wall seconds per stage of a trial; None for a stage it did not run."""

    data: Seconds | None = None
    attack: Seconds | None = None
    defense: Seconds | None = None
    pretrain_clean: Seconds | None = None
    pretrain_poisoned: Seconds | None = None
    evaluate: Seconds | None = None


class EncoderInfo(Frozen):
    """Where and how fast the evaluated encoder was trained (None where it was not trained,
    e.g. a repaired encoder)."""

    device: str | None = None
    train_images_per_s: Annotated[float, Field(ge=0.0)] | None = None
    # JSON of the settings the encoder method fitted to the pre-training set before training
    # (EncoderMethod.before_training; e.g. MoCo's queue_size in use); None when it fitted none
    fitted: str | None = None
    # of its training step: "bf16" (autocast where the hardware runs it natively) or "fp32";
    # None in rows written before TRAINING_REVISION 5 (fp32 on CPU, bf16 autocast on CUDA)
    train_precision: Literal["bf16", "fp32"] | None = None


class TrialMetrics(Metrics):
    """Everything one trial measured: the pooled metrics, each task's, the defense's report,
    stage timings and the evaluated encoder's training info."""

    n_pretrain: Count
    n_poisons: Count
    # poisons that differ in a pixel (fewer than n_poisons: the attack repeated images) and
    # poisons / clean pre-training images of the target classes (pe_bench.worker.budget);
    # None in rows written before schema 8, and the share where it is undefined
    n_distinct_poisons: Count | None = None
    poison_class_share: Annotated[float, Field(ge=0.0)] | None = None
    cache_hits: Count
    tasks: tuple[TaskMetrics, ...] = Field(min_length=1)
    defense: Annotated[DefenseReport, Flat()]
    timings: Annotated[Timings, Flat("time_{}_s")] = Timings()
    encoder: Annotated[EncoderInfo, Flat()] = EncoderInfo()

    @model_validator(mode="after")
    def _pooled_agree(self) -> Self:
        pairs, hits = sum(t.n_targets for t in self.tasks), sum(t.successes for t in self.tasks)
        if (self.n_targets, self.successes) != (pairs, hits):
            raise ValueError(f"n_targets / successes ({self.n_targets} / {self.successes}) are not "
                             f"the tasks' {pairs} / {hits}")
        for name in ("n_triggered", *TRIGGER_HITS):
            parts = [getattr(t, name) for t in self.tasks if getattr(t, name) is not None]
            if parts and getattr(self, name) != sum(parts):
                raise ValueError(f"{name} ({getattr(self, name)}) is not the tasks' {sum(parts)}")
        return self


TRIGGER_HITS = ("triggered_hits", "triggered_hits_clean", "triggered_hits_undefended")
TRIGGER_RATES = dict(zip(TRIGGER_HITS, ("asr", "baseline_asr", "asr_undefended"), strict=True))


def trigger_rates(counts: Mapping[str, int | None]) -> dict[str, float]:
    """A backdoor's ASR, clean ASR and undefended ASR from its triggered-input counts (none
    without triggered inputs)."""
    n = counts.get("n_triggered") or 0
    return {rate: (counts.get(hits) or 0) / n for hits, rate in TRIGGER_RATES.items()} if n else {}


def pair_means(model: type[BaseModel], targets: Sequence[TargetOutcome]) -> dict[str, float | None]:
    """Every `PairMean` metric of `model` over `targets` (numpy's mean, as the metrics always
    were computed: the numbers of a trial do not depend on how they are declared); None
    without pairs or where a pair lacks the value (a vote share outside an ensemble)."""
    out: dict[str, float | None] = {}
    for name, info in model.model_fields.items():
        mark = next((m for m in info.metadata if isinstance(m, PairMean)), None)
        if mark is not None:
            raw = [getattr(t, mark.field) for t in targets]
            missing = not raw or any(v is None for v in raw)
            out[name] = None if missing else float(np.mean(np.array(raw, dtype=float)))
    return out
