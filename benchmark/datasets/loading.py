"""Dataset loading machinery: the Parquet reader, image fitting, the decode caches, data-dir
resolution. The dataset plugin API is `pe_bench.datasets.base`; the datasets are in
`pe_bench.datasets`.

Torch-free at import, so the CLI lists datasets and validates suites without torch. Decoding is
the slow part of a trial's start: `load_dataset` keeps decoded splits as .npy files (shared by
processes) and in a memo; arrays handed out are read-only because the memo shares them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pe_bench.datasets.base import Dataset, ImageArray
from pe_bench.errors import DataError
from pe_bench.plugins.registry import DATASETS

SPLITS = ("train", "test")
IMAGE_COLUMNS = ("img", "image")
LABEL_COLUMN = "label"
_CACHE_FORMAT = 1  # bump when the cached layout or the decoding changes
_MEMO_SIZE = 4
_MEMO: OrderedDict[tuple[Any, ...], ImageArray] = OrderedDict()


def _user_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pe-bench"


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """Where datasets live: `explicit` (the CLI's --data-dir), else $PE_BENCH_DATA, else the
    per-user cache; made absolute so Ray workers with another working directory agree."""
    chosen = explicit if explicit is not None and str(explicit) else os.environ.get("PE_BENCH_DATA")
    return Path(chosen).expanduser().absolute() if chosen else _user_cache_root() / "data"


def cache_dir() -> Path:
    """Root of pe-bench's caches: $PE_BENCH_CACHE, else the per-user cache directory."""
    env = os.environ.get("PE_BENCH_CACHE")
    return Path(env).expanduser().absolute() if env else _user_cache_root() / "cache"


def files_token(files: Iterable[Path]) -> str:
    """Identity of source files (path, size, mtime): editing a file invalidates its cache."""
    digest = hashlib.sha256()
    for path in sorted(Path(p).absolute() for p in files):
        try:
            st = path.stat()
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def stack_images(
    images: Iterable[Image.Image], count: int, resolution: int, channels: int
) -> np.ndarray:
    """PIL images as one (N, C, H, W) uint8 array in RGB or L, resized bilinearly if needed;
    filled in place, so a split never exists as N separate arrays."""
    shape, size = (resolution, resolution, channels), (resolution, resolution)
    out = np.empty((count, *shape), dtype=np.uint8)
    done = 0
    for done, image in enumerate(images, 1):
        image = image.convert("RGB" if channels == 3 else "L")
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        out[done - 1] = np.asarray(image, dtype=np.uint8).reshape(shape)
    if done != count:
        raise ValueError(f"expected {count} images, got {done}")
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def fit_images(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """Bring uint8 (N, C, H, W) arrays to the requested size and channels (no-op if they match)."""
    n, c, h, w = images.shape
    if (c, h, w) == (channels, resolution, resolution):
        return images
    pils = (Image.fromarray(x[0] if c == 1 else x.transpose(1, 2, 0)) for x in images)
    return stack_images(pils, n, resolution, channels)


def image_digests(images: np.ndarray) -> np.ndarray:
    """One 16-byte digest per image of its shape and pixels: the identity by which one image
    is recognised in another split or dataset (same pixels, same image, whatever its label)."""
    shape = repr(images.shape[1:]).encode()
    return np.array([hashlib.blake2b(shape + np.ascontiguousarray(x).tobytes(), digest_size=16).digest()
                     for x in images], dtype="S16")


def parquet_files(directory: Path, split: str) -> list[Path]:
    """The files of one split, `<split>-*.parquet`, in name order (the shard order)."""
    return sorted(directory.glob(f"{split}-*.parquet")) if directory.is_dir() else []


def locate_split(source: str, parquet_dir: Path, split: str, native: str,
                 native_files: Callable[[], list[Path]]) -> tuple[str, list[Path]] | None:
    """Where `split` comes from: Parquet files first (when `source` allows), then the
    dataset's own distributed layout (`native`); None when neither is present."""
    if source in ("auto", "parquet"):
        files = parquet_files(parquet_dir, split)
        if files:
            return "parquet", files
    if source in ("auto", native):
        files = native_files()
        if files:
            return native, files
    return None


def source_token(found: tuple[str, list[Path]] | None) -> str | None:
    """Decode-cache token of a located split: its source and its files' identity."""
    return None if found is None else f"{found[0]}:{files_token(found[1])}"


SOURCE_NAMES = {"parquet": "Parquet", "torchvision": "torchvision's layout", "files": "distributed files"}


def describe_source(found: tuple[str, list[Path]]) -> str:
    """Where a located split is, for `pe-bench validate`: the folder holding its files and
    their kind, e.g. `/data/cifar10 (Parquet)`."""
    kind, files = found
    folder = Path(os.path.commonpath(files)) if len(files) > 1 else files[0].parent
    return f"{folder} ({SOURCE_NAMES.get(kind, kind)})"


def parquet_class_names(path: Path) -> tuple[str, ...] | None:
    """Class names of the Hugging Face ClassLabel in a file's schema metadata, if present."""
    try:
        meta = pq.read_schema(path).metadata or {}
        names = json.loads(meta[b"huggingface"])["info"]["features"][LABEL_COLUMN]["names"]
    except (OSError, pa.ArrowException) as exc:  # first: ArrowInvalid is also a ValueError
        raise DataError(f"cannot read {path}: {first_line(exc)}") from exc
    except (KeyError, TypeError, ValueError):  # no or unusual metadata
        return None
    return tuple(str(n) for n in names) if isinstance(names, list) else None


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line: DataError messages are printed as one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_parquet_file(path: Path) -> tuple[list[bytes | None], np.ndarray]:
    """Encoded image bytes and labels of one file (struct {bytes, path} or plain binary)."""
    try:
        pfile = pq.ParquetFile(path)
        names = pfile.schema_arrow.names
        image_col = next((c for c in IMAGE_COLUMNS if c in names), None)
        if image_col is None or LABEL_COLUMN not in names:
            raise DataError(f"{path}: expected columns img (or image) and label, not {names}")
        table = pfile.read(columns=[image_col, LABEL_COLUMN])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from exc
    blobs: list[bytes | None] = []
    for chunk in table.column(image_col).chunks:
        field = chunk.field("bytes") if pa.types.is_struct(chunk.type) else chunk
        blobs.extend(field.to_pylist())
    labels = table.column(LABEL_COLUMN)
    if labels.null_count:
        raise DataError(f"{path}: column 'label' has {labels.null_count} missing values")
    return blobs, labels.to_numpy().astype(np.int64)


def _decode_blobs(blobs: list[bytes | None], where: Path) -> Iterable[Image.Image]:
    """Decode JPEG/PNG bytes one by one, naming the row of a broken image."""
    for row, blob in enumerate(blobs):
        try:
            image = Image.open(io.BytesIO(blob or b""))
            image.load()
        except (OSError, ValueError) as exc:
            raise DataError(f"{where}: row {row}: cannot decode: {first_line(exc)}") from exc
        yield image


def read_parquet_split(directory: Path, split: str, resolution: int, channels: int) -> ImageArray:
    """Read and decode `<split>-*.parquet` in `directory` (the Hugging Face image export)."""
    files = parquet_files(directory, split)
    if not files:
        raise DataError(f"no Parquet files {directory / f'{split}-*.parquet'}")
    parts = [_read_parquet_file(path) for path in files]
    blobs = [blob for file_blobs, _ in parts for blob in file_blobs]
    y = np.concatenate([file_labels for _, file_labels in parts])
    names = parquet_class_names(files[0]) or tuple(str(i) for i in range(y.max(initial=-1) + 1))
    if len(y) and (y.min() < 0 or y.max() >= len(names)):
        raise DataError(f"{directory}: labels {y.min()}..{y.max()} but {len(names)} class names")
    decoded = _decode_blobs(blobs, directory / f"{split}-*.parquet")
    images = stack_images(decoded, len(blobs), resolution, channels)
    return ImageArray(images, y, names)


def clear_memo() -> None:
    """Forget the in-process memo (tests; freeing memory between suites)."""
    _MEMO.clear()


def _cache_path(name: str, split: str, plugin: Dataset, token: str) -> Path:
    kind, params = type(plugin), plugin.params.model_dump(mode="json")
    key = json.dumps([_CACHE_FORMAT, kind.__module__, kind.__qualname__, token, params])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return cache_dir() / "decoded" / f"{safe}-{split}-{digest}"


def _read_cache(path: Path) -> ImageArray | None:
    """A complete cache entry (meta.json is written last), or None to decode again."""
    if not (path / "meta.json").is_file():
        return None
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        images = np.load(path / "images.npy", allow_pickle=False)
        labels = np.load(path / "labels.npy", allow_pickle=False)
        return ImageArray(images, labels, tuple(meta["classes"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"pe-bench: ignoring broken decode cache {path}: {exc}", stacklevel=3)
        return None


def _atomic_write(target: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write via a temporary file and os.replace, so readers never see a partial file."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_cache(path: Path, data: ImageArray) -> None:
    """Store a decoded split; a cache that cannot be written only costs time, so warn."""
    meta = json.dumps({"classes": list(data.classes), "count": len(data)}).encode()
    try:
        path.mkdir(parents=True, exist_ok=True)
        _atomic_write(path / "images.npy", lambda f: np.save(f, data.images))
        _atomic_write(path / "labels.npy", lambda f: np.save(f, data.labels))
        _atomic_write(path / "meta.json", lambda f: f.write(meta))  # last: marks it complete
    except OSError as exc:
        warnings.warn(f"pe-bench: decode cache not written to {path}: {exc}", stacklevel=3)


def load_dataset(
    name: str, split: str, params: Mapping[str, Any] | None, data_dir: Path
) -> ImageArray:
    """Load one split of a registered dataset, from the memo, the disk cache, or its source.

    The result's arrays are read-only (shared); copy them before editing in place."""
    plugin_cls = DATASETS.get(name)
    validated = plugin_cls.Params.model_validate(dict(params or {}))
    if split not in SPLITS:
        raise DataError(f"dataset {name!r}: unknown split {split!r} (expected train or test)")
    plugin: Dataset = plugin_cls(validated)
    data_dir = Path(data_dir)
    token = plugin.cache_token(split, data_dir)
    memo_key = (name, split, validated.model_dump_json(), str(data_dir), token)
    if memo_key in _MEMO:
        _MEMO.move_to_end(memo_key)
        return _MEMO[memo_key]
    path = _cache_path(name, split, plugin, token) if token is not None else None
    data = _read_cache(path) if path is not None else None
    if data is None:
        data = plugin.load(split, data_dir)
        if path is not None:
            _write_cache(path, data)
    for array in (data.images, data.labels):
        array.flags.writeable = False  # the memo hands the same arrays to every caller
    _MEMO[memo_key] = data
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return data
