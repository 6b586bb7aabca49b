"""Plugin registries: decorator registration, entry points, lazy loading, did-you-mean.

Built-in plugins are found by reading the source of pe-bench's own plugin packages with `ast`
(decorator calls with a literal name and literal keyword arguments: the plugin's metadata), so
`pe-bench list`, `validate` and the grid know every name, origin and piece of metadata without
importing a plugin or torch. Third-party plugins come from the entry-point group
`pe_bench.<kind>`; the entry-point name is the registry name, and their metadata is read from
the class once imported. A plugin module imported by hand (a suite's `plugins:` list)
registers itself through the decorator.

One name, one claim: a second claim (a built-in and an entry point, two distributions, a
hand-imported module and either) is an error naming both, whatever the import order; a claim
that is no plugin class of its kind is an error too, and so is metadata that contradicts what
the class inherits (a `BackdoorAttack` subclass declared `targeted`), checked when the class
registers or loads. All are one line (`PluginError`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, cast

from pe_bench.errors import PluginError
from pe_bench.plugins.claims import Claim, claim_of, describe, same_claimant
from pe_bench.plugins.index import BUILTIN_ORIGIN, PluginInfo, build_index, import_target  # noqa: F401
from pe_bench.plugins.types import AttackMeta, DatasetMeta, DefenseMeta, EncoderMeta, PluginMeta

T = TypeVar("T")
M = TypeVar("M", bound=PluginMeta)


def _first_error(exc: ValueError) -> str:
    """A pydantic error's first problem on one line: `field: message`."""
    lines = [line.strip() for line in str(exc).splitlines()[1:3]]
    return ": ".join(lines) if lines else str(exc)


class Registry(Generic[T, M]):
    """One registry per plugin kind (attacks, defenses, encoders, datasets). `meta` is the
    kind's metadata model; `base` ("module:Class") the class every plugin must subclass."""

    def __init__(self, kind: str, builtin_modules: Iterable[str], decorator: str,
                 meta: type[M], base: str | None = None) -> None:
        self.kind, self.noun = kind, kind.removesuffix("s")
        self.group = f"pe_bench.{kind}"
        self._builtin_modules = tuple(builtin_modules)
        self._decorator, self._meta, self._base = decorator, meta, base
        self._loaded: dict[str, Claim] = {}
        self._index: dict[str, PluginInfo] | None = None

    # -- registration -------------------------------------------------------------------
    def register(self, name: str, *, params: str | None = None, **declared: Any) -> Callable[[T], T]:
        """Class decorator registering a plugin under `name`; the keywords are its metadata
        (literals, read from source for built-ins), set on the class:
        `@register_attack("my-attack", family="targeted", stage="data", modalities=("image",))`,
        `@register_defense("my-defense")` (none: its metadata is read from its code),
        `@register_encoder("my-encoder", params="module:Params", modalities=("image",))`
        (`params`: its torch-free Params class), `@register_dataset("my-data")`. Metadata that
        contradicts what the class inherits (a `BackdoorAttack` declared targeted) is an error."""

        def deco(obj: T) -> T:
            if declared and not self._meta.literal:
                raise PluginError(f"{self.noun} {name!r}: its metadata is read from its code; "
                                  f"@{self._decorator} takes none ({', '.join(declared)})")
            meta, claim = self._validated_meta(name, declared), claim_of(obj)
            self._check_kind(name, obj, claim.origin)
            if params is not None and import_target(params) is not getattr(obj, "Params", None):
                raise PluginError(f"{self.noun} {name!r}: params={params!r} is not its Params class")
            meta.apply(obj, declared)
            self._check_meta(name, obj, claim.origin, meta)
            self.add(name, obj, claim)
            return obj

        return deco

    def add(self, name: str, obj: T, claim: Claim | str) -> None:
        claim = claim if isinstance(claim, Claim) else Claim(obj, claim, claim)
        present = self._loaded.get(name)
        if present is not None and present.obj is not obj:
            raise PluginError(f"{self.noun} {name!r} is registered twice: by {present.origin} "
                              f"and by {claim.origin}")
        indexed = self.indexed().get(name)
        if present is None and indexed is not None:
            if not same_claimant(indexed, obj):
                raise PluginError(f"{self.noun} {name!r} is registered twice: by {indexed.origin} "
                                  f"({indexed.target or 'entry points'}) and by {claim.origin}")
            if not indexed.builtin:  # its distribution, however its module was imported
                claim = Claim(obj, indexed.origin, f"{indexed.origin} {indexed.version}".strip())
        self._loaded[name] = claim

    def _validated_meta(self, name: str, declared: Mapping[str, Any]) -> M:
        try:
            return self._meta.model_validate(declared)
        except ValueError as exc:
            raise PluginError(f"{self.noun} {name!r}: bad metadata {dict(declared)}: "
                              f"{_first_error(exc)}") from None

    def _check_kind(self, name: str, obj: Any, origin: str) -> None:
        if self._base is None:
            return
        base = import_target(self._base)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginError(f"{self.noun} {name!r} from {origin} is {describe(obj)}, not a "
                              f"{base.__module__}.{base.__qualname__} subclass")

    def _check_meta(self, name: str, obj: Any, origin: str, meta: M) -> None:
        problem = meta.contradiction(obj, import_target(self._base)) if self._base else None
        if problem:
            raise PluginError(f"{self.noun} {name!r} from {origin}: {problem}")

    def _class_meta(self, name: str, plugin: Any) -> M:
        """The metadata a loaded plugin class declares as class attributes."""
        try:
            return self._meta.of(plugin)
        except ValueError as exc:
            raise PluginError(f"{self.noun} {name!r}: bad metadata: {_first_error(exc)}") from None

    # -- discovery without import ----------------------------------------------------------
    def indexed(self) -> dict[str, PluginInfo]:
        """Built-ins and entry points, read from source and package metadata (no import)."""
        if self._index is None:
            self._index = build_index(self._builtin_modules, self._decorator, self.group)
        return self._index

    def infos(self) -> dict[str, PluginInfo]:
        """Every known plugin, built-ins first; imports neither plugins nor torch."""
        index = self.indexed()
        extra = {n: PluginInfo(n, c.origin, "", False) for n, c in self._loaded.items() if n not in index}
        return {**index, **extra}

    def names(self) -> list[str]:
        return sorted(self.infos())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.infos()

    # -- lookup ----------------------------------------------------------------------------
    def info(self, name: str) -> PluginInfo:
        """The plugin's info; unknown or unusable names are a one-line PluginError."""
        info = self.infos().get(name)
        if info is None:
            raise PluginError(self.unknown_message(name))
        if info.problem:
            raise PluginError(f"{self.noun} {name!r} {info.problem}")
        return info

    def get(self, name: str) -> T:
        """The plugin registered under `name`, importing its module on first use."""
        info = self.info(name)
        if name not in self._loaded:
            if info.builtin:
                importlib.import_module(info.target)
            else:
                self._load_entry_point(name, info)
        if name not in self._loaded:
            raise PluginError(f"{self.noun} {name!r}: {info.target} did not register it")
        return self._loaded[name].obj  # type: ignore[no-any-return]

    def _load_entry_point(self, name: str, info: PluginInfo) -> None:
        origin = f"{info.origin} {info.version}".strip()
        try:
            obj = import_target(info.target)
        except PluginError:  # its module's own registration (e.g. a decorator) refused it
            raise
        except Exception as exc:  # a broken third-party plugin: say which one
            raise PluginError(f"{self.noun} {name!r} from {info.origin} failed to import: "
                              f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from exc
        self._check_kind(name, obj, info.origin)
        self._check_meta(name, obj, info.origin, self._class_meta(name, obj))
        self._loaded.pop(name, None)  # the decorator may have registered it by module
        self.add(name, obj, Claim(obj, info.origin, origin))

    def check(self, name: str) -> str | None:
        """Why `name` cannot be used (one line), or None. A third-party plugin is imported to
        check it is a plugin class of this kind; built-ins are checked by the contract tests."""
        try:
            if not self.info(name).builtin:
                self.get(name)
        except PluginError as exc:
            return str(exc)
        return None

    def metadata(self, name: str) -> M:
        """What the grid needs to know: a built-in's declared metadata (no import), else the
        metadata the loaded class declares."""
        declared = self.declared(name) if name not in self._loaded else None
        if declared is not None:
            return declared
        return self._class_meta(name, self.get(name))

    def declared(self, name: str) -> M | None:
        """A built-in's metadata as its decorator declares it (read from source), or None
        where the registry learns it from the class (third-party, or derived from code)."""
        info = self.info(name)
        if not (info.builtin and self._meta.literal):
            return None
        return self._validated_meta(name, {k: v for k, v in info.declared.items() if k != "params"})

    def params_model(self, name: str) -> Any:
        """The plugin's Params model: for a built-in that names a torch-free one (`params=` in
        its decorator), imported from there without importing the plugin."""
        info = self.info(name)
        target = info.declared.get("params")
        if info.builtin and target and name not in self._loaded:
            return import_target(str(target))
        return cast(Any, self.get(name)).Params

    def provenance(self, name: str) -> str:
        """"<distribution> <version>" of the code behind `name`, or for an unpackaged module
        "module <name> sha256:<source hash>"."""
        info = self.info(name)
        if name in self._loaded:
            return self._loaded[name].provenance
        return f"{info.origin} {info.version}".strip()

    def unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.noun} {name!r}{hint} (known: {', '.join(known) or 'none'})"


