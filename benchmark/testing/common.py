"""Checks shared by every plugin kind: its parameters and what the registry knows about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from pe_bench.plugins.registry import REGISTRIES


def fail(cls: Any, rule: str) -> AssertionError:
    return AssertionError(f"{getattr(cls, '__name__', cls)}: {rule}")


def check_params(cls: Any, base: type, params_base: type[BaseModel], *valid: dict[str, Any]) -> None:
    """`cls` subclasses `base`; its Params subclass `params_base`, reject unknown keys, and
    accept each of `valid` (e.g. the defaults and the contract params)."""
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise AssertionError(f"{cls!r} is not a {base.__module__}.{base.__qualname__} subclass")
    cls = cast(Any, cls)  # a plugin class of its kind: it has Params
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, params_base)):
        raise fail(cls, f"Params must subclass {params_base.__module__}.{params_base.__qualname__}")
    try:
        cls.Params.model_validate({"__no_such_param__": 1})
    except ValidationError:
        pass
    else:
        raise fail(cls, "Params must reject unknown keys (extra='forbid')")
    for params in valid:
        try:
            cls.Params.model_validate(params)
        except ValidationError as exc:
            raise fail(cls, f"Params must validate {params or 'the defaults'}: {exc}") from exc


def check_registered(kind: str, name: str) -> dict[str, Any]:
    """What the registry knows about `name` matches the plugin itself: the name resolves to a
    plugin class of its kind with valid metadata; the metadata read without importing it (a
    built-in's decorator) equals the class's; a built-in lives in the file named after it."""
    registry = REGISTRIES[kind]
    problem = registry.check(name)
    if problem is not None:
        raise AssertionError(problem)
    info, declared = registry.info(name), registry.declared(name)
    cls = registry.get(name)
    meta = registry.metadata(name)
    if declared is not None and declared != meta:
        raise fail(cls, f"metadata declared in its decorator ({declared}) differs from the class's ({meta})")
    if info.builtin and Path(info.target.replace(".", "/")).name != name.replace("-", "_"):
        raise fail(cls, f"built-in {kind[:-1]} {name!r} must live in a module named "
                        f"{name.replace('-', '_')!r}, not {info.target!r}")
    return {"provenance": registry.provenance(name), "metadata": meta}
