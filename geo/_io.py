"""Atomic file output and small I/O helpers shared by the stages.

Every output is written to a temporary name in the destination folder and renamed into
place only once complete, so an interrupted run never leaves a half-written file under
its final name.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import functools
import glob
import gzip
import json
import logging
import lzma
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from geo.errors import BadArgumentError, GeoError, InputFileError, OutputError

__all__ = [
    "COMPRESSED_SUFFIXES",
    "FORMAT_SUFFIXES",
    "atomic_path",
    "check_output_file",
    "check_suffix",
    "describe_os_error",
    "ensure_writable_dir",
    "head_text",
    "is_stale",
    "libosmium_readable",
    "open_maybe_compressed",
    "read_delimited",
    "read_parquet_cached",
    "read_parquet_metadata",
    "sweep_stale_temps",
    "temp_path",
    "to_number",
    "write_json_atomic",
    "write_parquet",
    "write_text_atomic",
]

log = logging.getLogger(__name__)

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


#: Temporary files of :func:`atomic_path` and of downloads: ``.<final>.<pid>-<tag>.part...``
#: beside their target (plus SQLite's ``-journal``/``-wal``/``-shm`` sidecars).
_TEMP_NAME = re.compile(r"^\.(?P<final>.+?)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.part")
#: Names of earlier versions: ``.<final>.<8 random>.part...`` (mkstemp, no pid) and
#: ``.<pid>.download.<name>`` (downloads); swept when older than an hour.
_LEGACY_TEMP_NAME = re.compile(r"^\.(?P<final>.+?)\.[a-z0-9_]{8}\.part|^\.(?P<pid>\d+)\.download\.")
_LEGACY_MAX_AGE_S = 3600.0
#: Output extensions per format name, for :func:`check_suffix`.
FORMAT_SUFFIXES = {
    "Parquet": (".parquet",),
    "JSON": (".json", ".geojson"),
    "GeoPackage": (".gpkg",),
    "PMTiles": (".pmtiles",),
}
#: errno values that mean the output cannot be written, with what to tell the user.
_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a parent is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "file name too long",
}
_FULL_HINT = "free some space, or write to another disk (the command's output option)"
_WRITABLE_HINT = "write to a writable folder (the command's output option, or data_dir)"
#: Messages of libraries (SQLite/GDAL, Arrow) that report a full disk in words only.
_DISK_FULL_WORDS = ("no space left", "disk is full", "disk full", "quota exceeded")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OverflowError:
        return False
    return True


def _is_stale_temp(entry: Path, final_name: str | None = None) -> bool:
    """Whether ``entry`` is a temporary output left by a process that no longer runs
    (killed during a write), for ``final_name`` only when given."""
    m = _TEMP_NAME.match(entry.name)
    if m:
        return (final_name in (None, m.group("final"))
                and not _pid_alive(int(m.group("pid"))))
    m = _LEGACY_TEMP_NAME.match(entry.name)
    if m is None or final_name not in (None, m.group("final")):
        return False
    if m.group("pid") and _pid_alive(int(m.group("pid"))):
        return False
    try:
        return time.time() - entry.lstat().st_mtime > _LEGACY_MAX_AGE_S
    except FileNotFoundError:
        return False


def sweep_stale_temps(folder: str | os.PathLike[str], final_name: str | None = None) -> list[Path]:
    """Remove temporary outputs that killed runs left in ``folder`` (all of them, or
    those of ``final_name``); returns what was removed. Temporaries of live processes
    are kept (a parallel run may be writing)."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and _is_stale_temp(entry, final_name):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run in %s: %s",
                 len(removed), folder, ", ".join(p.name for p in removed[:5]))
    return removed


def temp_path(final: str | os.PathLike[str], *, tag: str = "tmp", suffix: str = "") -> Path:
    """A fresh temporary name beside ``final`` (not created), in the swept naming scheme:
    ``.<final name>.<pid>-<tag><random>.part<suffix>``."""
    final = Path(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}-{tag}",
                                suffix=f".part{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # let the writer create it (some drivers refuse an existing empty file)
    return tmp


def describe_os_error(exc: OSError) -> str:
    """``exc`` in words: what happened (no space left, read-only...) and on which path."""
    where = exc.filename if exc.filename is not None else ""
    if exc.errno == errno.ENOENT and where:
        return f"{where} does not exist"
    return f"{_reason(exc)} ({where})" if where else _reason(exc)


def _reason(exc: OSError) -> str:
    return _WRITE_ERRNOS.get(exc.errno or 0) or exc.strerror or str(exc)


