"""The comparisons a suite is run to test, declared before the run and grouped into families.

A board's verdicts (supported / n.s.) are Holm-adjusted within a family, so a comparison carries
the same adjusted p wherever the suite's rows are shown: the family is fixed by the declaration,
never by which lines a table happens to hold. What no family covers is shown as exploratory,
with its unadjusted p, and is never labelled supported. One family per question, as in
clinical-trial reporting (one primary family per question; Holm, Scand. J. Statist. 1979).

A suite declares them under `comparisons:`; a suite that declares none gets `DEFAULT`: each
attack vs its clean twin, and each defense vs no defense under each attack. Each entry names a
`test` (one of `TESTS`) and may narrow the lines it covers by attack, defense, dataset and
encoder names and by params the attack's (`attack_params`) or defense's (`defense_params`)
settings hold, as `exclude` does: one primary comparison among several settings of an attack;
`defense-pair` names its pairs of defenses. A comparison zero by construction
(a `none` defense or a detector against no defense; a line without an attack against its
twin) carries no interval and is never counted in a family.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from pe_bench.config.spec import Frozen

ALPHA = 0.05  # the level of every verdict (pe_bench.report.stats tests at it)

Params = Mapping[str, Any]


def holds(params: Params, wanted: Params | None) -> bool:
    """Whether a plugin setting's (resolved) params hold every value `wanted` names (None: any)."""
    return all(k in params and params[k] == v for k, v in (wanted or {}).items())


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
    attack_params: dict[str, Any] | None = None  # values the attack's params must hold
    defense_params: dict[str, Any] | None = None  # likewise the defense's (tests of a defense)
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

    def covers(self, dataset: str, encoder: str, attack: str, defense: str, versus: str = "", *,
               attack_params: Params, defense_params: Params) -> bool:
        """Whether the comparison of this test on a line of these names and params belongs to
        the family."""
        kind = TESTS[self.test]
        if attack == "none" or (kind.undefended and defense != "none") or (not kind.undefended
                                                                           and defense == "none"):
            return False
        if self.test == "versus" and (versus != self.versus or attack == self.versus):
            return False
        chosen = ((self.attacks, attack), (self.defenses, defense), (self.datasets, dataset),
                  (self.encoders, encoder))
        return (all(not names or name in names for names, name in chosen)
                and holds(attack_params, self.attack_params) and holds(defense_params, self.defense_params))

    def covers_pair(self, dataset: str, encoder: str, attack: str, first: str, second: str, *,
                    attack_params: Params) -> bool:
        """Whether a defense pair (by defense names) of a line of these names is in the family
        (a defense-pair family takes no `defense_params`: its pairs name the defenses)."""
        if self.test != "defense-pair" or not all(self.covers(dataset, encoder, attack, d, attack_params=attack_params,
                                                              defense_params={}) for d in (first, second)):
            return False
        return not self.pairs or {first, second} in [set(p) for p in self.pairs]


DEFAULT: tuple[Family, ...] = (Family(family="attack-effect", test="vs-twin"),
                               Family(family="defense-effect", test="vs-none"))


Setting = tuple[str, Params]  # a plugin's name and its resolved params (datasets: no params)


def check(families: tuple[Family, ...], axes: dict[str, tuple[Setting, ...]]) -> tuple[str, str] | None:
    """Why a suite's declared families cannot be used (the key path, the reason), or None: names
    unique, every name a filter uses on the suite's axes (`axes`: attacks, defenses, datasets,
    encoders -> settings), params filters held by a setting of the names they narrow, defense
    params only for tests of a defense (not defense-pair), `versus` given exactly for the versus
    test, pairs only for defense-pair, and no comparison in two families."""
    names = {axis: tuple(dict.fromkeys(n for n, _ in settings)) for axis, settings in axes.items()}
    seen: dict[str, int] = {}
    for i, f in enumerate(families):
        where = f"comparisons[{i}]"
        if f.family in seen:
            return f"{where}.family", f"{f.family!r} is declared twice (also comparisons[{seen[f.family]}])"
        seen[f.family] = i
        for axis in ("attacks", "defenses", "datasets", "encoders"):
            unknown = [n for n in getattr(f, axis) if n not in names[axis]]
            if unknown:
                return f"{where}.{axis}", f"{unknown[0]!r} is not among the suite's {axis} ({', '.join(names[axis])})"
        problem = _params_problem(f, axes)
        if problem:
            return f"{where}.{problem[0]}", problem[1]
        if (f.test == "versus") != (f.versus is not None):
            return f"{where}.versus", "the versus test names its reference attack, and only it"
        if f.versus is not None and f.versus not in names["attacks"]:
            return f"{where}.versus", f"{f.versus!r} is not among the suite's attacks"
        if f.pairs and f.test != "defense-pair":
            return f"{where}.pairs", "only the defense-pair test takes pairs"
        for a, b in f.pairs:
            for d in (a, b):
                if d not in names["defenses"]:
                    return f"{where}.pairs", f"{d!r} is not among the suite's defenses"
    for i, f in enumerate(families):
        for j in range(i):
            if _overlap(families[j], f, axes):
                return (f"comparisons[{i}]", f"family {f.family!r} repeats comparisons of family "
                        f"{families[j].family!r} (a comparison belongs to one family)")
    return None


