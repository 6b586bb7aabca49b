"""The plugin machinery every kind shares: registries, the torch-free index of built-ins and entry points, shared plugin types."""

from typing import Any


def __getattr__(name: str) -> Any:
    """0.1's `pe_bench.plugins` module held the plugin bases: its names still resolve (with a
    DeprecationWarning naming their new module) until 0.2."""
    from pe_bench import _moved

    return _moved.old_plugins_name(name)
