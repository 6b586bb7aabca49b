"""The store's row: one validated model per trial, and the Arrow schema derived from it.

`TrialRow` is what a worker builds and what every Parquet file holds. Its columns are its
fields; a field holding a model marked `Flat` (the metrics, the defense report, timings,
provenance) contributes that model's fields as columns of their own, and a tuple of models
(the tasks, their target pairs) is a list of structs. `arrow_type` maps annotations to Arrow
types, so no column is written down twice. Files written by earlier schema versions read
with the columns they lack set to null (`conform`), and their rows as current models
(pe_bench.store.upgrade).
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, Field, ValidationError, model_validator

from pe_bench.store.metrics import Flat, Frozen, TrialMetrics

# 1: first layout; 2: defense metrics; 3: metrics from models, `traceback` of error rows;
# 4: the attack's `family` and a backdoor's triggered-input counts (null in older stores: targeted)
# 5: detection metrics (AUROC / AUPRC, FPR / F1, encoder scores) and CPU / step costs replacing
#    `defense_extra_s` (null in older stores; the old wall-time column is no longer read)
# 6: each task's `trigger_target` (a backdoor's target class; null in older stores)
# 7: `defense_free_key` (the cell without its defense) and `task_names` (computed from `spec_json`
#    on reading older stores), `selection` and `poison_rate` from what the attack declares, and
#    what the report needs of the plugins (`encoder_label`, `label_params`, `designed_for`)
#    written with the row
# 8: `train_precision`, the training step's precision (bf16 / fp32), and a filter's recall at
#    1% / 5% clean FPR (`poison_recall_fpr1`, `_fpr5`), distinct poisons and their share of the
#    target classes (`n_distinct_poisons`, `poison_class_share`), the `training_revision` of the
#    code; null in older stores
SCHEMA_VERSION = "8"
SCALARS: dict[Any, pa.DataType] = {str: pa.string(), int: pa.int64(), float: pa.float64(),
                                   bool: pa.bool_(), datetime: pa.timestamp("us", tz="UTC")}


class Provenance(Frozen):
    """What produced a row: versions and the git commit of the pe-bench checkout (if any);
    `ray_version` is None for an in-process run."""

    pe_bench_version: str | None = Field(default=None, title="pe-bench")
    torch_version: str | None = Field(default=None, title="torch")
    ray_version: str | None = Field(default=None, title="ray")
    python_version: str | None = Field(default=None, title="python")
    git_commit: str | None = Field(default=None, title="git commit")
    # config.spec.TRAINING_REVISION of the code that trained the row's encoders (None: written
    # before schema 8, i.e. at revision 4 or earlier)
    training_revision: int | None = Field(default=None, title="training revision")


class TrialRow(Frozen):
    """One trial's outcome: `ok` with its metrics, or `error` with the reason (one line) and
    the full traceback. Identity fields say which cell and seed it is."""

    suite: str
    run_id: str
    trial_key: str
    cell_key: str
    defense_free_key: str = Field(description="the cell without its defense and seed: what two "
                                  "defense settings are paired within (config.spec.defense_free_key)")
    status: Literal["ok", "error"]
    error: str | None = None
    traceback: str | None = None
    dataset: str
    task_names: tuple[str, ...] = Field(description="the downstream tasks, as the spec names them (what "
                                        "a trial that left no metrics has lines for)")
    seed: int
    encoder: str
    encoder_params: str = Field(description="the encoder's params as canonical JSON")
    attack: str
    attack_params: str
    family: Literal["targeted", "backdoor"] | None = Field(
        default=None, description="the attack's family (None: a store from before families, all targeted)")
    defense: str
    defense_params: str
    selection: str | None = Field(default=None, description="the line's target-selection label, "
                                  "from the params the attack declares (AttackMeta.label_params)")
    poison_rate: float | None = Field(default=None, description="the poison budget, from the param "
                                      "the attack declares (AttackMeta.budget_param)")
    encoder_label: str | None = Field(default=None, description="the encoder's name with the values "
                                      "of the params it declares (EncoderMeta.label_params)")
    label_params: tuple[str, ...] = Field(default=(), description="the attack params its `selection` "
                                          "label shows (AttackMeta.label_params), left out of its name")
    designed_for: Literal["yes", "off-target", "-"] | None = Field(
        default=None, description="whether the defense was designed against the attack's family "
        "(config.grid.off_target); '-' without an attack or a defense; None: not resolvable")
    spec_json: str
    plugin_versions: str | None = Field(
        default=None, description='JSON {kind: {name: "distribution version"}} of the plugins the trial used')
    metrics: Annotated[TrialMetrics | None, Flat()] = None
    time_total_s: float = Field(ge=0.0)
    provenance: Annotated[Provenance, Flat()] = Provenance()
    hostname: str | None = None
    node_id: str | None = Field(default=None, description="the Ray node; None in-process")
    started_at: datetime
    finished_at: datetime

    @model_validator(mode="after")
    def _status_agrees(self) -> Self:
        if self.status == "ok" and (self.metrics is None or self.error is not None):
            raise ValueError("an ok row needs metrics and no error")
        if self.status == "error" and (self.error is None or self.metrics is not None):
            raise ValueError("an error row needs an error and no metrics")
        if self.started_at.tzinfo is None or self.finished_at.tzinfo is None:
            raise ValueError("started_at / finished_at need a time zone")
        return self


@dataclass(frozen=True)
class Leaf:
    """One store column: its name, the attribute path to it in a `TrialRow`, its annotation."""

    column: str
    path: tuple[str, ...]
    annotation: Any


def _flat(metadata: list[Any]) -> Flat | None:
    return next((m for m in metadata if isinstance(m, Flat)), None)


def _strip(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"no single Arrow type for {annotation!r}")
            annotation = args[0]
        else:
            return annotation


def leaves(model: type[BaseModel], template: str = "{}", path: tuple[str, ...] = ()) -> list[Leaf]:
    """The columns of `model`, `Flat` models expanded into their own fields."""
    out = []
    for name, info in model.model_fields.items():
        flat = _flat(info.metadata)
        if flat is None:
            out.append(Leaf(template.format(name), (*path, name), info.annotation))
        else:
            out += leaves(_strip(info.annotation), template.format(flat.template), (*path, name))
    return out


def arrow_type(annotation: Any) -> pa.DataType:
    """Arrow type of a field annotation: scalars, Literals (their values' type), tuples and
    lists (Arrow lists) and models (structs of their columns)."""
    hint = _strip(annotation)
    origin = get_origin(hint)
    if origin is Literal:
        return arrow_type(type(get_args(hint)[0]))
    if origin in (tuple, list):
        return pa.list_(arrow_type(get_args(hint)[0]))
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return pa.struct([pa.field(leaf.column, arrow_type(leaf.annotation)) for leaf in leaves(hint)])
    if hint in SCALARS:
        return SCALARS[hint]
    raise TypeError(f"no Arrow type for {annotation!r}")


LEAVES = leaves(TrialRow)
SCHEMA = pa.schema([pa.field(leaf.column, arrow_type(leaf.annotation)) for leaf in LEAVES])


def flatten(dumped: Mapping[str, Any]) -> dict[str, Any]:
    """A `TrialRow.model_dump()` as one flat record in the store's columns."""
    record = {}
    for leaf in LEAVES:
        value: Any = dumped
        for key in leaf.path:
            value = None if value is None else value[key]
        record[leaf.column] = value
    return record


def _values(nested: Mapping[str, Any]) -> Iterator[Any]:
    for value in nested.values():
        yield from _values(value) if isinstance(value, Mapping) else (value,)


def nest(record: Mapping[str, Any], model: type[BaseModel] = TrialRow,
         template: str = "{}") -> dict[str, Any]:
    """A flat record back into the model's shape (a `Flat` model that may be None and whose
    columns are all null becomes None); what `TrialRow.model_validate` takes."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        flat = _flat(info.metadata)
        if flat is None:
            if template.format(name) in record:
                out[name] = record[template.format(name)]
            continue
        sub = nest(record, _strip(info.annotation), template.format(flat.template))
        optional = type(None) in get_args(info.annotation)
        out[name] = None if optional and all(v is None for v in _values(sub)) else sub
    return out


def parse_row(record: Mapping[str, Any]) -> TrialRow:
    """Validate a flat record (from a worker or the store); raises ValueError naming the field."""
    unknown = sorted(set(record) - set(SCHEMA.names))
    if unknown:
        raise ValueError(f"row has fields outside the schema: {unknown}")
    return TrialRow.model_validate(nest(record))


def describe(exc: ValidationError, limit: int = 3) -> str:
    """A validation error on one line: `Model: field.path: reason (got value)`, a few of them."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(row)"
        got = f" (got {err['input']!r})" if not isinstance(err["input"], Mapping | list | tuple) else ""
        parts.append(f"{where}: {err['msg']}{got}")
    more = f"; and {exc.error_count() - limit} more" if exc.error_count() > limit else ""
    return f"{exc.title}: " + "; ".join(parts) + more


def conform(table: pa.Table) -> pa.Table:
    """A stored table in the current schema: columns added since it was written are null
    (older rows stay readable), nested structs likewise; then a strict cast."""
    columns = []
    for f in SCHEMA:
        if f.name not in table.column_names:
            columns.append(pa.nulls(len(table), f.type))
        else:
            columns.append(_conform_column(table.column(f.name), f.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _conform_column(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    if col.type == target:
        return col
    rows = col.to_pylist()
    return pa.chunked_array([pa.array(rows, type=target)], type=target)
