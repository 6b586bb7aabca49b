"""Plugin safety with the real registries: one name, one claim, whatever the import order; an
entry point must resolve to a plugin class of its group; exclude rules must name something.

Installed packages are faked as `*.dist-info` folders in a temporary site folder that a fresh
`pe-bench` process puts first on its path (as in tests/unit/plugins/test_plugin_package.py), so the real
environment is never changed."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest

from pe_bench.errors import PluginError
from pe_bench.plugins.registry import DEFENSES
from tests.helpers import write_dist_info

SUITE = """\
name: safety
seeds: [0]
plugins: {plugins}
datasets:
  - name: digits
    pretrain: {{dataset: digits}}
    tasks: [{{name: digits, dataset: digits}}]
encoders: [simclr]
attacks: {attacks}
defenses: {defenses}
"""


class Site:
    """A temporary site folder: plain modules and fake installed distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"safety_{uuid.uuid4().hex[:8]}"
        root.mkdir(parents=True, exist_ok=True)

    def module(self, name: str, source: str) -> str:
        full = f"{self.prefix}_{name}"
        (self.root / f"{full}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return full

    def dist(self, name: str, group: str, entry_points: dict[str, str]) -> None:
        write_dist_info(self.root, name, "2.0", group, entry_points)

    def suite(self, plugins: list[str] | None = None, attacks: str = "[none]",
              defenses: str = "[none]") -> Path:
        path = self.root.parent / f"suite-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(SUITE.format(plugins=plugins or [], attacks=attacks, defenses=defenses),
                        encoding="utf-8")
        return path

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """`pe-bench ARGS` in a fresh interpreter whose path starts with this site."""
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from pe_bench.cli import main; "
                "sys.exit(main(sys.argv[2:]))")
        return subprocess.run([sys.executable, "-W", "default", "-c", code, str(self.root), *map(str, args)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "Warning" not in err, err
    return err


DEDUP_AGAIN = """
    from pe_bench.defenses.base import Defense
    from pe_bench.plugins.registry import register_defense

    @register_defense("dedup")
    class MyDedup(Defense):
        pass
"""


# -- a suite-local module claiming a taken name ----------------------------------------------
def test_suite_module_reusing_a_builtin_name_before_the_builtin_loads(site: Site) -> None:
    module = site.module("hooks", DEDUP_AGAIN)
    err = one_line_error(site.cli("validate", site.suite([module])))
    assert "plugins[0]" in err and "defense 'dedup' is registered twice" in err
    assert "pe_bench.defenses.dedup" in err and f"module {module}" in err


def test_suite_module_reusing_a_builtin_name_after_the_builtin_loaded(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site.root))
    module = site.module("hooks", DEDUP_AGAIN)
    builtin = DEFENSES.get("dedup")
    with pytest.raises(PluginError) as err:
        importlib.import_module(module)
    assert "defense 'dedup' is registered twice: by pe-bench" in str(err.value)
    assert f"module {module}" in str(err.value)
    assert DEFENSES.get("dedup") is builtin


def test_suite_module_reusing_an_installed_name(site: Site) -> None:
    ext = site.module("ext", """
        from pe_bench.defenses.base import Defense

        class Installed(Defense):
            pass
    """)
    site.dist("fake-defenses", "pe_bench.defenses", {"installed-thing": f"{ext}:Installed"})
    module = site.module("hooks", """
        from pe_bench.defenses.base import Defense
        from pe_bench.plugins.registry import register_defense

        @register_defense("installed-thing")
        class Mine(Defense):
            pass
    """)
    err = one_line_error(site.cli("validate", site.suite([module], defenses="[installed-thing]")))
    assert "defense 'installed-thing' is registered twice: by fake-defenses" in err
    assert f"module {module}" in err


# -- entry points that are no plugin class of their group ------------------------------------
@pytest.mark.parametrize(("source", "attr", "what"), [
    ("def craft(ctx):\n    return None\n", "craft", "a function (craft)"),
    ("from pe_bench.defenses.base import Defense\nclass Filter(Defense):\n    pass\n", "Filter",
     "class Filter (a Defense)"),
], ids=["function", "defense-class"])
def test_entry_point_that_is_no_attack_class(site: Site, source: str, attr: str, what: str) -> None:
    ext = site.module("ext", source)
    site.dist("odd-attacks", "pe_bench.attacks", {"odd": f"{ext}:{attr}"})
    listed = site.cli("list", "attacks")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if " odd " in line)
    assert "unusable" in row and "odd-attacks" in row
    suite = site.suite(attacks="[none, odd]")
    for command in (("validate", suite), ("run", suite, "--in-process", "--store", site.root / "s")):
        err = one_line_error(site.cli(*command))
        assert "attacks[1].name" in err and "attack 'odd' from odd-attacks is " + what in err
        assert "not a pe_bench.attacks.base.Attack subclass" in err


# -- a third-party name clashing with a built-in ---------------------------------------------
def test_installed_name_clashing_with_a_builtin_is_one_line_not_a_warning(site: Site) -> None:
    ext = site.module("ext", """
        from pe_bench.attacks.base import Attack

        class Copycat(Attack):
            pass
    """)
    site.dist("copycat-attacks", "pe_bench.attacks", {"duplicate": f"{ext}:Copycat"})
    listed = site.cli("list", "attacks")
    assert listed.returncode == 0 and "Warning" not in listed.stderr, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if " duplicate " in line)
    assert "unusable" in row
    err = one_line_error(site.cli("validate", site.suite(attacks="[none, duplicate]")))
    assert "attack 'duplicate' is claimed by the built-in (pe_bench.attacks.duplicate)" in err
    assert "copycat-attacks 2.0" in err
    # a suite that does not use the name is not affected
    ok = site.cli("validate", site.suite(attacks="[none]"))
    assert ok.returncode == 0 and not ok.stderr.strip(), ok.stderr


def test_listing_the_real_registries_warns_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in DEFENSES.names():
            DEFENSES.info(name)
