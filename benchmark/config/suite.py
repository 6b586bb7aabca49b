"""Suite files (`suites/*.yaml`): pydantic models, loading, and one-line error reporting.

Validation happens once, here, at the edge: structure (unknown keys and wrong types are errors),
then every plugin name against its registry and its params against the plugin's own `Params`.
Every failure becomes a `SuiteError` naming the file and the offending key path.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator

from pe_bench.errors import PeBenchError, SuiteError
from pe_bench.config.comparisons import Family, check
from pe_bench.config.overrides import attributed, with_overrides
from pe_bench.plugins.registry import ATTACKS, DATASETS, DEFENSES, ENCODERS, Registry
from pe_bench.config.spec import (
    EvalSpec,
    Frozen,
    PluginRef,
    PretrainSpec,
    Resources,
    TaskSpec,
    TrainSpec,
    resolve_recipe,
)


def _unique(seeds: tuple[int, ...]) -> tuple[int, ...]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be unique")
    return seeds


Seeds = Annotated[tuple[int, ...], AfterValidator(_unique)]  # a suite's, or one dataset setting's


class DatasetSetting(Frozen):
    """One value of the dataset axis: a pre-training set, its downstream tasks, and any
    changes to the suite's training recipe that this setting needs. `seeds` replaces the
    suite's seeds for this setting alone (a cheap setting can afford the seeds an exact test
    over seeds needs; an expensive one fewer)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    pretrain: PretrainSpec
    tasks: tuple[TaskSpec, ...] = Field(min_length=1)
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: Seeds | None = Field(None, min_length=1)


class ExcludeRule(Frozen):
    """Cells matching every given field are not run; `reason` is shown by `validate`.
    `attack_params`: the attack's params must hold these values (e.g. one budget of an attack
    the suite runs at several)."""

    dataset: str | None = None
    encoder: str | None = None
    attack: str | None = None
    attack_params: dict[str, Any] | None = None
    defense: str | None = None
    reason: str = "excluded by the suite"


