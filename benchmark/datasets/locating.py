"""Finding a suite's data before anything runs.

Every (dataset, split) a grid's trials read, each pre-training dataset's train split and each
task's train and test splits, is located by its plugin's `Dataset.locate`: files found, none
read. So a missing dataset is one line (DataError, exit status 2) before the first trial instead
of an error row per trial minutes later, and `pe-bench validate` shows where each one was found.
A dataset whose plugin cannot locate its files (`locate` returns None) is not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pe_bench.config.spec import PluginRef, TrialSpec
from pe_bench.datasets.base import Dataset
from pe_bench.datasets.loading import SPLITS, first_line
from pe_bench.errors import DataError
from pe_bench.plugins.registry import DATASETS

NOT_CHECKED = "not checked (its plugin does not say where its files are)"


@dataclass(frozen=True)
class Located:
    """Where one split of a dataset (its registry name) is; `where` None: not checked."""

    dataset: str
    split: str
    where: str | None


@dataclass(frozen=True)
class DataCheck:
    """The splits a grid reads, located under `data_dir`; `skipped` says why none was looked
    for (then `found` is empty)."""

    data_dir: Path
    found: tuple[Located, ...] = ()
    skipped: str | None = None

    def by_dataset(self) -> dict[str, str]:
        """Per dataset, in order of first use: where it is (one place for all its splits), or
        each split's place ("train ...; test ...")."""
        places: dict[str, dict[tuple[str, str], None]] = {}
        for item in self.found:
            where = NOT_CHECKED if item.where is None else item.where
            places.setdefault(item.dataset, {})[(item.split, where)] = None
        shown = {}
        for name, pairs in places.items():
            wheres = list(dict.fromkeys(where for _, where in pairs))
            shown[name] = wheres[0] if len(wheres) == 1 else "; ".join(f"{s} {w}" for s, w in pairs)
        return shown

    def report(self) -> list[str]:
        """`pe-bench validate`'s lines: the data dir, then where each dataset is."""
        if self.skipped:
            return [f"  data in {self.data_dir}: {self.skipped}"]
        return [f"  data in {self.data_dir}:", *(f"    {n}: {w}" for n, w in self.by_dataset().items())]


def splits_read(trials: Iterable[TrialSpec]) -> list[tuple[PluginRef, str]]:
    """Each (dataset with its params, split) the trials read, once, in order of first use."""
    seen: dict[tuple[str, str], tuple[PluginRef, str]] = {}
    for trial in trials:
        reads = [(ref, "train") for ref in trial.pretrain.refs()]
        reads += [(task.dataset, split) for task in trial.tasks for split in SPLITS]
        for ref, split in reads:
            seen.setdefault((ref.model_dump_json(), split), (ref, split))
    return list(seen.values())


def locate_one(ref: PluginRef, split: str, data_dir: Path) -> Located:
    """Ask the dataset's plugin where `split` is (raises DataError when it is missing)."""
    plugin: Dataset = DATASETS.get(ref.name).from_dict(ref.params)
    try:
        where = plugin.locate(split, data_dir)
    except OSError as exc:  # an unreadable folder on the way
        raise DataError(f"dataset {ref.name!r} ({split}): cannot look for its files under {data_dir}: "
                        f"{first_line(exc)}") from exc
    return Located(ref.name, split, where)


def locate_data(trials: Iterable[TrialSpec], data_dir: Path) -> DataCheck:
    """Locate every split the trials read under `data_dir`. A missing one raises DataError:
    the first one's message (what was looked for where, and how to point at it), followed by
    the names of the others missing."""
    found: list[Located] = []
    missing: dict[str, DataError] = {}
    for ref, split in splits_read(trials):
        try:
            found.append(locate_one(ref, split, data_dir))
        except DataError as exc:
            missing.setdefault(f"{ref.name} ({split})", exc)
    if missing:
        first, *others = missing.values()
        more = f"; also missing: {', '.join(list(missing)[1:])}" if others else ""
        raise DataError(first_line(first) + more) from first
    return DataCheck(data_dir, tuple(found))
