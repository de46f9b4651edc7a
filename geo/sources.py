"""Dataset catalogue, downloads and local mirrors.

The catalogue (``data/sources.toml``) lists every input dataset: id, title, producer,
licence, vintage, official download URL(s), format and its relative path in a mirror
laid out like ``../shared/data``. :func:`fetch` downloads a dataset into ``data/raw/``
under that same relative path:

- from the mirror when ``settings.mirror`` (``GEO_MIRROR``, ``--mirror``) is set: a
  directory, or an ``http(s)://`` base URL serving the same tree;
- otherwise from the official URL(s), in order, then converted to the mirror's layout
  by the dataset's converter (:mod:`geo._convert`) when the official format differs.

Downloads show a progress bar, retry with exponential backoff, are written atomically
(a partial file never appears under its final name), and are decompressed when the
consumer needs it (``decompress = true``: ``.gz``, ``.xz``, ``.bz2``). The sha256 of
every file is recorded in ``data/raw/sources.lock.json`` and checked on re-use; a
catalogue ``sha256`` pins the exact bytes of the catalogued vintage (mirror layout).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import re
import shutil
import socket
import time
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import requests
import urllib3
from tqdm.auto import tqdm

from geo import _convert
from geo._insee import departement_of
from geo._io import (
    COMPRESSED_SUFFIXES,
    DECOMPRESSION_ERRORS,
    atomic_path,
    ensure_writable_dir,
    open_maybe_compressed,
    temp_path,
    write_json_atomic,
)
from geo.errors import (
    ChecksumError,
    DataSourceError,
    DownloadError,
    GeoError,
    UnknownDatasetError,
    did_you_mean,
)
from geo.settings import Settings, get_settings

__all__ = [
    "Dataset",
    "catalogue_markdown",
    "dataset_path",
    "datasets_for_town",
    "ensure",
    "fetch",
    "get_dataset",
    "load_catalogue",
    "make_rules",
    "provenance",
    "sha256_file",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "pvdgeo (https://github.com/pvdgeo/pvdgeo; territorial analysis)"


@dataclass(frozen=True, slots=True)
class Dataset:
    """One catalogue entry."""

    id: str
    title: str
    producer: str
    licence: str
    vintage: str
    format: str
    #: Path relative to a mirror root (and to ``data/raw``), e.g. ``apl/apl_...csv.gz``.
    mirror_path: str
    #: Official machine-readable download URL(s), tried in order.
    urls: tuple[str, ...] = ()
    #: Human page describing the dataset at its producer.
    homepage: str = ""
    #: ``national`` datasets cover all communes; ``local`` ones only ``insee`` towns.
    scope: str = "national"
    #: What the file is for: reference, apl, osm, roads, landcover, dem, facilities...
    kind: str = "reference"
    #: INSEE codes of the towns a local dataset covers.
    insee: tuple[str, ...] = ()
    #: Départements a local dataset covers entirely (e.g. a département raster).
    departements: tuple[str, ...] = ()
    #: Decompress ``.gz``/``.xz``/``.bz2`` after download (consumers need the plain file).
    decompress: bool = False
    #: Name of the converter in :mod:`geo._convert` turning the official download into
    #: the mirror layout ('' when the official file already is in that layout).
    convert: str = ""
    #: Other datasets the converter reads (fetched first, passed as ``inputs``).
    inputs: tuple[str, ...] = ()
    #: sha256 of the catalogued vintage in mirror layout (before decompression).
    sha256: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def coverage(self) -> str:
        """Where the dataset applies: ``national`` or ``local: dép. 46, 01306``."""
        if self.scope == "local":
            return "local: " + ", ".join([f"dép. {d}" for d in self.departements]
                                         + list(self.insee))
        if self.scope == "production":
            return "national (production only, not in the test mirror)"
        return "national"

    @property
    def local_name(self) -> str:
        """Relative path under ``data/raw`` (the mirror path, without the compression
        suffix when the dataset is decompressed)."""
        suffix = Path(self.mirror_path).suffix
        if self.decompress and suffix in COMPRESSED_SUFFIXES:
            return self.mirror_path[: -len(suffix)]
        return self.mirror_path


# --- catalogue ----------------------------------------------------------------------

_catalogue_cache: dict[Path, tuple[tuple[int, int], dict[str, Dataset]]] = {}

_REQUIRED = ("title", "producer", "licence", "vintage", "format", "mirror_path")


def load_catalogue(settings: Settings | None = None) -> dict[str, Dataset]:
    """All datasets of the catalogue file, keyed by id."""
    s = settings or get_settings()
    path = Path(s.catalogue_file)
    try:
        stat = path.stat()
        mtime = (stat.st_mtime_ns, stat.st_size)  # a rewrite within a tick changes the size
    except FileNotFoundError:
        raise DataSourceError(f"dataset catalogue {path} does not exist") from None
    cached = _catalogue_cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataSourceError(f"dataset catalogue {path} is not valid TOML: {exc}") from None
    known = set(Dataset.__slots__)
    out: dict[str, Dataset] = {}
    problems: list[str] = []
    for ds_id, entry in doc.get("datasets", {}).items():
        missing = [k for k in _REQUIRED if not entry.get(k)]
        if missing:
            problems.append(f"{ds_id}: missing {', '.join(missing)}")
            continue
        fields = {k: v for k, v in entry.items() if k in known and k not in {"id", "extra"}}
        extra = {k: v for k, v in entry.items() if k not in known}
        for key in ("urls", "insee", "departements", "inputs"):
            if key in fields:
                value = fields[key]
                fields[key] = tuple([value] if isinstance(value, str) else value)
        problems += _check_entry(ds_id, fields)
        out[ds_id] = Dataset(id=ds_id, extra=extra, **fields)
    if problems:
        raise DataSourceError(f"dataset catalogue {path}: " + "; ".join(problems))
    _catalogue_cache[path] = (mtime, out)
    return out


_SCOPES = ("national", "local", "production")


def _check_entry(ds_id: str, fields: dict[str, Any]) -> list[str]:
    """Problems with the types and values of one catalogue entry."""
    problems = []
    for key in ("urls", "insee", "departements", "inputs"):
        if not all(isinstance(v, str) and v for v in fields.get(key, ())):
            problems.append(f"{ds_id}: {key} must be a list of strings")
    if not isinstance(fields.get("decompress", False), bool):
        problems.append(f"{ds_id}: decompress must be true or false")
    scope = fields.get("scope", "national")
    if scope not in _SCOPES:
        problems.append(f"{ds_id}: scope {scope!r} is not one of {', '.join(_SCOPES)}")
    if scope == "local" and not (fields.get("insee") or fields.get("departements")):
        problems.append(f"{ds_id}: a local dataset needs insee or departements")
    if fields.get("convert") and not fields.get("urls"):
        problems.append(f"{ds_id}: convert is set but there is no URL to convert from")
    if Path(fields["mirror_path"]).is_absolute() or ".." in Path(fields["mirror_path"]).parts:
        problems.append(f"{ds_id}: mirror_path must be relative, inside the mirror")
    return problems


def get_dataset(dataset_id: str, settings: Settings | None = None) -> Dataset:
    """The catalogue entry ``dataset_id``; unknown ids list the closest known ones."""
    catalogue = load_catalogue(settings)
    try:
        return catalogue[dataset_id]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset id {dataset_id!r}{did_you_mean(dataset_id, catalogue)}; "
            f"`pvdgeo fetch --list` lists the {len(catalogue)} catalogued datasets"
        ) from None


def datasets_for_town(
    insee: str, kind: str | None = None, settings: Settings | None = None
) -> list[Dataset]:
    """Local datasets covering town ``insee`` (optionally of one ``kind``)."""
    dep = departement_of(insee)
    return [
        d
        for d in load_catalogue(settings).values()
        if d.scope == "local"
        and (insee in d.insee or dep in d.departements)
        and (kind is None or d.kind == kind)
    ]


def dataset_path(dataset_id: str, settings: Settings | None = None) -> Path:
    """Where ``dataset_id`` lives under ``data/raw`` (whether or not it is fetched)."""
    s = settings or get_settings()
    return s.raw_dir / get_dataset(dataset_id, s).local_name


# --- checksums and the lock file ----------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on ``path`` (created if needed) while in the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


def _read_lockfile(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataSourceError(
            f"lock file {path} is not valid JSON ({exc}); delete it and run "
            f"`pvdgeo fetch --force` to download and record the datasets again"
        ) from None
    if not isinstance(data, dict):
        raise DataSourceError(f"lock file {path} should hold a JSON object")
    return data


@contextlib.contextmanager
def _locked_lockfile(settings: Settings) -> Iterator[dict[str, Any]]:
    """Read-modify-write the lock file under an exclusive OS lock (parallel towns)."""
    path = settings.lock_file
    with _flock(path.parent / ".locks" / f"{path.name}.flock"):
        data = _read_lockfile(path)
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            write_json_atomic(path, data, sort_keys=True, ensure_ascii=True)


def provenance(settings: Settings | None = None) -> dict[str, Any]:
    """Lock-file entries (what was fetched, from where, when, with which sha256)."""
    s = settings or get_settings()
    return _read_lockfile(s.lock_file)


# --- fetching -------------------------------------------------------------------------


def ensure(dataset_id: str, settings: Settings | None = None) -> Path:
    """Local path of ``dataset_id``, fetching it first if it is not in ``data/raw``."""
    return fetch([dataset_id], settings=settings)[0]


def fetch(
    dataset_ids: Iterable[str] | None = None,
    *,
    settings: Settings | None = None,
    force: bool = False,
) -> list[Path]:
    """Download datasets into ``data/raw`` (all national ones when ``dataset_ids`` is None).

    A file already present is verified against the lock file and reused. ``force``
    downloads again. Returns the local paths, in the order of ``dataset_ids``.
    Concurrent calls (threads or processes, e.g. towns run in parallel) fetching the same
    dataset wait for each other: the dataset is downloaded once.
    """
    s = settings or get_settings()
    catalogue = load_catalogue(s)
    if dataset_ids is None:
        ids = [d.id for d in catalogue.values() if d.scope == "national"]
    elif isinstance(dataset_ids, str):
        ids = [dataset_ids]
    else:
        ids = list(dataset_ids)
    datasets = [get_dataset(i, s) for i in ids]  # fail early on unknown ids
    return [_fetch_one(d, s, force=force) for d in datasets]


def _fetch_one(ds: Dataset, s: Settings, *, force: bool) -> Path:
    dest = s.raw_dir / ds.local_name
    # One fetch per dataset at a time: a second process waits, then reuses the file.
    with _flock(s.raw_dir / ".locks" / f"{ds.id}.lock"):
        if dest.exists() and not force:
            return _reuse(ds, dest, s)
        return _download_dataset(ds, dest, s)


#: Files verified against the lock file in this process: (path, mtime_ns, size, sha256).
#: ensure() is called on every read of a national table; a file is hashed again only
#: when it changed on disk.
_verified: set[tuple[str, int, int, str]] = set()


def _reuse(ds: Dataset, dest: Path, s: Settings) -> Path:
    """Verify a present file against the lock file (or record it) and return it."""
    with _locked_lockfile(s) as lock:
        entry = lock.get(ds.id)
    if entry and entry.get("local_name") == ds.local_name:
        stat = dest.stat()
        stamp = (str(dest), stat.st_mtime_ns, stat.st_size, str(entry.get("sha256")))
        if stamp in _verified:  # hashed already in this process and unchanged since
            return dest
        actual = sha256_file(dest)
        if actual != entry.get("sha256"):
            raise ChecksumError(
                f"{dest} (dataset {ds.id}) changed since it was fetched: sha256 "
                f"{actual[:12]}… but the lock file {s.lock_file} records "
                f"{str(entry.get('sha256'))[:12]}…; delete the file or run "
                f"`pvdgeo fetch --force {ds.id}`"
            )
        _verified.add(stamp)
        log.debug("%s: verified %s", ds.id, dest)
        return dest
    log.info("%s: %s is present but not in the lock file; recording it", ds.id, dest)
    if ds.sha256 and ds.local_name == ds.mirror_path and sha256_file(dest) != ds.sha256:
        log.warning(
            "%s: %s differs from the catalogued vintage (%s, sha256 %s…); using it anyway",
            ds.id, dest, ds.vintage, ds.sha256[:12],
        )
    _record(ds, dest, s, source="local file", source_sha256="")
    return dest


def _download_dataset(ds: Dataset, dest: Path, s: Settings) -> Path:
    ensure_writable_dir(dest.parent, what="download folder")
    # The temporary name ends with the mirror file's name (converters pick the
    # compression from its suffixes) and carries the pid (swept after a kill):
    # data/raw/x/.name.csv.<pid>-download<random>.part.name.csv.gz
    tmp = temp_path(dest, tag="download", suffix=f".{Path(ds.mirror_path).name}")
    suffix = Path(ds.mirror_path).suffix
    try:
        source, from_mirror = _download_to(ds, tmp, s)
        source_sha = sha256_file(tmp)
        if ds.sha256 and source_sha != ds.sha256:
            msg = (
                f"dataset {ds.id}: sha256 of {source} is {source_sha[:12]}… but the "
                f"catalogue pins {ds.sha256[:12]}… ({ds.vintage})"
            )
            if from_mirror:
                raise ChecksumError(msg + "; the mirror file is corrupt or of another vintage")
            log.warning("%s; the producer may have published a new vintage", msg)
        if not (ds.sha256 and source_sha == ds.sha256):  # nothing vouches for the bytes
            check_download(tmp, ds, source=source,
                           decompressed=ds.decompress and suffix in COMPRESSED_SUFFIXES)
        if ds.decompress and suffix in COMPRESSED_SUFFIXES:
            with atomic_path(dest) as plain:
                try:
                    with open_maybe_compressed(tmp, "rb", suffix=suffix) as src, \
                            plain.open("wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                except DECOMPRESSION_ERRORS as exc:
                    raise DataSourceError(
                        f"dataset {ds.id}: {source} is not a valid {suffix} file ({exc})"
                    ) from None
        else:
            tmp.replace(dest)
    finally:
        for i in range(len(ds.urls)):  # parts of multi-URL downloads
            tmp.with_name(f"{tmp.name}.{i}").unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    # a file stored as downloaded has the bytes just hashed; a decompressed one is new
    plain_sha = None if ds.decompress and suffix in COMPRESSED_SUFFIXES else source_sha
    _record(ds, dest, s, source=source, source_sha256=source_sha, sha256=plain_sha)
    log.info("%s: wrote %s", ds.id, _rel(dest))
    return dest


_HTML_START = (b"<!doctype html", b"<html", b"<head")


def check_download(path: Path, ds: Dataset, *, source: str, decompressed: bool = False) -> None:
    """Refuse a downloaded file that is not the dataset: an HTML page (an error or login
    page served with status 200) or a truncated file (a compressed stream or zip archive
    cut short, a GeoPackage shorter than its header says, a CSV ending inside a row).

    Run on every download the catalogue's sha256 does not vouch for (unpinned datasets,
    new vintages), before it is stored or recorded in the lock file. ``decompressed``:
    the compression is checked by the decompression that follows.

    Raises
    ------
    DownloadError
        Naming the dataset, the source and what is wrong.
    """
    where = f"dataset {ds.id}: {source}"
    with path.open("rb") as fh:
        head = fh.read(4096)
    start = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", head.lstrip()[:512]).lower()
    if "html" not in ds.format.lower() and start.startswith(_HTML_START):
        raise DownloadError(
            f"{where} served an HTML page instead of the {ds.format} file (an error or "
            f"login page?); nothing was stored. Check the URL in the catalogue or "
            f"{ds.homepage or 'the producer page'}"
        )
    problem = _truncation(path, head, Path(ds.mirror_path).suffixes, skip_compression=decompressed)
    if problem:
        raise DownloadError(f"{where} is truncated or corrupt ({problem}); nothing was "
                            "stored: download again (`pvdgeo fetch --force " f"{ds.id}`)")


def _truncation(path: Path, head: bytes, suffixes: list[str], *,
                skip_compression: bool) -> str | None:
    """What shows ``path`` is cut short, or None (see :func:`check_download`)."""
    last = suffixes[-1].lower() if suffixes else ""
    if last in COMPRESSED_SUFFIXES:
        if skip_compression:
            return None
        try:
            with open_maybe_compressed(path, "rb", suffix=last) as stream:
                while stream.read(_CHUNK):
                    pass
        except DECOMPRESSION_ERRORS as exc:
            return f"not a complete {last} stream: {exc}"
        return None
    if last == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            return f"not a complete zip archive: {exc}"
        return f"zip member {bad} is corrupt" if bad else None
    if last == ".gpkg" and head.startswith(b"SQLite format 3\x00") and len(head) >= 32:
        page_size = int.from_bytes(head[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(head[28:32], "big")
        size = path.stat().st_size
        if pages and size < pages * page_size:
            return f"{size} bytes where the SQLite header announces {pages * page_size}"
        return None
    if last == ".csv":
        return _csv_truncation(path, head)
    return None


def _csv_truncation(path: Path, head: bytes) -> str | None:
    """A CSV whose last line has no end and fewer fields than the header."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 65536))
        tail = fh.read()
    if not tail or tail.endswith(b"\n"):
        return None
    header = head.splitlines()[0] if head else b""
    sep_byte = bytes([max(b";,\t|", key=header.count)])
    last = tail.splitlines()[-1]
    if last.count(sep_byte) < header.count(sep_byte):
        return (f"the last line has {last.count(sep_byte) + 1} fields where the header has "
                f"{header.count(sep_byte) + 1}, and no line end")
    log.warning("%s ends without a line end: it may be cut inside its last field", path)
    return None


