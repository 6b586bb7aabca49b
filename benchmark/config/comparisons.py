"""The comparisons a suite is run to test, declared before the run and grouped into families.

A board's verdicts (supported / n.s.) are Holm-adjusted within a family, so a comparison carries
the same adjusted p wherever the suite's rows are shown: the family is fixed by the declaration,
never by which lines a table happens to hold. What no family covers is shown as exploratory,
with its unadjusted p, and is never labelled supported. One family per question, as in
clinical-trial reporting (one primary family per question; Holm, Scand. J. Statist. 1979).

A suite declares them under `comparisons:`; a suite that declares none gets `DEFAULT`: each
attack vs its clean twin, and each defense vs no defense under each attack. Each entry names a
`test` (one of `TESTS`) and may narrow the lines it covers by attack, defense, dataset and
encoder names; `defense-pair` names its pairs of defenses. A comparison zero by construction
(a `none` defense or a detector against no defense; a line without an attack against its
twin) carries no interval and is never counted in a family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from pe_bench.config.spec import Frozen

ALPHA = 0.05  # the level of every verdict (pe_bench.report.stats tests at it)


def holm_floor(m: int, seeds: int) -> float:
    """The smallest adjusted p Holm can give a family of `m` comparisons each tested exactly over
    `seeds` seeds (pe_bench.report.stats): m · 2/2^seeds, its first step at the best p. At or
    above ALPHA the family can support none of them, however large their effects."""
    return m * 2.0 ** (1 - seeds)


def closed(m: int, seeds: int) -> str:
    """"Holm cannot go below m × 2/2^n = floor" for a family too large for its seeds, else ""."""
    if not (seeds and m and holm_floor(m, seeds) >= ALPHA):
        return ""
    return f"Holm cannot go below {m} × {holm_floor(1, seeds):.3g} = {holm_floor(m, seeds):.3g}"


Test = Literal["vs-twin", "p-vs-twin", "pa-vs-twin", "vs-none", "pa-vs-none", "versus", "defense-pair"]


@dataclass(frozen=True)
class TestKind:
    column: str  # the board column whose interval it is (defense-pair: the pair table's)
    what: str  # what one comparison is, for `validate`
    undefended: bool  # True: lines without a defense only; False: defended lines only


TESTS: dict[str, TestKind] = {
    "vs-twin": TestKind("delta_asr", "ΔASR of an attacked encoder vs its clean twin", True),
    "p-vs-twin": TestKind("delta_p", "Δp(target) of an attacked encoder vs its clean twin", True),
    "pa-vs-twin": TestKind("delta_pa", "ΔPA of an attacked encoder vs its clean twin", True),
    "vs-none": TestKind("delta_asr_defense", "ΔASR of a defense vs no defense under an attack", False),
    "pa-vs-none": TestKind("delta_pa_defense", "ΔPA of a defense vs no defense under an attack", False),
    "versus": TestKind("delta_asr_versus", "ΔASR of an attack vs the `versus` attack", True),
    "defense-pair": TestKind("delta_asr_pair", "ΔASR of one defense vs another under an attack", False),
}


class Family(Frozen):
    """One family: the comparisons of one `test` over the lines its filters select (an empty
    filter selects every line the test applies to)."""

    family: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    test: Test
    attacks: tuple[str, ...] = ()
    defenses: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    encoders: tuple[str, ...] = ()
    versus: str | None = None  # the `versus` test's reference attack
    pairs: tuple[tuple[str, str], ...] = ()  # the `defense-pair` test's pairs (defense names)

    @field_validator("pairs")
    @classmethod
    def _distinct(cls, pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        for a, b in pairs:
            if a == b or "none" in (a, b):
                raise ValueError(f"a pair names two different defenses, neither `none` (got {[a, b]})")
        return pairs

    @property
    def column(self) -> str:
        return TESTS[self.test].column

    def covers(self, dataset: str, encoder: str, attack: str, defense: str, versus: str = "") -> bool:
        """Whether the comparison of this test on a line of these names belongs to the family."""
        kind = TESTS[self.test]
        if attack == "none" or (kind.undefended and defense != "none") or (not kind.undefended
                                                                           and defense == "none"):
            return False
        if self.test == "versus" and (versus != self.versus or attack == self.versus):
            return False
        chosen = ((self.attacks, attack), (self.defenses, defense), (self.datasets, dataset),
                  (self.encoders, encoder))
        return all(not names or name in names for names, name in chosen)

    def covers_pair(self, dataset: str, encoder: str, attack: str, first: str, second: str) -> bool:
        """Whether a defense pair (by defense names) of a line of these names is in the family."""
        if self.test != "defense-pair" or not all(self.covers(dataset, encoder, attack, d)
                                                  for d in (first, second)):
            return False
        return not self.pairs or {first, second} in [set(p) for p in self.pairs]


DEFAULT: tuple[Family, ...] = (Family(family="attack-effect", test="vs-twin"),
                               Family(family="defense-effect", test="vs-none"))


def check(families: tuple[Family, ...], axes: dict[str, tuple[str, ...]]) -> tuple[str, str] | None:
    """Why a suite's declared families cannot be used (the key path, the reason), or None: names
    unique, every name a filter uses on the suite's axes (`axes`: attacks, defenses, datasets,
    encoders -> names), `versus` given exactly for the versus test, pairs only for
    defense-pair, and no comparison in two families."""
    seen: dict[str, int] = {}
    for i, f in enumerate(families):
        where = f"comparisons[{i}]"
        if f.family in seen:
            return f"{where}.family", f"{f.family!r} is declared twice (also comparisons[{seen[f.family]}])"
        seen[f.family] = i
        for axis in ("attacks", "defenses", "datasets", "encoders"):
            unknown = [n for n in getattr(f, axis) if n not in axes[axis]]
            if unknown:
                return f"{where}.{axis}", f"{unknown[0]!r} is not among the suite's {axis} ({', '.join(axes[axis])})"
        if (f.test == "versus") != (f.versus is not None):
            return f"{where}.versus", "the versus test names its reference attack, and only it"
        if f.versus is not None and f.versus not in axes["attacks"]:
            return f"{where}.versus", f"{f.versus!r} is not among the suite's attacks"
        if f.pairs and f.test != "defense-pair":
            return f"{where}.pairs", "only the defense-pair test takes pairs"
        for a, b in f.pairs:
            for d in (a, b):
                if d not in axes["defenses"]:
                    return f"{where}.pairs", f"{d!r} is not among the suite's defenses"
    for i, f in enumerate(families):
        for j in range(i):
            if _overlap(families[j], f, axes):
                return (f"comparisons[{i}]", f"family {f.family!r} repeats comparisons of family "
                        f"{families[j].family!r} (a comparison belongs to one family)")
    return None


def _overlap(a: Family, b: Family, axes: dict[str, tuple[str, ...]]) -> bool:
    if a.test != b.test or a.versus != b.versus:
        return False
    cells = [(d, e, x) for d in axes["datasets"] for e in axes["encoders"] for x in axes["attacks"]]
    if a.test == "defense-pair":
        pairs = [(p, q) for i, p in enumerate(axes["defenses"]) for q in axes["defenses"][i + 1:]]
        return any(a.covers_pair(*c, *p) and b.covers_pair(*c, *p) for c in cells for p in pairs)
    return any(a.covers(*c, y, a.versus or "") and b.covers(*c, y, b.versus or "")
               for c in cells for y in axes["defenses"])


Cell = tuple[str, str, str, str, str]  # dataset, encoder, attack, defense names; "attack params|defense params"


def count(family: Family, cells: set[Cell], detectors: set[str] = set()) -> int:
    """How many comparisons the family holds among a grid's cells (dataset, encoder, attack and
    defense names, defense params), per task: pairs of defense settings for defense-pair, else cells;
    a detector (`detectors`: it changes no encoder) against no defense is no comparison."""
    if family.test in ("vs-none", "pa-vs-none"):
        cells = {c for c in cells if c[3] not in detectors}
    if family.test != "defense-pair":
        return sum(family.covers(d, e, a, x, family.versus or "") for d, e, a, x, _ in cells)
    by_setup: dict[tuple[str, str, str, str], list[str]] = {}
    for d, e, a, x, params in sorted(cells):  # one setup per attack setting
        by_setup.setdefault((d, e, a, params.split("|")[0]), []).append(x)
    return sum(family.covers_pair(*setup[:3], p, q) for setup, names in by_setup.items()
               for i, p in enumerate(names) for q in names[i + 1:])


def describe(families: tuple[Family, ...], declared: bool, cells: set[Cell],
             detectors: set[str] = set(), seeds: int = 0) -> list[str]:
    """What `validate` prints: each family, its test, what it narrows to and how many
    comparisons it holds in the grid's `cells` (per task), and, for a family too large for the
    suite's most `seeds`, that Holm cannot support any of them (m · 2/2^n >= 0.05: the exact
    test over n seeds cannot go below 2/2^n), before anything is run."""
    head = "comparisons (declared):" if declared else "comparisons (defaults: the suite declares none):"
    out = [head]
    for f in families:
        narrow = [f"{axis} {', '.join(getattr(f, axis))}" for axis in ("attacks", "defenses", "datasets",
                                                                         "encoders") if getattr(f, axis)]
        if f.versus:
            narrow.append(f"versus {f.versus}")
        if f.pairs:
            narrow.append("pairs " + "; ".join(f"{a} vs {b}" for a, b in f.pairs))
        scope = f" ({'; '.join(narrow)})" if narrow else ""
        m = count(f, cells, detectors)
        floor = closed(m, seeds)
        out.append(f"  {f.family}: {TESTS[f.test].what}{scope}: {m} comparisons per task, Holm within the "
                   f"family" + (f"; at {seeds} seeds {floor}: none of them can be supported" if floor else ""))
    out.append("  anything else is exploratory: unadjusted p, never labelled supported")
    return out


def declared(families: tuple[Family, ...]) -> tuple[Family, ...]:
    """A suite's families: as declared, or `DEFAULT` when it declares none."""
    return families or DEFAULT
