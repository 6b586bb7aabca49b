"""The built-in engines by name (`--engine ray|in-process`): each module is imported only when
chosen, so choosing one imports neither torch nor Ray."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from pe_bench.engines.base import Engine
from pe_bench.errors import PeBenchError


def _ray(address: str | None) -> Engine:
    from pe_bench.engines.ray_tune import RayEngine

    return RayEngine(address)


def _in_process(address: str | None) -> Engine:
    if address:
        raise PeBenchError("--in-process runs without Ray: it cannot be combined with --address")
    from pe_bench.engines.in_process import InProcessEngine

    return InProcessEngine()


# the built-in engines by the name `--engine` takes; each factory gets the `--address`
ENGINES: Mapping[str, Callable[[str | None], Engine]] = MappingProxyType(
    {"ray": _ray, "in-process": _in_process})


def engine_named(name: str, address: str | None = None) -> Engine:
    """The built-in engine `name`, ready to run (its module imported only now)."""
    factory = ENGINES.get(name)
    if factory is None:
        raise PeBenchError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return factory(address)