def _params_problem(f: Family, axes: dict[str, tuple[Setting, ...]]) -> tuple[str, str] | None:
    """A params filter that would silently match nothing, or one on a test it cannot narrow."""
    if f.defense_params is not None and (TESTS[f.test].undefended or f.test == "defense-pair"):
        return "defense_params", f"the {f.test} test does not compare defense settings: name the defenses instead"
    for key, axis, wanted in (("attack_params", "attacks", f.attack_params),
                              ("defense_params", "defenses", f.defense_params)):
        chosen = getattr(f, axis)
        if wanted is not None and not any(holds(params, wanted) for name, params in axes[axis]
                                          if not chosen or name in chosen):
            return key, (f"{json.dumps(wanted, sort_keys=True)} is held by no setting of the suite's "
                         f"{', '.join(chosen) or axis}")
    return None


def _overlap(a: Family, b: Family, axes: dict[str, tuple[Setting, ...]]) -> bool:
    if a.test != b.test or a.versus != b.versus:
        return False
    cells = [(d, e, x) for d, _ in axes["datasets"] for e, _ in axes["encoders"] for x in axes["attacks"]]
    if a.test == "defense-pair":
        names = tuple(dict.fromkeys(n for n, _ in axes["defenses"]))
        pairs = [(p, q) for i, p in enumerate(names) for q in names[i + 1:]]
        return any(a.covers_pair(d, e, x, p, q, attack_params=xp) and b.covers_pair(d, e, x, p, q, attack_params=xp)
                   for d, e, (x, xp) in cells for p, q in pairs)
    return any(a.covers(d, e, x, y, a.versus or "", attack_params=xp, defense_params=yp)
               and b.covers(d, e, x, y, b.versus or "", attack_params=xp, defense_params=yp)
               for d, e, (x, xp) in cells for y, yp in axes["defenses"])


# dataset, encoder, attack, defense names; the attack's and the defense's params as sorted JSON
Cell = tuple[str, str, str, str, str, str]


def count(family: Family, cells: set[Cell], detectors: set[str] = set()) -> int:
    """How many comparisons the family holds among a grid's cells, per task: pairs of defense
    settings for defense-pair, else cells; a detector (`detectors`: it changes no encoder)
    against no defense is no comparison."""
    if family.test in ("vs-none", "pa-vs-none"):
        cells = {c for c in cells if c[3] not in detectors}
    if family.test != "defense-pair":
        return sum(family.covers(d, e, a, x, family.versus or "", attack_params=json.loads(ap),
                                 defense_params=json.loads(dp)) for d, e, a, x, ap, dp in cells)
    by_setup: dict[tuple[str, str, str, str], list[str]] = {}
    for d, e, a, x, ap, _ in sorted(cells):  # one setup per attack setting
        by_setup.setdefault((d, e, a, ap), []).append(x)
    return sum(family.covers_pair(*setup[:3], p, q, attack_params=json.loads(setup[3]))
               for setup, names in by_setup.items() for i, p in enumerate(names) for q in names[i + 1:])


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
        narrow += [f"{key.replace('_', ' ')} " + ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
                   for key in ("attack_params", "defense_params") if (wanted := getattr(f, key))]
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