def _write_failure(final: Path, tmp: Path | None, exc: BaseException) -> OutputError | None:
    """An :class:`OutputError` for a write to ``final`` (through ``tmp``) that failed for
    a reason of the disk or the folder (an errno, or a library's words for a full disk);
    None for any other failure (a bad input read while writing, a bug)."""
    if isinstance(exc, GeoError):
        return None
    code = exc.errno if isinstance(exc, OSError) else None
    if isinstance(exc, OSError) and exc.filename is not None:
        name = str(exc.filename)
        if not (name.startswith(str(tmp)) if tmp else False) and Path(name) not in (
                final, final.parent):
            return None  # about another file (an input read in the block)
    if code not in _WRITE_ERRNOS:
        from_writer = isinstance(exc, OSError) or type(exc).__module__.startswith(
            ("pyogrio", "pyarrow", "sqlite3", "rasterio", "shapely"))
        if from_writer and (any(w in str(exc).lower() for w in _DISK_FULL_WORDS)
                            or _disk_full(final.parent)):
            code = errno.ENOSPC
        else:
            return None
    hint = (_FULL_HINT if code in (errno.ENOSPC, errno.EDQUOT) else _WRITABLE_HINT)
    return OutputError(f"cannot write {final}: {_WRITE_ERRNOS[code]}; {hint}")