ATTACKS: Registry[Any, AttackMeta] = Registry(
    "attacks", ["pe_bench.attacks"], "register_attack", AttackMeta, "pe_bench.attacks.base:Attack")
DEFENSES: Registry[Any, DefenseMeta] = Registry(
    "defenses", ["pe_bench.defenses"], "register_defense", DefenseMeta, "pe_bench.defenses.base:Defense")
ENCODERS: Registry[Any, EncoderMeta] = Registry(
    "encoders", ["pe_bench.encoders"], "register_encoder", EncoderMeta,
    "pe_bench.encoders.base:EncoderMethod")
DATASETS: Registry[Any, DatasetMeta] = Registry(
    "datasets", ["pe_bench.datasets"], "register_dataset", DatasetMeta, "pe_bench.datasets.base:Dataset")
REGISTRIES: dict[str, Registry[Any, Any]] = {r.kind: r for r in (ATTACKS, DEFENSES, ENCODERS, DATASETS)}
# backbones are chosen by name in an encoder's params; registered once, in encoders/backbones.py
BACKBONES: Registry[Any, PluginMeta] = Registry(
    "backbones", ["pe_bench.encoders.backbones"], "register_backbone", PluginMeta)

register_attack = ATTACKS.register
register_defense = DEFENSES.register
register_encoder = ENCODERS.register
register_dataset = DATASETS.register
register_backbone = BACKBONES.register


def provenance_of(kind: str, name: str) -> str:
    """`provenance_of("encoders", "simclr")` -> "pe-bench 0.1.0" (see `Registry.provenance`)."""
    return REGISTRIES[kind].provenance(name)


def plugin_versions(used: Mapping[str, Iterable[str]]) -> dict[str, dict[str, str]]:
    """{kind: {name: provenance}} for the plugins `used` names by kind: what a row records and
    what an artefact's cache key includes."""
    return {kind: {name: provenance_of(kind, name) for name in sorted(names)}
            for kind, names in sorted(used.items())}
