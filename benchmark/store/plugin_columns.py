"""What a row says about its plugins, from the metadata they declare (never from a param the
store knows by name): the encoder's board name, the attack's target-selection label, label
params and budget. Written by `results.build_row`; computed the same way by `upgrade` for rows
of stores written before these columns existed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pe_bench.errors import PeBenchError
from pe_bench.plugins.registry import ATTACKS, ENCODERS
from pe_bench.plugins.types import AttackMeta


def line_label(meta: AttackMeta, params: Mapping[str, Any]) -> str | None:
    """The `targets` label of an attack's rows with `params`: its label params' values joined
    by `+`, then the marks of its marked params' values (None: it declares no label, or the
    params lack the first label param)."""
    values = [params.get(name) for name in meta.label_params]
    if not values or not values[0]:
        return None
    marks = (marks.get(str(params.get(name)), "") for name, marks in meta.label_marks.items())
    return "+".join(str(v) for v in values if v) + "".join(marks)


def encoder_label(name: str, params: Mapping[str, Any]) -> str:
    """The encoder as the board names it: its name, then `/` and the values of the params it
    declares as labels (`EncoderMeta.label_params`; `simclr/small-cnn`); the bare name where it
    declares none or cannot be resolved here."""
    try:
        shown = [str(params[k]) for k in ENCODERS.metadata(name).label_params if params.get(k)]
    except PeBenchError:
        shown = []
    return "/".join([name, *shown])


def attack_columns(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The row's columns about its attack that the attack itself declares (`AttackMeta`): its
    target-selection label and poison budget (None where it declares none, or where it cannot
    be resolved, e.g. an error row of a plugin that failed to load)."""
    try:
        meta = ATTACKS.metadata(name)
    except PeBenchError:
        return {"selection": None, "poison_rate": None, "label_params": ()}
    budget = params.get(meta.budget_param) if meta.budget_param else None
    return {"selection": line_label(meta, params), "label_params": meta.label_params,
            "poison_rate": float(budget) if isinstance(budget, int | float) else None}
