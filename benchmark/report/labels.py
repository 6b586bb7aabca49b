"""How a table names a plugin's settings: by the params that tell them apart, nothing more.

A suite running one attack at several settings (a poison-rate sweep, a references sweep) gets one
line per setting. Each line's label is the plugin's name with the params that vary among the
table's settings of that plugin; a param one value of which more than half of those settings
hold (the sweeps' shared main value) is shown only on the settings that differ from it, and the
table says once what the others hold (`usual_note`): suites/paper.yaml's five PoisonedEncoder
settings read `poisoned-encoder`, `poisoned-encoder(rate=0.05)`, `poisoned-encoder(refs=1)`, ...
under "poisoned-encoder: canvas=keep, rate=0.1, refs=5, targets=5 where its label names no other
value", instead of four params on every column. With no such majority (two settings, or a sweep
of distinct values) every setting names the param.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

SHORT = {"poison_rate": "rate", "references": "refs", "targets_per_task": "targets"}

Setting = tuple[str, str]  # a plugin's name, its params as JSON


def label_params(declared: Iterable[tuple[str, tuple[str, ...]]]) -> Callable[[str], tuple[str, ...]]:
    """The params each attack labels its lines' target selection by, as its rows carry them
    (`TrialRow.label_params`, from `AttackMeta.label_params`: the `targets` column shows them,
    so its name on the board leaves them out), from (attack, label params) pairs."""
    found = dict(declared)
    return lambda name: found.get(name, ())


Group = tuple[list[Setting], Callable[[str], Collection[str]]]  # settings, the params labels leave out


def settings_of(items: Sequence[Any], kinds: Sequence[str] = ("attack", "defense")) -> tuple[Group, ...]:
    """Per plugin kind, the settings of `items` (board lines or stored rows: each carries `<kind>`
    and `<kind>_params`), with the params its labels leave out: an attack's target-selection
    params (`label_params`: the tables show them in their own column), nothing of the others."""
    hidden = label_params((x.attack, x.label_params) for x in items)
    return tuple(([(getattr(x, kind), getattr(x, f"{kind}_params")) for x in items],
                  hidden if kind == "attack" else lambda _: ()) for kind in kinds)


def _usual(settings: Sequence[Setting], hidden: Callable[[str], Collection[str]]
           ) -> dict[str, dict[str, str | None]]:
    """Per plugin name, each param that varies among its distinct settings (not `hidden`): the
    JSON of the value more than half of them hold, or None when no value does."""
    distinct: dict[str, list[dict[str, Any]]] = {}
    for name, params in dict.fromkeys(settings):
        distinct.setdefault(name, []).append(json.loads(params or "{}"))
    out: dict[str, dict[str, str | None]] = {}
    for name, found in distinct.items():
        keys = sorted({k for p in found for k in p} - set(hidden(name)))
        out[name] = {}
        for key in keys:
            values = [json.dumps(p.get(key), sort_keys=True) for p in found]
            value, n = Counter(values).most_common(1)[0]
            if len(set(values)) > 1:
                out[name][key] = value if 2 * n > len(values) else None
    return out


def _shown(key: str, value: Any) -> str:
    return f"{SHORT.get(key, key)}={value}"


def varying(settings: Sequence[Setting], hidden: Callable[[str], Collection[str]] = lambda _: ()
            ) -> list[str]:
    """Each setting named with the params that tell it apart from the other settings of the same
    plugin (e.g. a poison-rate sweep: `poisoned-encoder(rate=0.05)`), a param most of them share
    shown only where it differs (`usual_note` says what it is), leaving out the params
    `hidden(name)` shows elsewhere."""
    usual = _usual(settings, hidden)
    labels = []
    for name, params in settings:
        mine = json.loads(params or "{}")
        keys = [k for k, value in usual[name].items()
                if k in mine and json.dumps(mine[k], sort_keys=True) != value]
        shown = ", ".join(_shown(k, mine[k]) for k in keys)
        labels.append(f"{name}({shown})" if shown else name)
    return labels


def usual_note(*groups: Group) -> str:
    """What the labels `varying` gives each group (its settings, its hidden params) leave out:
    per plugin, the values most of its settings share ("" when every label names all its
    varying params)."""
    parts = []
    for settings, hidden in groups:
        for name, usual in _usual(settings, hidden).items():
            shared = [_shown(k, json.loads(v)) for k, v in usual.items() if v is not None]
            if shared:
                parts.append(f"{name}: {', '.join(shared)} where its label names no other value")
    return "settings: " + "; ".join(parts) if parts else ""
