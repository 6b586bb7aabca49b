"""Declared comparison families: which comparisons a family covers and how many `validate` counts
(the malformed declarations are fixtures under tests/fixtures/suites/bad/comparisons_*.yaml)."""

from __future__ import annotations

from pe_bench.config.comparisons import DEFAULT, Family, count, declared, describe

CELLS = {
    ("digits", "simclr", "corrupt-encoder", "none", "{'poison_rate': 0.1}|{}"),
    ("digits", "simclr", "corrupt-encoder", "knn-density", "{'poison_rate': 0.1}|{}"),
    ("digits", "simclr", "corrupt-encoder", "patchsearch", "{'poison_rate': 0.1}|{}"),
    ("digits", "simclr", "corrupt-encoder", "decree", "{'poison_rate': 0.1}|{}"),
    ("digits", "simclr", "corrupt-encoder", "none", "{'poison_rate': 0.01}|{}"),
    ("digits", "simclr", "corrupt-encoder", "knn-density", "{'poison_rate': 0.01}|{}"),
    ("digits", "simclr", "corrupt-encoder", "patchsearch", "{'poison_rate': 0.01}|{}"),
    ("digits", "simclr", "none", "none", "{}|{}"),
}


def test_defaults_test_each_attack_against_its_twin_and_each_defense_against_none() -> None:
    assert declared(()) == DEFAULT
    effect, defense = DEFAULT
    assert count(effect, CELLS) == 2  # two attack settings; `none` is no comparison
    assert count(defense, CELLS, detectors={"decree"}) == 4  # a detector vs none is zero by construction
    assert count(defense, CELLS) == 5


def test_a_pair_is_counted_once_per_attack_setting() -> None:
    pairs = Family(family="filters", test="defense-pair", pairs=(("patchsearch", "knn-density"),))
    assert count(pairs, CELLS) == 2
    assert pairs.covers_pair("digits", "simclr", "corrupt-encoder", "knn-density", "patchsearch")
    assert not pairs.covers_pair("digits", "simclr", "corrupt-encoder", "knn-density", "decree")


def test_filters_narrow_a_family() -> None:
    low = Family(family="x", test="vs-none", defenses=("patchsearch",), encoders=("simclr",))
    assert low.covers("digits", "simclr", "corrupt-encoder", "patchsearch")
    assert not low.covers("digits", "moco", "corrupt-encoder", "patchsearch")
    assert not low.covers("digits", "simclr", "corrupt-encoder", "knn-density")
    assert not low.covers("digits", "simclr", "none", "patchsearch")  # no attack: no test
    versus = Family(family="v", test="versus", versus="duplicate")
    assert versus.covers("digits", "simclr", "poisoned-encoder", "none", "duplicate")
    assert not versus.covers("digits", "simclr", "duplicate", "none", "duplicate")  # itself
    assert not versus.covers("digits", "simclr", "poisoned-encoder", "none", "")  # no --versus


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