class Suite(Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seeds: Seeds = Field(min_length=1)
    resources: Resources = Resources()
    max_concurrent: int = Field(1, ge=1, le=10_000)
    plugins: tuple[str, ...] = ()
    train: TrainSpec = TrainSpec()
    evaluation: EvalSpec = EvalSpec()
    datasets: tuple[DatasetSetting, ...] = Field(min_length=1)
    encoders: tuple[PluginRef, ...] = Field(min_length=1)
    attacks: tuple[PluginRef, ...] = Field(min_length=1)
    defenses: tuple[PluginRef, ...] = (PluginRef(name="none"),)
    exclude: tuple[ExcludeRule, ...] = ()
    comparisons: tuple[Family, ...] = ()  # pe_bench.config.comparisons; none: its DEFAULT
    # suites (paths beside this file) testing its comparisons at more seeds: pe_bench.config.evidence
    evidence: tuple[Annotated[str, Field(min_length=1)], ...] = ()

    @field_validator("datasets")
    @classmethod
    def _unique_dataset_names(cls, settings: tuple[DatasetSetting, ...]) -> tuple[DatasetSetting, ...]:
        names = [d.name for d in settings]
        if len(set(names)) != len(names):
            raise ValueError("dataset setting names must be unique")
        return settings

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> Suite:
        return load_suite(path, overrides)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _from_validation(file: str, exc: ValidationError, prefix: str = "") -> SuiteError:
    errors = exc.errors()
    first = errors[0]
    key = _key_path(tuple(first["loc"]))
    key = f"{prefix}.{key}" if prefix and key else (prefix or key)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    item = first["type"] == "missing" and bool(first["loc"]) and isinstance(first["loc"][-1], int)
    if item:  # a list shorter than its type: the input is the list
        message = "too few items"
    shown = f" (got {_got(first.get('input'))})" if first["type"] != "missing" or item else ""
    return SuiteError(file, key, f"{message}{shown}{more}")


def _got(value: Any, limit: int = 60) -> str:
    """The rejected value as the suite gave it (YAML has lists, not tuples), shortened to stay
    one readable line."""
    text = repr(_as_lists(value))
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _as_lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return {k: _as_lists(v) for k, v in value.items()} if isinstance(value, dict) else value


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error, not a
    silent override."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(file, "", "no such suite file") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(file, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise SuiteError(file, "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SuiteError(file, "", f"invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise SuiteError(file, "", "a suite must be a YAML mapping of keys to values")
    return data


def load_suite(path: str | Path, overrides: Sequence[str] = ()) -> Suite:
    """Read, apply `--set` overrides (pe_bench.config.overrides), validate structurally, then
    validate plugins and their params; an error under an override names the override."""
    file = str(path)
    data, parsed = with_overrides(read_yaml(path), overrides, file, _StrictLoader)
    try:
        return _validated_suite(data, file)
    except SuiteError as exc:
        raise attributed(exc, parsed) from None


def _validated_suite(data: dict[str, Any], file: str) -> Suite:
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(file, exc) from None
    import_plugin_modules(suite.plugins, file)
    return resolve_plugins(suite, file)


def import_plugin_modules(modules: tuple[str, ...], file: str = "") -> None:
    """Import unpackaged plugin modules so their decorators register them (driver and worker)."""
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except PeBenchError as exc:
            raise SuiteError(file, f"plugins[{i}]", str(exc)) from None
        except Exception as exc:  # any import failure of user code, reported on one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SuiteError(file, f"plugins[{i}]", f"cannot import {module!r}: {first}") from None


def _validated(registry: Registry[Any, Any], ref: PluginRef, file: str, key: str) -> PluginRef:
    try:
        model = registry.params_model(ref.name)
    except PeBenchError as exc:
        raise SuiteError(file, f"{key}.name", str(exc)) from None
    try:
        params = model.model_validate(ref.params)
    except ValidationError as exc:
        raise _from_validation(file, exc, prefix=f"{key}.params") from None
    return PluginRef(name=ref.name, params=params.model_dump(mode="json"))


def _validated_setting(setting: DatasetSetting, i: int, file: str, suite: Suite) -> DatasetSetting:
    key = f"datasets[{i}]"
    try:
        resolve_recipe(suite.train, setting.train, {})
    except ValidationError as exc:
        raise _from_validation(file, exc, prefix=f"{key}.train") from None
    also = tuple(_validated(DATASETS, r, file, f"{key}.pretrain.also[{j}]")
                 for j, r in enumerate(setting.pretrain.also))
    pre = setting.pretrain.model_copy(update={
        "dataset": _validated(DATASETS, setting.pretrain.dataset, file, f"{key}.pretrain.dataset"),
        "also": also})
    tasks = tuple(
        t.model_copy(update={"dataset": _validated(DATASETS, t.dataset, file, f"{key}.tasks[{j}].dataset")})
        for j, t in enumerate(setting.tasks)
    )
    if len({t.name for t in tasks}) != len(tasks):
        raise SuiteError(file, f"{key}.tasks", "task names must be unique")
    return setting.model_copy(update={"pretrain": pre, "tasks": tasks})


def resolve_plugins(suite: Suite, file: str) -> Suite:
    """Check every plugin name and fill in its params' defaults, so trial keys are canonical."""
    axes: dict[str, Any] = {}
    for field, registry in (("encoders", ENCODERS), ("attacks", ATTACKS), ("defenses", DEFENSES)):
        refs = tuple(_validated(registry, r, file, f"{field}[{i}]")
                     for i, r in enumerate(getattr(suite, field)))
        labels = [f"{r.name}{r.params}" for r in refs]
        if len(set(labels)) != len(labels):
            raise SuiteError(file, field, "the same plugin with the same params is listed twice")
        axes[field] = refs
    axes["datasets"] = tuple(_validated_setting(s, i, file, suite) for i, s in enumerate(suite.datasets))
    for i, rule in enumerate(suite.exclude):
        names = {axis.removesuffix("s"): [v.name for v in values] for axis, values in axes.items()}
        _check_exclude(rule, f"exclude[{i}]", names, file)
    problem = check(suite.comparisons, {axis: tuple((v.name, getattr(v, "params", {})) for v in values)
                                        for axis, values in axes.items()})
    if problem:
        raise SuiteError(file, *problem)
    return suite.model_copy(update=axes)


def _check_exclude(rule: ExcludeRule, key: str, axes: dict[str, list[str]], file: str) -> None:
    """A rule naming something the suite does not list would silently match nothing."""
    for field, names in axes.items():
        value = getattr(rule, field)
        if value is not None and value not in names:
            close = difflib.get_close_matches(value, names, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SuiteError(file, f"{key}.{field}", f"{value!r} matches no {field} of this suite{hint} "
                             f"({field}s: {', '.join(names)})")
