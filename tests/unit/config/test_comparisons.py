"""Declared comparison families: which comparisons a family covers and how many `validate` counts
(the malformed declarations are fixtures under tests/fixtures/suites/bad/comparisons_*.yaml)."""

from __future__ import annotations

import json

from pe_bench.config.comparisons import DEFAULT, Family, check, count, declared, describe

HIGH, LOW = {"poison_rate": 0.1}, {"poison_rate": 0.01}
CELLS = {("digits", "simclr", attack, defense, json.dumps(params), "{}") for attack, defense, params in (
    ("corrupt-encoder", "none", HIGH), ("corrupt-encoder", "knn-density", HIGH),
    ("corrupt-encoder", "patchsearch", HIGH), ("corrupt-encoder", "decree", HIGH),
    ("corrupt-encoder", "none", LOW), ("corrupt-encoder", "knn-density", LOW),
    ("corrupt-encoder", "patchsearch", LOW), ("none", "none", {}))}
ON = {"attack_params": HIGH, "defense_params": {}}  # a line's params, for `covers`


def test_defaults_test_each_attack_against_its_twin_and_each_defense_against_none() -> None:
    assert declared(()) == DEFAULT
    effect, defense = DEFAULT
    assert count(effect, CELLS) == 2  # two attack settings; `none` is no comparison
    assert count(defense, CELLS, detectors={"decree"}) == 4  # a detector vs none is zero by construction
    assert count(defense, CELLS) == 5


def test_a_pair_is_counted_once_per_attack_setting() -> None:
    pairs = Family(family="filters", test="defense-pair", pairs=(("patchsearch", "knn-density"),))
    assert count(pairs, CELLS) == 2
    assert pairs.covers_pair("digits", "simclr", "corrupt-encoder", "knn-density", "patchsearch", attack_params=HIGH)
    assert not pairs.covers_pair("digits", "simclr", "corrupt-encoder", "knn-density", "decree", attack_params=HIGH)


def test_filters_narrow_a_family() -> None:
    low = Family(family="x", test="vs-none", defenses=("patchsearch",), encoders=("simclr",))
    assert low.covers("digits", "simclr", "corrupt-encoder", "patchsearch", **ON)
    assert not low.covers("digits", "moco", "corrupt-encoder", "patchsearch", **ON)
    assert not low.covers("digits", "simclr", "corrupt-encoder", "knn-density", **ON)
    assert not low.covers("digits", "simclr", "none", "patchsearch", **ON)  # no attack: no test
    versus = Family(family="v", test="versus", versus="duplicate")
    assert versus.covers("digits", "simclr", "poisoned-encoder", "none", "duplicate", **ON)
    assert not versus.covers("digits", "simclr", "duplicate", "none", "duplicate", **ON)  # itself
    assert not versus.covers("digits", "simclr", "poisoned-encoder", "none", "", **ON)  # no --versus


def test_params_narrow_a_family_to_settings_as_exclude_does() -> None:
    """One primary comparison among several settings of an attack: the settings holding the
    family's params are in it, every other setting of that attack is exploratory."""
    high = Family(family="primary", test="vs-twin", attack_params=HIGH)
    assert count(high, CELLS) == 1
    assert high.covers("digits", "simclr", "corrupt-encoder", "none", attack_params={**HIGH, "x": 1}, defense_params={})
    assert not high.covers("digits", "simclr", "corrupt-encoder", "none", attack_params=LOW, defense_params={})
    assert not high.covers("digits", "simclr", "corrupt-encoder", "none", attack_params={}, defense_params={})
    pair = Family(family="p", test="defense-pair", attack_params=LOW)
    assert count(pair, CELLS) == 1  # knn-density vs patchsearch at 1% only
    crop = Family(family="c", test="vs-none", defense_params={"mode": "localized"})
    assert crop.covers("d", "e", "a", "conservative-crop", attack_params={}, defense_params={"mode": "localized"})
    assert not crop.covers("d", "e", "a", "conservative-crop", attack_params={}, defense_params={"mode": "independent"})
    text = "\n".join(describe((high,), True, CELLS))
    assert "(attack params poison_rate=0.1): 1 comparisons per task" in text


AXES = {"datasets": (("digits", {}),), "encoders": (("simclr", {}),),
        "attacks": (("none", {}), ("corrupt-encoder", HIGH), ("corrupt-encoder", LOW)),
        "defenses": (("none", {}), ("patchsearch", {}))}


def test_families_split_by_params_do_not_overlap_and_an_unheld_filter_is_refused() -> None:
    split = (Family(family="primary", test="vs-twin", attack_params=HIGH),
             Family(family="secondary", test="vs-twin", attack_params=LOW))
    assert check(split, AXES) is None
    again = (*split, Family(family="all", test="vs-twin"))
    assert check(again, AXES) == ("comparisons[2]", "family 'all' repeats comparisons of family 'primary' "
                                  "(a comparison belongs to one family)")
    unheld = (Family(family="x", test="vs-twin", attack_params={"poison_rate": 0.5}),)
    assert check(unheld, AXES) == ("comparisons[0].attack_params",
                                   '{"poison_rate": 0.5} is held by no setting of the suite\'s attacks')
    twin = (Family(family="x", test="vs-twin", defense_params={}),)
    assert check(twin, AXES)[0] == "comparisons[0].defense_params"  # type: ignore[index]


def test_validate_says_what_is_declared_and_what_is_exploratory() -> None:
    text = "\n".join(describe(DEFAULT, False, CELLS, {"decree"}))
    assert "defaults: the suite declares none" in text and "4 comparisons per task" in text
    assert text.endswith("anything else is exploratory: unadjusted p, never labelled supported")


def test_validate_says_when_a_family_is_too_large_for_the_seeds() -> None:
    """Before the run: m comparisons at n seeds cannot pass Holm's first step when m·2/2^n >= 0.05."""
    six = describe(DEFAULT, False, CELLS, {"decree"}, seeds=6)  # 2 × 2/64 = 0.0625; 4 × 2/64
    assert all("none of them can be supported" in line for line in six[1:3]), six
    assert "at 6 seeds Holm cannot go below 2 × 0.0312 = 0.0625" in six[1]
    ten = describe(DEFAULT, False, CELLS, {"decree"}, seeds=10)  # 4 × 2/1024 = 0.0078
    assert not any("cannot go below" in line for line in ten)
