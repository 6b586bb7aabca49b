"""Stored rows read back as the current row model, whatever schema version wrote them.

`conform` gives a stored table the current columns (what a file lacks is null); `read_row`
turns one of its records into a validated, frozen `TrialRow`, filling what rows of earlier
versions lack the way every reader always read them:
- schema 1 measured no defenses: the evaluated encoder was the undefended one (PA, ASR, hits
  and p(target) undefended are its own) and ran behind no hooks, alone;
- before schema 7, the cell key without the defense and the task names were not written: they
  are computed here from the row's `spec_json` (the one reader that parses it), as `build_row`
  computes them from the spec; nor were the attack's label params and the `designed for`
  column: looked up here in the installed plugins (the one reader that consults them).
Everything else a row lacks stays None, as the models allow for fields added later.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from pe_bench.config.grid import designed_for
from pe_bench.config.spec import defense_free_key
from pe_bench.store.plugin_columns import attack_columns, encoder_label
from pe_bench.store.schema import TrialRow, describe, nest

SAME_AS = {"pa_undefended": "pa", "asr_undefended": "asr", "hit_undefended": "hit", "p_undefended": "p"}
NO_DEFENSE = {"defense_hooks": "", "n_encoders": 1}


def _fill(values: Mapping[str, Any], rules: Mapping[str, Any], copy: bool) -> dict[str, Any]:
    """`values` with each null field of `rules` set: from the field it names (`copy`) or to it."""
    out = dict(values)
    for name, rule in rules.items():
        if name in out and out[name] is None:
            out[name] = out.get(rule) if copy else rule
    return out


def _metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    out = _fill(metrics, SAME_AS, copy=True)
    out["defense"] = _fill(out["defense"], NO_DEFENSE, copy=False)
    out["tasks"] = [{**_fill(t, SAME_AS, copy=True),
                     "targets": [_fill(x, SAME_AS, copy=True) for x in t.get("targets") or ()]}
                    for t in out.get("tasks") or ()]
    return out


def _from_spec(nested: dict[str, Any]) -> dict[str, Any]:
    """The row with the fields schema 7 added computed from its spec where it lacks them."""
    missing = [name for name in ("defense_free_key", "task_names") if nested.get(name) is None]
    if not missing:
        return nested
    spec = json.loads(nested["spec_json"] or "{}")
    computed = {"defense_free_key": defense_free_key(spec),
                "task_names": [t.get("name", "?") for t in spec.get("tasks", [])]}
    return {**nested, **{name: computed[name] for name in missing}}


def _from_plugins(nested: dict[str, Any]) -> dict[str, Any]:
    """Before schema 7 rows did not carry what the report needs of their plugins: looked up
    here, once, in the plugins installed now (the only reader that consults the registry). A
    row written with `designed_for` None (a plugin not resolvable then) is looked up again."""
    filled = dict(nested)
    if nested.get("designed_for") is None:
        params = json.loads(nested["attack_params"] or "{}")
        filled["label_params"] = attack_columns(nested["attack"], params)["label_params"]
        filled["designed_for"] = designed_for(nested["attack"], nested["defense"], nested.get("family"))
    if nested.get("encoder_label") is None:
        filled["encoder_label"] = encoder_label(nested["encoder"], json.loads(nested["encoder_params"] or "{}"))
    return filled


def read_row(record: Mapping[str, Any]) -> TrialRow:
    """One stored record (in the current columns: `conform`) as a validated `TrialRow`; raises
    ValueError (pydantic's ValidationError) naming the field it cannot read."""
    nested = _from_plugins(_from_spec(nest(record)))
    if nested.get("metrics") is not None:
        nested["metrics"] = _metrics(nested["metrics"])
    return TrialRow.model_validate(nested)


def read_rows(table: pa.Table) -> Iterator[TrialRow]:
    """Every row of a conformed table as a `TrialRow`; a row that does not validate is skipped
    with a warning naming it (as a file that cannot be read is)."""
    for record in table.to_pylist():
        try:
            yield read_row(record)
        except ValidationError as exc:
            warnings.warn(f"skipping stored row {record.get('trial_key')} of run {record.get('run_id')}: "
                          f"{describe(exc)}", stacklevel=2)
