"""`--set KEY.PATH=VALUE`: changes to a suite's YAML data before it is validated.

`train.epochs=1`, `datasets.0.pretrain.max_images=200` (list items by index), `seeds=[0]`
(VALUE is YAML, so a whole subtree can be replaced). The changed data is validated exactly
like the suite file; an error at or under a changed key is reported as `--set KEY.PATH`, so
the user sees which of their overrides is wrong, not a key the file never had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from pe_bench.errors import SuiteError


@dataclass(frozen=True)
class Override:
    """One parsed `--set`: the key path as typed, its parts, and the YAML value."""

    text: str  # KEY.PATH as the user typed it
    parts: tuple[str, ...]
    value: Any

    @property
    def key(self) -> str:
        """The key path as suite errors name it: `datasets[0].pretrain.max_images`."""
        return "".join(f"[{p}]" if p.isdigit() else (f".{p}" if i else p) for i, p in enumerate(self.parts))

    def covers(self, key: str) -> bool:
        """Whether an error at `key` (a suite error's key path) lies at or under this override."""
        return key == self.key or key.startswith((f"{self.key}.", f"{self.key}["))


def parse_override(item: str, file: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Override:
    """`KEY.PATH=VALUE` -> Override; a malformed item is a SuiteError naming it."""
    text, sep, raw = item.partition("=")
    text = text.strip()
    parts = tuple(text.split("."))
    if not sep or not text or not all(parts):
        raise SuiteError(file, f"--set {item}", "expected KEY.PATH=VALUE, e.g. train.epochs=1")
    try:
        value = yaml.load(raw, Loader=loader) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SuiteError(file, f"--set {text}", f"invalid YAML value {raw!r}: {problem}") from None
    return Override(text, parts, value)


def unshared(data: Any) -> Any:
    """A copy in which no two places share an object: YAML anchors (`tasks: *tasks`) load as
    one list seen from two keys, and an override of one place must not change the other."""
    if isinstance(data, dict):
        return {k: unshared(v) for k, v in data.items()}
    if isinstance(data, list):
        return [unshared(v) for v in data]
    return data


def _child(node: Any, part: str, override: Override, file: str, at: str) -> Any:
    """The container one step down `override`'s path, created (as a mapping) where absent."""
    if isinstance(node, list):
        return node[_index(node, part, override, file, at)]
    if not isinstance(node, dict):
        raise SuiteError(file, f"--set {override.text}", f"{at} is {type(node).__name__} {node!r}, "
                         "not a mapping or a list")
    if node.get(part) is None:  # absent, or `train:` left empty in the file
        node[part] = {}
    return node[part]


def _index(items: list[Any], part: str, override: Override, file: str, at: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    n = len(items)
    where = f"address its {n} item{'s' if n > 1 else ''} by index 0..{n - 1}" if n else "it is empty"
    raise SuiteError(file, f"--set {override.text}", f"{at} has no item {part!r}: {where}")


def apply_override(data: dict[str, Any], override: Override, file: str) -> None:
    """Set `override.value` at its path in `data` (in place)."""
    node: Any = data
    for depth, part in enumerate(override.parts[:-1]):
        node = _child(node, part, override, file, ".".join(override.parts[:depth]) or "the suite")
    last, at = override.parts[-1], ".".join(override.parts[:-1]) or "the suite"
    if isinstance(node, list):
        node[_index(node, last, override, file, at)] = override.value
    elif isinstance(node, dict):
        node[last] = override.value
    else:
        raise SuiteError(file, f"--set {override.text}", f"{at} is {type(node).__name__} {node!r}, "
                         "not a mapping or a list")


def with_overrides(data: dict[str, Any], items: Sequence[str], file: str,
                   loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> tuple[dict[str, Any], list[Override]]:
    """`data` with every `--set` applied in order (a fresh copy), and the parsed overrides."""
    overrides = [parse_override(item, file, loader) for item in items]
    changed = unshared(data) if overrides else data
    for override in overrides:
        apply_override(changed, override, file)
    return changed, overrides


def attributed(error: SuiteError, overrides: Sequence[Override]) -> SuiteError:
    """`error` named after the override that set its key (the longest that covers it), if any."""
    matching = [o for o in overrides if o.covers(error.key)]
    if not matching:
        return error
    override = max(matching, key=lambda o: len(o.parts))
    return SuiteError(error.file, f"--set {override.text}", error.message)
