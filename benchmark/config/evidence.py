"""Where a suite's comparisons are tested at more seeds: the suites its `evidence` names.

A small suite (the demo's 3 seeds) cannot support any comparison: an exact test over n seeds
cannot go below p = 2/2^n (pe_bench.report.stats). Its `evidence:` names suites, by path
relative to its own file, that run the same cells at more seeds and declare the same comparison
in one of their families, so the board of the small suite can end by saying which suite tests
what it shows. "The same cell" is the same `cell_key` (data, tasks, encoder, attack and defense
with their params, training recipe, evaluation: everything but the seed and the suite's name);
"the same comparison" is one declared family's test covering that cell in both suites
(pe_bench.config.comparisons). A named suite that tests none of them at more seeds is an error:
the pointer would mislead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pe_bench.config.comparisons import ALPHA, Family, declared, holm_floor
from pe_bench.config.grid import Grid, expand
from pe_bench.config.spec import TrialSpec
from pe_bench.config.suite import Suite, load_suite
from pe_bench.errors import PeBenchError, SuiteError


@dataclass(frozen=True)
class Comparison:
    """One declared comparison of a suite: a family's test on one cell."""

    family: Family  # the declared family (or default) whose test it is
    spec: TrialSpec  # the cell at one of its seeds
    seeds: int

    @property
    def test(self) -> str:
        return self.family.test

    @property
    def versus(self) -> str | None:
        return self.family.versus

    @property
    def label(self) -> str:
        s = self.spec
        what = {"vs-twin": f"{s.attack.name} vs its clean twin",
                "p-vs-twin": f"{s.attack.name}'s p(target) vs its clean twin",
                "pa-vs-twin": f"{s.attack.name}'s PA vs its clean twin",
                "vs-none": f"{s.defense.name} vs no defense under {s.attack.name}",
                "pa-vs-none": f"{s.defense.name}'s PA vs no defense under {s.attack.name}",
                "versus": f"{s.attack.name} vs {self.versus}"}[self.test]
        return f"{what} ({s.dataset}, {s.encoder.name})"


@dataclass(frozen=True)
class Tested:
    """A comparison of the small suite, tested in a named suite's family at more seeds."""

    comparison: Comparison
    suite: str  # the evidence suite's file name, as the small suite names it
    family: str
    seeds: int
    family_size: int = 1  # comparisons of that family there (a line per task: at least this many)

    @property
    def floor(self) -> float:
        """The smallest adjusted p the named suite's family can give it (Holm over its size)."""
        return holm_floor(self.family_size, self.seeds)

    @property
    def described(self) -> str:
        where = f"{self.comparison.label} in {self.suite} ({self.family}, {self.seeds} seeds"
        if self.floor < ALPHA:
            return where + ")"
        size = f"{self.family_size} comparison{'s' * (self.family_size != 1)}"
        return f"{where}; but {size} there: Holm cannot go below {self.floor:.3g}, so it cannot be supported there either)"


def comparisons(suite: Suite, grid: Grid) -> list[Comparison]:
    """Every comparison the suite's declared families (or the defaults) hold in its grid, one
    per cell and test (defense pairs are not matched: they compare two cells)."""
    seeds: dict[str, set[int]] = {}
    first: dict[str, TrialSpec] = {}
    for t in grid.trials:
        seeds.setdefault(t.cell_key, set()).add(t.seed)
        first.setdefault(t.cell_key, t)
    out = []
    for f in declared(suite.comparisons):
        if f.test == "defense-pair":
            continue
        for key, t in first.items():
            if _covers(f, t):
                out.append(Comparison(f, t, len(seeds[key])))
    return out


def _covers(f: Family, t: TrialSpec) -> bool:
    return f.covers(t.dataset, t.encoder.name, t.attack.name, t.defense.name, f.versus or "",
                    attack_params=t.attack.params, defense_params=t.defense.params)


def find(path: str | Path, suite: Suite, grid: Grid, strict: bool = True) -> list[Tested]:
    """The suite's comparisons that its `evidence` suites test at more seeds, in declaration
    order. Raises SuiteError (key `evidence[i]`) for a named suite that cannot be read or, when
    `strict` (the suite as written, no `--set` overrides, which may change its cells), that
    tests none of them at more seeds."""
    own = comparisons(suite, grid)
    found: list[Tested] = []
    for i, name in enumerate(suite.evidence):
        key = f"evidence[{i}]"
        other_path = Path(path).parent / name
        try:
            other = load_suite(other_path)
            other_grid = expand(other)
        except PeBenchError as exc:
            raise SuiteError(str(path), key, f"cannot read {name}: {exc}") from None
        all_theirs = comparisons(other, other_grid)
        theirs = {(c.test, c.versus, c.spec.cell_key): c for c in all_theirs}
        hits = []
        for c in own:
            match = theirs.get((c.test, c.versus, c.spec.cell_key))
            if match is not None and match.seeds > c.seeds:
                size = sum(len(t.spec.tasks) for t in all_theirs if t.family == match.family)
                hits.append(Tested(c, name, match.family.family, match.seeds, size))
        if not hits and strict:
            raise SuiteError(str(path), key, f"{name} tests none of this suite's declared comparisons at "
                             "more seeds (same cell: data, encoder, attack, defense, training, evaluation)")
        found.extend(hits)
    return found


def closing_line(suite: Suite, grid: Grid, tested: list[Tested]) -> str:
    """Which named suite tests each of the suite's comparisons at more seeds, and which none does
    ("" for a suite that names none)."""
    if not suite.evidence:
        return ""
    done = [t.comparison for t in tested]
    untested = [c.label for c in comparisons(suite, grid) if c not in done]
    parts = [t.described for t in tested]
    if untested:
        parts.append(f"by none of the suites named ({', '.join(suite.evidence)}): {'; '.join(untested)}")
    return "tested at more seeds: " + "; ".join(parts)
