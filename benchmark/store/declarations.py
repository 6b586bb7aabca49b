"""Each suite's declared comparisons, recorded in the store when it is first run.

`<store>/_declarations/<suite>.json` holds the families the suite's verdicts are corrected over
(pe_bench.config.comparisons), when they were recorded and how many of the suite's trials already
had results then (0: declared before the run). A later run whose suite declares other families
is refused with one line, unless `--redeclare` is given; the record then keeps every earlier
declaration and the board says the comparisons changed after results existed. A store without a
record (rows from before declarations) is read with the default families, and the board says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pe_bench.config.comparisons import ALPHA, DEFAULT, Family, closed, declared, holm_floor
from pe_bench.errors import PeBenchError

# the report reads families (and the level its verdicts use) from here
__all__ = ["ALPHA", "DEFAULT", "Declaration", "Family", "closed", "holm_floor", "read", "record"]
FOLDER = "_declarations"


@dataclass(frozen=True)
class Declaration:
    """The families a suite's board corrects over, and how they came to be recorded."""

    families: tuple[Family, ...]
    recorded: bool  # False: no record in the store (the default families are read)
    defaults: bool  # the suite declared no families: DEFAULT
    results_before: int = 0  # the suite's result rows in the store when the families were recorded
    changes: int = 0  # earlier declarations replaced with --redeclare
    evidence: str = ""  # which suites test its comparisons at more seeds, as its last run found
    description: str = ""  # the suite's one-line description, as its last run had it

    def note(self) -> str:
        """One sentence on where the board's families come from."""
        what = "default families" if self.defaults else "declared families"
        names = ", ".join(f.family for f in self.families)
        if not self.recorded:
            return f"comparisons: {what} ({names}); not recorded in the store (rows from before declarations)"
        when = ("before the run" if not self.results_before
                else f"after {self.results_before} result rows existed")
        changed = f"; re-declared {self.changes} time(s) after results existed" if self.changes else ""
        return f"comparisons: {what} ({names}), recorded {when}{changed}"


def _path(store: Path, suite: str) -> Path:
    return Path(store) / FOLDER / f"{suite}.json"


def _payload(families: tuple[Family, ...]) -> list[dict[str, Any]]:
    """The families as recorded; a record written before a field existed reads as its default
    (so it compares equal to the same declaration today)."""
    return [f.model_dump(mode="json") for f in families]


def read(store: str | Path, suite: str) -> Declaration:
    """The suite's recorded declaration, or the default families (unrecorded) without one."""
    path = _path(Path(store), suite)
    if not path.exists():
        return Declaration(DEFAULT, recorded=False, defaults=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        families = tuple(Family.model_validate(f) for f in data["families"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PeBenchError(f"{path}: unreadable comparisons record ({exc})") from None
    return Declaration(declared(families), True, not families, int(data.get("results_before", 0)),
                       len(data.get("history", [])), str(data.get("evidence", "")),
                       str(data.get("description", "")))


def record(store: str | Path, suite: str, families: tuple[Family, ...], redeclare: bool = False,
           evidence: str = "", description: str = "") -> Declaration:
    """Record the suite's families (as declared: empty means the defaults) unless the same are
    recorded, with the count of the suite's result rows already in the store; other families
    already recorded are refused unless `redeclare`. `evidence` (the line naming the suites that
    test its comparisons at more seeds: pe_bench.config.evidence) is kept as the latest run
    found it, and so is the suite's `description`: neither changes a family, so a new one is no
    re-declaration."""
    path = _path(Path(store), suite)
    results_before = sum(1 for _ in (Path(store) / f"suite={suite}").glob("run=*/*.parquet"))
    new = _payload(families)
    history: list[dict[str, Any]] = []
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        if _payload(tuple(Family.model_validate(f) for f in data.get("families", []))) == new:
            shown = {"evidence": evidence, "description": description}
            if any(data.get(k, "") != v for k, v in shown.items()):
                _write(path, {**data, **shown})
            return read(store, suite)
        if not redeclare:
            raise PeBenchError(
                f"comparisons: suite {suite!r} declares other families than those recorded in "
                f"{path} when its results began; run it into a new store, or pass --redeclare (the "
                "board then says the comparisons changed after results existed)")
        history = [*data.get("history", []), {k: data[k] for k in ("families", "recorded_at",
                                                                     "results_before") if k in data}]
    _write(path, {"suite": suite, "families": new, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "results_before": results_before, "history": history, "evidence": evidence,
                  "description": description})
    return read(store, suite)


def _write(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