def _record(
    ds: Dataset, dest: Path, s: Settings, *, source: str, source_sha256: str,
    sha256: str | None = None,
) -> None:
    """Record a local file in the lock file (``sha256`` of ``dest`` when already known)."""
    digest = sha256 or sha256_file(dest)
    with _locked_lockfile(s) as lock:
        lock[ds.id] = {
            "local_name": ds.local_name,
            "sha256": digest,
            "bytes": dest.stat().st_size,
            "source": source,
            "source_sha256": source_sha256,
            "vintage": ds.vintage,
            "licence": ds.licence,
            "producer": ds.producer,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


_MIRROR_HINT = (
    "use a mirror: GEO_MIRROR=/path/to/mirror (a directory laid out like ../shared/data) "
    "or GEO_MIRROR=http://host/base (the same tree over HTTP), or `pvdgeo --mirror ...`"
)


def _download_to(ds: Dataset, tmp: Path, s: Settings) -> tuple[str, bool]:
    """Fill ``tmp`` with the dataset in mirror layout; returns (source, from_mirror)."""
    if s.mirror:
        return _from_mirror(ds, tmp, s.mirror.strip(), s), True
    if not ds.urls:
        raise DownloadError(
            f"dataset {ds.id} has no official download URL (see "
            f"{ds.homepage or s.catalogue_file}); place the file at "
            f"{s.raw_dir / ds.local_name} or {_MIRROR_HINT}"
        )
    errors: list[str] = []
    downloads: list[Path] = []
    for i, url in enumerate(ds.urls):
        target = tmp if len(ds.urls) == 1 else tmp.with_name(f"{tmp.name}.{i}")
        try:
            _http_download(url, target, s, label=ds.id)
        except DownloadError as exc:
            errors.append(str(exc))
            if ds.convert and len(ds.urls) > 1:
                break  # multi-part downloads need every part
            continue
        downloads.append(target)
        if not ds.convert:
            break  # alternatives: the first that works
    if not downloads or (ds.convert and len(downloads) != len(ds.urls)):
        raise DownloadError(
            f"could not download dataset {ds.id}: {' | '.join(errors)}. "
            f"Without network, {_MIRROR_HINT}"
        )
    if ds.convert:
        inputs = {i: _fetch_one(get_dataset(i, s), s, force=False) for i in ds.inputs}
        _run_converter(ds, downloads, tmp, inputs)
    elif downloads[0] != tmp:
        downloads[0].replace(tmp)
    return " + ".join(ds.urls), False


def _from_mirror(ds: Dataset, tmp: Path, mirror: str, s: Settings) -> str:
    parsed = urlparse(mirror)
    if parsed.scheme in {"http", "https"}:
        url = f"{mirror.rstrip('/')}/{quote(ds.mirror_path)}"
        try:
            _http_download(url, tmp, s, label=ds.id)
        except DownloadError as exc:
            raise DownloadError(f"dataset {ds.id} from the mirror {mirror}: {exc}") from None
        return url
    root = Path(parsed.path if parsed.scheme == "file" else mirror).expanduser()
    if not root.is_dir():
        raise DownloadError(
            f"mirror {mirror} is not a directory (from GEO_MIRROR or --mirror); expected a "
            f"folder laid out like ../shared/data or an http(s):// base URL"
        )
    src = root / ds.mirror_path
    if not src.is_file():
        raise DownloadError(
            f"dataset {ds.id}: {ds.mirror_path} is not in the mirror {mirror} "
            f"(expected file {src})"
        )
    _copy_with_progress(src, tmp, label=ds.id)
    return str(src)


def _run_converter(ds: Dataset, downloads: list[Path], out: Path,
                   inputs: dict[str, Path]) -> None:
    """Turn the official download(s) into the mirror layout with ``ds.convert``
    (``inputs``: the local files of the datasets it reads, ``ds.inputs``)."""
    converter = getattr(_convert, ds.convert, None)
    if converter is None or ds.convert not in _convert.__all__:
        raise DataSourceError(f"dataset {ds.id}: unknown converter {ds.convert!r}")
    try:
        if inputs:
            converter(downloads, out, inputs=inputs)
        else:
            converter(downloads, out)
    except GeoError as exc:
        raise DataSourceError(
            f"dataset {ds.id}: the official download ({', '.join(ds.urls)}) could not be "
            f"converted to the mirror layout: {exc}"
        ) from exc
    except (ValueError, KeyError, IndexError, TypeError, OSError, EOFError,
            zipfile.BadZipFile) as exc:
        raise DataSourceError(
            f"dataset {ds.id}: the official download ({', '.join(ds.urls)}) is not in the "
            f"expected layout ({type(exc).__name__}: {exc}); the producer may have changed "
            f"the format, see {ds.homepage or 'the catalogue'}"
        ) from exc


def _http_download(url: str, dest: Path, s: Settings, *, label: str) -> None:
    """GET ``url`` into ``dest`` with retries, exponential backoff and a length check.

    Transient failures (connection errors, time-outs, a connection closed before
    ``Content-Length`` bytes, HTTP 408/429/5xx) are retried ``settings.http_retries``
    times, waiting ``http_backoff_s`` x 1, 2, 4... seconds. ``dest`` never survives a
    failure. Bytes are stored as served (``Accept-Encoding: identity``), so a ``.gz``
    file stays compressed.
    """
    last = ""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    keep_encoded = urlparse(url).path.endswith((*COMPRESSED_SUFFIXES, ".tgz", ".zip"))
    try:
        for attempt in range(s.http_retries + 1):
            if attempt:
                delay = s.http_backoff_s * 2 ** (attempt - 1)
                log.warning("%s: retrying %s in %.1f s (%s)", label, url, delay, last)
                time.sleep(delay)
            try:
                with requests.get(
                    url, stream=True, timeout=s.http_timeout_s, headers=headers
                ) as resp:
                    if resp.status_code == 404:
                        raise DownloadError(f"{url}: HTTP 404 not found")
                    if resp.status_code >= 400:
                        last = f"HTTP {resp.status_code} {resp.reason}"
                        if resp.status_code in {408, 429} or resp.status_code >= 500:
                            continue
                        raise DownloadError(f"{url}: {last}")
                    encoding = resp.headers.get("Content-Encoding", "identity").lower()
                    decode = encoding not in {"", "identity"} and not keep_encoded
                    expected = int(resp.headers.get("Content-Length") or 0) or None
                    if decode:
                        expected = None  # the length counts encoded bytes; we store decoded
                    got = 0
                    with dest.open("wb") as out, tqdm(
                        total=expected, unit="B", unit_scale=True, desc=label, leave=False,
                        disable=None,
                    ) as bar:
                        for chunk in resp.raw.stream(_CHUNK, decode_content=decode):
                            out.write(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
                    if expected is not None and got != expected:
                        last = f"connection closed after {got} of {expected} bytes"
                        continue
                    return
            except DownloadError:
                raise
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if _is_name_resolution_failure(exc):  # offline: retrying will not help
                    raise DownloadError(
                        f"{url}: cannot resolve the host name {urlparse(url).hostname!r} "
                        f"(no network or no DNS)"
                    ) from None
                last = _short_reason(exc)
        raise DownloadError(f"{url}: failed after {s.http_retries + 1} attempts ({last})")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


_DNS_FAILURES = ("Name or service not known", "Temporary failure in name resolution",
                 "No address associated with hostname", "nodename nor servname provided",
                 "Failed to resolve", "getaddrinfo failed")


def _is_name_resolution_failure(exc: BaseException) -> bool:
    """Whether a connection error comes from DNS (``socket.gaierror`` anywhere in the
    chain of causes, or its messages)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return any(marker in str(exc) for marker in _DNS_FAILURES)


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Name or service not known", "Temporary failure in name resolution",
                   "No address associated with hostname", "Connection refused",
                   "timed out", "Network is unreachable", "IncompleteRead",
                   "Connection broken", "Connection reset"):
        if marker in text:
            return marker
    return f"{type(exc).__name__}: {text[:160]}"


def _copy_with_progress(src: Path, dest: Path, *, label: str) -> None:
    with src.open("rb") as fin, dest.open("wb") as fout, tqdm(
        total=src.stat().st_size, unit="B", unit_scale=True, desc=label, leave=False,
        disable=None,
    ) as bar:
        for chunk in iter(lambda: fin.read(_CHUNK), b""):
            fout.write(chunk)
            bar.update(len(chunk))


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def catalogue_markdown(settings: Settings | None = None, *, scope: str | None = None) -> str:
    """The catalogue as a Markdown table for the README: id, title (linked to the
    producer's page), producer, licence, vintage and coverage; ``scope`` keeps only
    ``national``, ``local`` or ``production`` datasets."""

    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = [
        "| id | dataset | producer | licence | vintage | coverage |",
        "|---|---|---|---|---|---|",
    ]
    for ds in load_catalogue(settings).values():
        if scope is not None and ds.scope != scope:
            continue
        title = f"[{cell(ds.title)}]({ds.homepage})" if ds.homepage else cell(ds.title)
        lines.append(
            f"| `{ds.id}` | {title} | {cell(ds.producer)} | {cell(ds.licence)} | "
            f"{cell(ds.vintage)} | {cell(ds.coverage)} |"
        )
    return "\n".join(lines) + "\n"


# --- make integration -------------------------------------------------------------------


def make_rules(settings: Settings | None = None) -> str:
    """Make fragment: a ``RAW_<id>`` variable and a fetch rule per dataset, plus lists.

    Lists: ``RAW_GROUP_<kind>`` (every dataset of a kind), ``RAW_NATIONAL_<KIND>`` (the
    national datasets of a kind, upper-case) and ``RAW_NATIONAL`` (every national one),
    so Makefile stages can name their raw inputs as prerequisites. ``RAW_TOWN_<kind>_<insee>``
    names the first local dataset of a kind covering a town (e.g. ``RAW_TOWN_osm_35236``;
    undefined, hence empty, for towns without one). A rule fetches only its own dataset
    (``make -j`` fetches in parallel; the lock file is shared safely).
    """
    s = settings or get_settings()
    lines = ["# generated by `pvdgeo make-rules datasets` from the dataset catalogue"]
    groups: dict[str, list[str]] = {}
    national: dict[str, list[str]] = {}
    town: dict[str, str] = {}
    for ds in load_catalogue(s).values():
        var = f"RAW_{ds.id}"
        path = _rel(s.raw_dir / ds.local_name)
        lines += [f"{var} := {path}", f"{path}: | $(VENV_STAMP)", f"\t$(PVDGEO) fetch {ds.id}"]
        groups.setdefault(ds.kind, []).append(f"$({var})")
        if ds.scope == "national":
            national.setdefault(ds.kind.upper(), []).append(f"$({var})")
        if ds.scope == "local":
            for code in ds.insee:
                town.setdefault(f"RAW_TOWN_{ds.kind}_{code}", f"$({var})")
    for kind, vars_ in sorted(groups.items()):
        lines.append(f"RAW_GROUP_{kind} := {' '.join(vars_)}")
    for kind, vars_ in sorted(national.items()):
        lines.append(f"RAW_NATIONAL_{kind} := {' '.join(vars_)}")
    lines.append(f"RAW_NATIONAL := {' '.join(v for vs in national.values() for v in vs)}")
    lines += [f"{name} := {var}" for name, var in sorted(town.items())]
    return "\n".join(lines) + "\n"

