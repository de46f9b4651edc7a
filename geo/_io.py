"""Atomic file output and small I/O helpers shared by the stages.

Every output is written to a temporary name in the destination folder and renamed into
place only once complete, so an interrupted run never leaves a half-written file under
its final name.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import json
import lzma
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from geo.errors import InputFileError

__all__ = [
    "COMPRESSED_SUFFIXES",
    "atomic_path",
    "is_stale",
    "libosmium_readable",
    "open_maybe_compressed",
    "read_parquet_cached",
    "read_parquet_metadata",
    "write_json_atomic",
    "write_parquet",
    "write_text_atomic",
]

#: Compression suffixes read transparently by :func:`open_maybe_compressed`.
COMPRESSED_SUFFIXES = (".gz", ".xz", ".bz2")
#: Errors a corrupt compressed stream raises while being read.
DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError)


def open_maybe_compressed(
    path: str | os.PathLike[str], mode: str = "rb", *, suffix: str | None = None, **kwargs: Any
) -> IO[Any]:
    """Open ``path``, decompressing ``.gz``, ``.xz`` or ``.bz2`` on the fly.

    The compression is given by ``suffix`` (default: the file's own suffix). ``mode`` is
    ``"rb"`` or ``"rt"``; text mode takes ``encoding``/``errors`` keywords.
    """
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}.get(
        (suffix or Path(path).suffix).lower()
    )
    if opener is None:
        return open(path, mode, **kwargs)  # noqa: PTH123 (caller closes)
    return opener(path, mode, **kwargs)  # type: ignore[operator]  # the 3 opens differ in stubs


@contextlib.contextmanager
def libosmium_readable(path: Path) -> Iterator[Path]:
    """A path libosmium can read: ``.xz`` (which it does not read) is decompressed to a
    temporary file for the duration of the block; other files are yielded as they are."""
    if path.suffix.lower() != ".xz":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="pvdgeo-osm-") as tmp:
        plain = Path(tmp) / path.with_suffix("").name
        try:
            with lzma.open(path) as src, plain.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except DECOMPRESSION_ERRORS as exc:
            raise InputFileError(f"OSM file {path}: not a valid .xz file ({exc})") from None
        yield plain


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` on success.

    The temporary file keeps the final suffix (drivers that pick a format from the
    extension still work). On any exception the temporary file is removed and
    ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=f".part{suffix or final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # let the writer create it (some drivers refuse an existing empty file)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"writer produced no file at {tmp}")
        tmp.replace(final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        for extra in tmp.parent.glob(tmp.name + "-*"):  # SQLite journals (-wal, -shm)
            with contextlib.suppress(FileNotFoundError):
                extra.unlink()
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8, atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], data: Any, **dumps: Any) -> Path:
    """Write ``data`` as pretty UTF-8 JSON, atomically; returns the path.

    ``dumps`` keywords override the defaults (``ensure_ascii=False, indent=2``)."""
    options = {"ensure_ascii": False, "indent": 2, "default": str, **dumps}
    return write_text_atomic(path, json.dumps(data, **options) + "\n")


def write_parquet(
    df: Any, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write a (Geo)DataFrame to Parquet atomically, with ``metadata`` stored as JSON under
    the ``pvdgeo`` key of the file's key-value metadata (vintages, sources, CRS...).

    GeoDataFrames are written as GeoParquet (``geopandas.read_parquet`` reads them back);
    read the metadata with :func:`read_parquet_metadata`.
    """
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    buffer.seek(0)
    table = pq.read_table(buffer)
    if metadata:
        existing = dict(table.schema.metadata or {})
        existing[b"pvdgeo"] = json.dumps(metadata, ensure_ascii=False, default=str).encode()
        table = table.replace_schema_metadata(existing)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def read_parquet_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``pvdgeo`` metadata written by :func:`write_parquet` (``{}`` if none)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(b"pvdgeo")
    return json.loads(raw) if raw else {}


def is_stale(target: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> bool:
    """Whether ``target`` must be rebuilt: it is missing or older than one of ``inputs``
    (make's rule, for the national tables cached in ``data/interim``)."""
    target = Path(target)
    if not target.exists():
        return True
    built = target.stat().st_mtime
    return any(Path(p).stat().st_mtime > built for p in inputs)


def read_parquet_cached(path: str | os.PathLike[str]) -> Any:
    """A (Geo)Parquet table read once per process and file version (path, modification
    time, size); each call returns a copy. GeoParquet comes back as a GeoDataFrame."""
    path = Path(path)
    stat = path.stat()
    return _read_parquet_once(str(path.resolve()), stat.st_mtime_ns, stat.st_size).copy()


@functools.lru_cache(maxsize=8)
def _read_parquet_once(path: str, mtime_ns: int, size: int) -> Any:
    import pandas as pd
    import pyarrow.parquet as pq

    if b"geo" in (pq.read_schema(path).metadata or {}):
        import geopandas as gpd

        return gpd.read_parquet(path)
    return pd.read_parquet(path)
