"""Plugin registries: discovery without import, decorators, entry points, clashes, errors.

The built-in registries are only read here. Everything that registers or installs something
uses a private `Registry("widgets", ...)` whose entry-point group `pe_bench.widgets` no real
registry reads, over a throw-away package and fake `*.dist-info` folders in tmp_path.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pe_bench.errors import PluginError
from pe_bench.plugins.registry import ATTACKS, BUILTIN_ORIGIN, DATASETS, REGISTRIES, Registry
from tests.helpers import write_dist_info

REPO = Path(__file__).resolve().parents[3]
GROUP = "pe_bench.widgets"


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **env}, timeout=120)  # fmt: skip


# -- built-in registries ---------------------------------------------------------------------
def test_builtin_names_are_found_without_importing_plugins_or_torch() -> None:
    code = textwrap.dedent("""
        import json, sys
        from pe_bench.plugins.registry import REGISTRIES
        names = {k: r.names() for k, r in REGISTRIES.items()}
        plugin_modules = sorted(m for m in sys.modules if m.startswith(
            ("pe_bench.attacks.", "pe_bench.defenses.", "pe_bench.encoders.", "pe_bench.datasets")))
        print(json.dumps({"names": names, "torch": "torch" in sys.modules,
                          "plugin_modules": plugin_modules}))
    """)
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["torch"] is False
    assert out["plugin_modules"] == []
    assert {"none", "poisoned-encoder", "duplicate"} <= set(out["names"]["attacks"])
    assert "none" in out["names"]["defenses"]
    assert "simclr" in out["names"]["encoders"]
    assert {"digits", "cifar10"} <= set(out["names"]["datasets"])


def test_cli_list_does_not_import_torch() -> None:
    code = "import sys, pe_bench.cli as c; rc = c.main(['list']); print(rc, 'torch' in sys.modules)"
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 False"
    assert "poisoned-encoder" in proc.stdout


def test_console_script_list_exits_0_without_torch() -> None:
    script = Path(sys.executable).with_name("pe-bench")
    if not script.exists():
        pytest.skip("console script pe-bench is not installed next to this interpreter")
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run([str(script), "list"], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "pe_bench.plugins.registry" in imported  # the import-time report did work
    assert "torch" not in imported
    assert "simclr" in proc.stdout


def test_builtin_infos_name_module_and_origin() -> None:
    info = ATTACKS.infos()["poisoned-encoder"]
    assert (info.origin, info.builtin) == (BUILTIN_ORIGIN, True)
    assert info.target == "pe_bench.attacks.poisoned_encoder"
    assert DATASETS.infos()["digits"].target == "pe_bench.datasets.digits"
    for registry in REGISTRIES.values():
        assert registry.group == f"pe_bench.{registry.kind}"
        assert all(i.origin == BUILTIN_ORIGIN for i in registry.infos().values() if i.builtin)


def test_get_builtin_returns_the_decorated_class() -> None:
    attack = ATTACKS.get("poisoned-encoder")
    assert attack.__name__ == "PoisonedEncoder"
    assert attack.__module__ == "pe_bench.attacks.poisoned_encoder"
    assert ATTACKS.get("poisoned-encoder") is attack


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(PluginError, match="did you mean 'poisoned-encoder'") as err:
        ATTACKS.get("poisoned-encodr")
    message = str(err.value)
    assert "\n" not in message
    assert "unknown attack 'poisoned-encodr'" in message
    assert ("known: badencoder, blend, carlini-terzis, corrupt-encoder, ctrl, duplicate, noisy-alignment, "
            "none, poisoned-encoder, ssl-backdoor") in message


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(PluginError) as err:
        ATTACKS.get("zzzzzzzzzzzz")
    assert "did you mean" not in str(err.value)
    assert "known:" in str(err.value)


# -- a private registry over a throw-away package --------------------------------------------
@dataclass
class Sandbox:
    """A folder on sys.path with unique module names, a registry module and fake dists."""

    root: Path
    prefix: str  # unique per test: modules written here never collide across tests

    def module(self, name: str, source: str) -> str:
        """Write `<prefix>_<name>` (a dotted name makes a package) and return its import name."""
        full = f"{self.prefix}_{name}"
        parts = full.split(".")
        folder = self.root.joinpath(*parts[:-1])
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, len(parts)):
            init = self.root.joinpath(*parts[:i], "__init__.py")
            if not init.exists():
                init.write_text("", encoding="utf-8")
        src = textwrap.dedent(source).replace("REG", f"{self.prefix}_reg")
        (folder / f"{parts[-1]}.py").write_text(src, encoding="utf-8")
        importlib.invalidate_caches()
        return full

    def dist(self, name: str, entry_points: dict[str, str], group: str = GROUP) -> None:
        """A fake installed distribution declaring `entry_points` in `group`."""
        write_dist_info(self.root, name, "1.0", group, entry_points)

    def registry(self) -> Registry[Any, Any]:
        """The registry of module `<prefix>_reg` (whose built-ins are package `<prefix>_pkg`)."""
        return importlib.import_module(f"{self.prefix}_reg").WIDGETS


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    box = Sandbox(root, f"w{uuid.uuid4().hex[:10]}")
    box.module("reg", f"""
        from pe_bench.plugins.types import PluginMeta
        from pe_bench.plugins.registry import Registry
        WIDGETS = Registry("widgets", ["{box.prefix}_pkg"], "register_widget", PluginMeta)
        register_widget = WIDGETS.register
    """)
    box.module("pkg.gears", """
        from REG import register_widget

        @register_widget("gear")
        class Gear:
            pass

        @register_widget("cog")
        def cog():
            return "cog"
    """)
    yield box
    for mod in [m for m in sys.modules if m.startswith(box.prefix)]:
        del sys.modules[mod]
    importlib.invalidate_caches()


def test_decorator_builtins_are_indexed_without_import_and_loaded_on_get(sandbox: Sandbox) -> None:
    widgets = sandbox.registry()
    assert widgets.group == GROUP
    gears = f"{sandbox.prefix}_pkg.gears"
    infos = widgets.infos()
    assert set(infos) == {"gear", "cog"}
    assert infos["gear"].builtin and infos["gear"].target == gears
    assert gears not in sys.modules  # found by reading the source
    gear = widgets.get("gear")
    assert gears in sys.modules
    assert gear.__name__ == "Gear"
    assert widgets.get("cog")() == "cog"
    assert widgets.names() == ["cog", "gear"]


def test_decorator_in_hand_imported_module_registers_with_module_origin(sandbox: Sandbox) -> None:
    widgets = sandbox.registry()
    extra = sandbox.module("extra", """
        from REG import register_widget

        @register_widget("sprocket")
        class Sprocket:
            pass
    """)
    assert "sprocket" not in widgets.names()
    with pytest.raises(PluginError, match="unknown widget 'sprocket'"):
        widgets.get("sprocket")
    importlib.import_module(extra)
    info = widgets.infos()["sprocket"]
    assert (info.origin, info.builtin) == (f"module {extra}", False)
    assert widgets.get("sprocket").__name__ == "Sprocket"


def test_two_objects_under_one_name_is_an_error_naming_both_origins(sandbox: Sandbox) -> None:
    source = """
        from REG import register_widget

        @register_widget("sprocket")
        class Sprocket:
            pass
    """
    first, second = sandbox.module("first", source), sandbox.module("second", source)
    importlib.import_module(first)
    with pytest.raises(PluginError) as err:
        importlib.import_module(second)
    message = str(err.value)
    assert "widget 'sprocket' is registered twice" in message
    assert f"module {first}" in message and f"module {second}" in message
    assert "\n" not in message


def test_same_object_registered_twice_is_fine(sandbox: Sandbox) -> None:
    widgets = sandbox.registry()

    class Spring:
        pass

    assert widgets.register("spring")(Spring) is Spring
    assert widgets.register("spring")(Spring) is Spring
    widgets.add("spring", Spring, "somewhere")
    assert widgets.get("spring") is Spring


def test_clash_between_builtin_and_decorated_object(sandbox: Sandbox) -> None:
    widgets = sandbox.registry()
    widgets.get("gear")

    class FakeGear:
        pass

    with pytest.raises(PluginError) as err:
        widgets.register("gear")(FakeGear)
    gears, here = f"module {sandbox.prefix}_pkg.gears", f"module {__name__}"
    assert f"widget 'gear' is registered twice: by {gears} and by {here}" in str(err.value)
    assert widgets.get("gear").__name__ == "Gear"


# -- entry points ----------------------------------------------------------------------------
def test_entry_point_is_listed_with_its_distribution_and_loaded_lazily(sandbox: Sandbox) -> None:
    ext = sandbox.module("ext", """
        class Flywheel:
            pass
    """)
    sandbox.dist("widgetco", {"flywheel": f"{ext}:Flywheel"})
    widgets = sandbox.registry()
    info = widgets.infos()["flywheel"]
    assert (info.origin, info.target, info.builtin) == ("widgetco", f"{ext}:Flywheel", False)
    assert widgets.names() == ["cog", "flywheel", "gear"]
    assert ext not in sys.modules
    flywheel = widgets.get("flywheel")
    assert ext in sys.modules
    assert flywheel.__name__ == "Flywheel"
    assert widgets.get("flywheel") is flywheel
    assert widgets.infos()["flywheel"].origin == "widgetco"


def test_entry_point_module_that_also_uses_the_decorator(sandbox: Sandbox) -> None:
    ext = sandbox.module("deco_ext", """
        from REG import register_widget

        @register_widget("flywheel")
        class Flywheel:
            pass
    """)
    sandbox.dist("widgetco", {"flywheel": f"{ext}:Flywheel"})
    widgets = sandbox.registry()
    assert widgets.get("flywheel").__name__ == "Flywheel"
    assert widgets.infos()["flywheel"].origin == "widgetco"


def test_unknown_name_suggests_an_entry_point(sandbox: Sandbox) -> None:
    ext = sandbox.module("ext", "class Flywheel:\n    pass\n")
    sandbox.dist("widgetco", {"flywheel": f"{ext}:Flywheel"})
    with pytest.raises(PluginError, match="unknown widget 'flywhel'; did you mean 'flywheel'"):
        sandbox.registry().get("flywhel")


def test_two_distributions_claiming_one_name_fail_on_get(sandbox: Sandbox) -> None:
    ext = sandbox.module("ext", "class A:\n    pass\nclass B:\n    pass\n")
    sandbox.dist("alpha-widgets", {"gizmo": f"{ext}:A"})
    sandbox.dist("beta-widgets", {"gizmo": f"{ext}:B"})
    widgets = sandbox.registry()
    assert "gizmo" in widgets.names()  # listed, so `pe-bench list` shows the clash
    assert "alpha-widgets" in widgets.infos()["gizmo"].origin
    with pytest.raises(PluginError) as err:
        widgets.get("gizmo")
    message = str(err.value)
    assert "'gizmo' is claimed by two packages" in message
    assert "alpha-widgets" in message and "beta-widgets" in message
    assert "\n" not in message
    assert ext not in sys.modules
    assert widgets.get("gear").__name__ == "Gear"  # the rest of the registry still works


def test_entry_point_with_a_builtin_name_is_one_line_naming_both_not_a_warning(sandbox: Sandbox) -> None:
    ext = sandbox.module("ext", "class EvilGear:\n    pass\n")
    sandbox.dist("widgetco", {"gear": f"{ext}:EvilGear"})
    widgets = sandbox.registry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infos = widgets.infos()
    assert (infos["gear"].origin, infos["gear"].builtin) == (BUILTIN_ORIGIN, True)
    assert "widgetco" in str(infos["gear"].problem)  # what `pe-bench list` shows
    with pytest.raises(PluginError) as err:
        widgets.get("gear")
    message = str(err.value)
    assert message.startswith("widget 'gear' is claimed by the built-in")
    assert f"{sandbox.prefix}_pkg.gears" in message and "widgetco 1.0" in message
    assert "\n" not in message
    assert ext not in sys.modules
    assert widgets.get("cog")() == "cog"  # the rest of the registry still works


def test_entry_points_of_other_groups_are_ignored(sandbox: Sandbox) -> None:
    ext = sandbox.module("ext", "class Thing:\n    pass\n")
    sandbox.dist("otherco", {"thing": f"{ext}:Thing"}, group="pe_bench.gadgets")
    assert "thing" not in sandbox.registry().names()
    assert "thing" not in ATTACKS.names()


@pytest.mark.parametrize(
    ("source", "target_attr", "expected"),
    [
        ("import pe_bench_no_such_dependency_xyz\n", "Thing", "No module named"),
        ("raise RuntimeError('libfoo.so missing\\nsee https://example.org for help')\n", "Thing",
         "libfoo.so missing"),
        ("raise ImportError()\n", "Thing", "ImportError"),
        ("class Other:\n    pass\n", "Thing", "Thing"),
        ("def broken(:\n", "Thing", "_broken.py, line 1"),
    ],
    ids=["missing-dependency", "multi-line-error", "empty-message", "missing-attribute",
         "syntax-error"],
)
def test_broken_entry_point_is_a_one_line_error_naming_the_distribution(
    sandbox: Sandbox, source: str, target_attr: str, expected: str
) -> None:
    broken = sandbox.module("broken", source)
    sandbox.dist("brokenco", {"broken": f"{broken}:{target_attr}"})
    widgets = sandbox.registry()
    assert widgets.infos()["broken"].origin == "brokenco"  # listing never imports it
    with pytest.raises(PluginError) as err:
        widgets.get("broken")
    message = str(err.value)
    assert message.startswith("widget 'broken' from brokenco failed to import: ")
    assert expected in message
    assert "\n" not in message
    assert message.rstrip() == message and not message.endswith(": ")


def test_listing_does_not_warn_without_clashes(sandbox: Sandbox) -> None:
    ext = sandbox.module("ext", "class Flywheel:\n    pass\n")
    sandbox.dist("widgetco", {"flywheel": f"{ext}:Flywheel"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sandbox.registry().infos()


# -- metadata declared in the decorator ------------------------------------------------------
def test_declared_metadata_is_read_from_source_and_set_on_the_class(sandbox: Sandbox) -> None:
    sandbox.module("reg", f"""
        from pe_bench.plugins.types import AttackMeta
        from pe_bench.plugins.registry import Registry
        WIDGETS = Registry("widgets", ["{sandbox.prefix}_pkg"], "register_widget", AttackMeta)
        register_widget = WIDGETS.register
    """)
    sandbox.module("pkg.gears", """
        from REG import register_widget

        @register_widget("gear", modalities=("image", "text"), family="backdoor")
        class Gear:
            pass
    """)
    widgets = sandbox.registry()
    gears = f"{sandbox.prefix}_pkg.gears"
    meta = widgets.metadata("gear")
    assert (meta.modalities, meta.family, meta.stage) == (("image", "text"), "backdoor", "data")
    assert gears not in sys.modules  # read from the decorator, not from the class
    gear = widgets.get("gear")
    assert gear.modalities == ("image", "text") and gear.family == "backdoor"
    assert widgets.metadata("gear") == meta == widgets.declared("gear")


@pytest.mark.parametrize(("decorator", "expected"), [
    ('@register_widget("gear", colour=COLOUR)',
     "gears.py:5: @register_widget('gear'): plugin metadata must be a literal"),
    ('@register_widget("gear", colour="red")',
     "widget 'gear': bad metadata {'colour': 'red'}: colour: Extra inputs"),
], ids=["not-a-literal", "unknown-key"])
def test_bad_metadata_is_one_line(sandbox: Sandbox, decorator: str, expected: str) -> None:
    sandbox.module("pkg.gears", f"""
        from REG import register_widget
        COLOUR = "red"

        {decorator}
        class Gear:
            pass
    """)
    with pytest.raises(PluginError) as err:
        sandbox.registry().metadata("gear")
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_params_model_of_an_encoder_needs_no_torch() -> None:
    code = textwrap.dedent("""
        import sys
        from pe_bench.plugins.registry import ENCODERS
        models = {n: ENCODERS.params_model(n).__module__ for n in ENCODERS.names()}
        print(sorted(set(models.values())), "torch" in sys.modules)
    """)
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['pe_bench.encoders.params'] False"
