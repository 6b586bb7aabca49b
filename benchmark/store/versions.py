"""Plugin versions across stored rows: which stored trials a plugin's new version makes stale,
and which plugins a set of rows mixes versions of. Each row records `{kind: {name: "distribution
version"}}` of the plugins its trial used (`TrialRow.plugin_versions`, written by the trial)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping

Versions = Mapping[str, Mapping[str, str]]  # {kind: {name: "distribution version"}}


def parse(recorded: str | None) -> dict[str, dict[str, str]]:
    """A row's recorded versions (empty for rows written before versions were recorded)."""
    return json.loads(recorded) if recorded else {}


def changed(recorded: str | None, current: Versions) -> list[str]:
    """`kind/name: old -> new` for each plugin whose version now differs from what a stored row
    recorded (a row recording none counts as unchanged: nothing to compare)."""
    stored = parse(recorded)
    return [f"{kind}/{name}: {stored[kind][name]} -> {now}" for kind, names in sorted(current.items())
            for name, now in sorted(names.items())
            if name in stored.get(kind, {}) and stored[kind][name] != now]


def mixed(recorded: Iterable[str | None]) -> list[str]:
    """`kind/name: a (n rows), b (m rows)` for each plugin the rows record in several versions."""
    seen: dict[tuple[str, str], Counter[str]] = {}
    for versions in map(parse, recorded):
        for kind, names in versions.items():
            for name, version in names.items():
                seen.setdefault((kind, name), Counter())[version] += 1
    return [f"{kind}/{name}: " + ", ".join(f"{v} ({n} rows)" for v, n in sorted(counts.items()))
            for (kind, name), counts in sorted(seen.items()) if len(counts) > 1]
