"""An attack's declared family never contradicts the class it subclasses (issue 21, point 6a):
a `BackdoorAttack` subclass is evaluated on triggered inputs, so one registered as `targeted`
would label backdoor rows `targeted`. It is refused when the class registers (the decorator of
a built-in-like or suite module) or loads (an entry point), and `pe-bench validate` and `run`
exit 2 with one line."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pe_bench.attacks.backdoor import BackdoorAttack
from pe_bench.errors import PluginError
from pe_bench.plugins.registry import ATTACKS
from tests.unit.plugins.test_plugin_safety import Site, one_line_error

UNDECLARED = """
    from pe_bench.attacks.backdoor import BackdoorAttack
    from pe_bench.plugins.registry import register_attack

    @register_attack("{name}", stage="data", modalities=("image",))
    class Sneaky(BackdoorAttack):
        def apply_trigger(self, images, seed, rng, test=False):
            return images.copy()
"""
TARGETED_CLASS = """
    from pe_bench.attacks.backdoor import BackdoorAttack

    class Sneaky(BackdoorAttack):
        family = "targeted"

        def apply_trigger(self, images, seed, rng, test=False):
            return images.copy()

    class Inherits(BackdoorAttack):
        def apply_trigger(self, images, seed, rng, test=False):
            return images.copy()
"""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


def test_backdoor_base_declares_its_family() -> None:
    assert BackdoorAttack.family == "backdoor"
    assert {n: ATTACKS.metadata(n).family for n in ("ssl-backdoor", "ctrl", "carlini-terzis")} == {
        "ssl-backdoor": "backdoor", "ctrl": "backdoor", "carlini-terzis": "targeted"}


def test_a_suite_module_registering_an_undeclared_backdoor_is_refused(site: Site) -> None:
    module = site.module("bd", UNDECLARED.format(name="sneaky-bd"))
    suite = site.suite([module], attacks="[none]")
    for command in (("validate", suite), ("run", suite, "--in-process", "--store", site.root / "s")):
        err = one_line_error(site.cli(*command))
        assert "plugins[0]" in err and "attack 'sneaky-bd'" in err
        assert "declares no family (so 'targeted')" in err
        assert "pe_bench.attacks.backdoor.BackdoorAttack, whose family is 'backdoor'" in err


def test_an_entry_point_class_contradicting_its_base_is_refused(site: Site) -> None:
    ext = site.module("ext", TARGETED_CLASS)
    site.dist("sneaky-attacks", "pe_bench.attacks",
              {"sneaky": f"{ext}:Sneaky", "inherits": f"{ext}:Inherits"})
    for command in ("validate", "run"):
        extra = ("--in-process", "--store", site.root / "s") if command == "run" else ()
        err = one_line_error(site.cli(command, site.suite(attacks="[none, sneaky]"), *extra))
        assert "attacks[1].name" in err and "attack 'sneaky' from sneaky-attacks" in err
        assert "declares family 'targeted' but subclasses pe_bench.attacks.backdoor.BackdoorAttack" in err
    listed = site.cli("list", "attacks")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if " sneaky " in line)
    assert "unusable" in row
    # a subclass that declares nothing inherits `backdoor`: nothing to contradict
    inherited = next(line for line in listed.stdout.splitlines() if " inherits " in line)
    assert "family: backdoor" in inherited and "unusable" not in inherited


@pytest.fixture
def builtin_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package laid out like pe-bench's own plugins: a registry whose built-ins are found
    by reading `<pkg>.plugins` from source, with AttackMeta and the Attack base."""
    pkg = f"fam_{uuid.uuid4().hex[:8]}"
    root = tmp_path / pkg
    (root / "plugins").mkdir(parents=True)
    (root / "__init__.py").write_text("", encoding="utf-8")
    (root / "plugins" / "__init__.py").write_text("", encoding="utf-8")
    (root / "reg.py").write_text(textwrap.dedent(f"""
        from pe_bench.plugins.registry import Registry
        from pe_bench.plugins.types import AttackMeta

        WIDGETS = Registry("widgets", ["{pkg}.plugins"], "register_widget", AttackMeta,
                           "pe_bench.attacks.base:Attack")
        register_widget = WIDGETS.register
    """), encoding="utf-8")
    plugins = {
        "undeclared": ('@register_widget("undeclared", stage="data")\n'
                       "class Undeclared(BackdoorAttack):\n    pass\n"),
        "declared": ('@register_widget("declared", family="backdoor")\n'
                     "class Declared(BackdoorAttack):\n    pass\n"),
        "variants": ('@register_widget("variants", family="targeted")\nclass Variants(BackdoorAttack):\n'
                     '    @classmethod\n    def family_of(cls, params):\n        return "targeted"\n'),
        "lying": ('@register_widget("lying", family="backdoor")\nclass Lying(BackdoorAttack):\n'
                  '    @classmethod\n    def family_of(cls, params):\n        return "targeted"\n'),
    }
    head = f"from pe_bench.attacks.backdoor import BackdoorAttack\nfrom {pkg}.reg import register_widget\n\n"
    for name, body in plugins.items():
        (root / "plugins" / f"{name}.py").write_text(head + body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for module in [m for m in sys.modules if m.startswith(pkg)]:
        del sys.modules[module]


def test_a_builtin_like_plugin_is_indexed_from_source_and_refused_when_loaded(builtin_like: str) -> None:
    widgets = importlib.import_module(f"{builtin_like}.reg").WIDGETS
    assert widgets.declared("undeclared").family == "targeted"  # what the source says, no import
    assert f"{builtin_like}.plugins.undeclared" not in sys.modules
    with pytest.raises(PluginError) as err:
        widgets.get("undeclared")
    message = str(err.value)
    assert message.count("\n") == 0 and "widget 'undeclared'" in message
    assert ("declares no family (so 'targeted') but subclasses "
            "pe_bench.attacks.backdoor.BackdoorAttack") in message
    assert widgets.get("declared").family == "backdoor"
    assert widgets.get("variants").family == "targeted"  # its params pick the family


def test_a_family_of_override_must_agree_with_the_declared_family(builtin_like: str) -> None:
    widgets = importlib.import_module(f"{builtin_like}.reg").WIDGETS
    with pytest.raises(PluginError, match=r"declares family 'backdoor' but family_of\(its default params\) "
                                          r"is 'targeted'"):
        widgets.get("lying")


def test_a_plain_attack_may_be_a_backdoor() -> None:
    """`Attack`'s own family is a default, not a constraint (badencoder subclasses Attack)."""
    from pe_bench.attacks.base import Attack

    class EncoderBackdoor(Attack):
        family = "backdoor"

    assert ATTACKS._meta.of(EncoderBackdoor).contradiction(EncoderBackdoor, Attack) is None
    assert ATTACKS.metadata("badencoder").family == "backdoor"