def _disk_full(folder: Path, *, below: int = 1 << 20) -> bool:
    """Whether the file system of ``folder`` has less than ``below`` bytes free."""
    try:
        return shutil.disk_usage(folder).free < below
    except OSError:
        return False


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` on success.

    The temporary file keeps the final suffix (drivers that pick a format from the
    extension still work) and carries the writer's pid, so the next write to the same
    folder removes what a killed run left (:func:`sweep_stale_temps`). On any exception
    the temporary file is removed and ``final`` is left untouched; a failure of the disk
    or the folder (full, read-only, no permission) is raised as :class:`OutputError`
    naming ``final``.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(final.parent, final.name)
        tmp = temp_path(final, tag="", suffix=suffix or final.suffix)
    except OSError as exc:
        raise (_write_failure(final, None, exc) or exc) from None
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"cannot write {final}: the writer produced no file")
        tmp.replace(final)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        for extra in tmp.parent.glob(glob.escape(tmp.name) + "-*"):  # -journal, -wal, -shm
            with contextlib.suppress(FileNotFoundError):
                extra.unlink()
        failure = _write_failure(final, tmp, exc)
        if failure is not None:
            raise failure from exc
        raise


def check_suffix(path: str | os.PathLike[str], fmt: str, *, what: str = "the output") -> Path:
    """``path`` if its extension is one of format ``fmt``'s (:data:`FORMAT_SUFFIXES`),
    else :class:`BadArgumentError`: a file is never written in a format its name does
    not say (``--out r.gpkg`` for a Parquet output)."""
    p = Path(path)
    allowed = FORMAT_SUFFIXES[fmt]
    if p.suffix.lower() not in allowed:
        raise BadArgumentError(
            f"{p}: {what} is written as {fmt}; give a file name ending in "
            f"{' or '.join(allowed)} (got {p.suffix or 'no extension'!r})"
        )
    return p


def check_output_file(
    path: str | os.PathLike[str], fmt: str, *, what: str = "the output"
) -> Path:
    """Check an output file before long work starts: its extension is one of format
    ``fmt``'s (:func:`check_suffix`) and its folder is writable
    (:func:`ensure_writable_dir`). Returns the path."""
    p = check_suffix(path, fmt, what=what)
    ensure_writable_dir(p.parent)
    if p.is_dir():
        raise OutputError(f"{p}: {what} is a file; this is a folder")
    return p


def ensure_writable_dir(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Create folder ``path`` if needed and check that files can be written in it, before
    long work starts; temporaries of killed runs in it are swept. Returns the path.

    Raises
    ------
    OutputError
        The folder cannot be created, is a file, or is not writable (read-only file
        system, permissions), naming the folder.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} {folder}: {describe_os_error(exc)}; "
                          f"{_WRITABLE_HINT}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=f".pvdgeo-write-test.{os.getpid()}-",
                                     suffix=".part", dir=folder)
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        raise OutputError(f"{what} {folder} is not writable: {_reason(exc)}; "
                          f"{_WRITABLE_HINT}") from None
    sweep_stale_temps(folder)
    return folder


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8, atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], data: Any, **dumps: Any) -> Path:
    """Write ``data`` as pretty UTF-8 JSON, atomically; returns the path.

    ``dumps`` keywords override the defaults (``ensure_ascii=False, indent=2``); the
    name must end in ``.json`` (or ``.geojson``)."""
    check_suffix(path, "JSON")
    options = {"ensure_ascii": False, "indent": 2, "default": str, **dumps}
    return write_text_atomic(path, json.dumps(data, **options) + "\n")


def write_parquet(
    df: Any, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write a (Geo)DataFrame to Parquet atomically, with ``metadata`` stored as JSON under
    the ``pvdgeo`` key of the file's key-value metadata (vintages, sources, CRS...).

    GeoDataFrames are written as GeoParquet (``geopandas.read_parquet`` reads them back);
    read the metadata with :func:`read_parquet_metadata`. The name must end in
    ``.parquet`` (:class:`BadArgumentError` otherwise).
    """
    check_suffix(path, "Parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    # An Arrow-owned buffer, not io.BytesIO: Arrow's I/O threads would hold Python
    # buffers of a BytesIO and free the last one after the command returned, taking the
    # GIL while the interpreter exits: "terminate called without an active exception",
    # exit 134 (apache/arrow#34314).
    sink = pa.BufferOutputStream()
    df.to_parquet(sink, index=False)
    table = pq.read_table(pa.BufferReader(sink.getvalue()))
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


# --- delimited text tables ----------------------------------------------------------------

#: Field separators of delimited text files (the most frequent in the header wins; ties
#: in this order).
SEPARATORS = (";", ",", "\t", "|")
#: Encodings tried in order: UTF-8 (with or without BOM), Windows-1252, Latin-1.
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def head_text(path: Path) -> str:
    """First few kB of a (possibly compressed or zipped) text file, decoded leniently."""
    import zipfile

    suffix = path.suffix.lower()
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if not names:
                    raise InputFileError(f"{path}: empty zip archive")
                with zf.open(names[0]) as fh:
                    raw = fh.read(65536)
        else:
            with open_maybe_compressed(path, "rb") as fh:
                raw = fh.read(65536)
    except (*DECOMPRESSION_ERRORS, zipfile.BadZipFile) as exc:
        raise InputFileError(f"{path}: cannot read the file ({exc})") from None
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def read_delimited(
    path: str | os.PathLike[str],
    *,
    label: str,
    required: Sequence[str] = (),
    optional: Sequence[str] | None = None,
    upper: bool = False,
) -> Any:
    """Read a delimited text table as strings, whatever its separator (``;``, ``,``, tab,
    ``|``: the most frequent in the header), encoding (UTF-8 with or without BOM,
    Windows-1252, Latin-1) or compression (``.gz``, ``.xz``, ``.bz2``, ``.zip``).

    Columns are matched after stripping spaces and quotes (case-insensitively with
    ``upper``, which upper-cases them); only ``required`` and ``optional`` ones are kept
    (every column when ``optional`` is None). A separator or encoding other than ``,``
    and UTF-8 is logged. The separator and encoding used are in ``df.attrs["csv"]``.

    Raises
    ------
    InputFileError
        The file is absent, empty or cannot be parsed.
    MissingColumnsError
        A ``required`` column is absent; names the columns found and, when the header
        looks split by another separator, says so.
    """
    import zipfile

    import pandas as pd

    from geo.errors import MissingColumnsError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{label}: file {path} does not exist")
    head = head_text(path)
    first = head.splitlines()[0] if head.strip() else ""
    if not first:
        raise InputFileError(f"{label}: {path} is empty (no header line)")
    sep = max(SEPARATORS, key=first.count)

    def norm(col: str) -> str:
        col = str(col).strip().lstrip("\ufeff").strip('"').strip()
        return col.upper() if upper else col

    wanted = None if optional is None else {norm(c) for c in (*required, *optional)}
    df = None
    for encoding in ENCODINGS:
        try:
            df = pd.read_csv(
                path, sep=sep, dtype=str, encoding=encoding, keep_default_na=False,
                na_values=[""], low_memory=False,
                usecols=None if wanted is None else (lambda c: norm(c) in wanted),
            )
            break
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise InputFileError(f"{label}: {path} is empty (no header line)") from None
        except (pd.errors.ParserError, ValueError, OSError, EOFError,
                zipfile.BadZipFile) as exc:
            hint = "" if sep == "," else f" (read as {sep!r}-separated)"
            raise InputFileError(f"{label}: cannot parse {path}{hint}: "
                                 f"{' '.join(str(exc).split())}") from None
    if df is None:  # pragma: no cover - latin-1 decodes any byte
        raise InputFileError(f"{label}: cannot decode {path}")
    if sep != "," or encoding != "utf-8-sig":
        log.info("%s: read %s as %s-separated %s text", label, path.name, repr(sep),
                 {"utf-8-sig": "UTF-8", "cp1252": "Windows-1252"}.get(encoding, encoding))
    df.columns = [norm(c) for c in df.columns]
    df.attrs["csv"] = {"sep": sep, "encoding": encoding}
    missing = [c for c in required if norm(c) not in df.columns]
    if missing:
        found = [norm(c) for c in first.split(sep)]
        others = [s for s in SEPARATORS if s != sep and any(s in c for c in found)]
        hint = (f"; the header looks {others[0]!r}-separated, the file was read as "
                f"{sep!r}-separated" if others and len(found) < len(required) else "")
        raise MissingColumnsError(f"{label} ({path}{hint})", [norm(c) for c in missing],
                                  found)
    return df


def to_number(values: Any) -> Any:
    """Numbers from text as French and international files write them: ``3.5``,
    ``3,5`` (decimal comma), ``1 234,5`` (spaces, no-break spaces as thousands
    separators); NaN where the text is not a number. Returns a float Series."""
    import pandas as pd

    text = pd.Series(values, dtype="string").str.strip()
    text = text.str.replace(r"[\s\u00a0\u202f]", "", regex=True)
    comma_last = text.str.rfind(",") > text.str.rfind(".")
    text = text.where(comma_last, text.str.replace(",", "", regex=False))  # 1,234.5
    text = text.where(~comma_last, text.str.replace(".", "", regex=False)  # 1.234,5
                      .str.replace(",", ".", regex=False))
    return pd.to_numeric(text, errors="coerce").astype("float64")


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
