"""Dataset catalogue and fetching: directory and HTTP mirrors, retries, checksums, the lock
file, decompression, offline errors and concurrent fetches.

The HTTP tests start a threaded ``http.server`` on 127.0.0.1 serving the real mirror tree
(``GEO_TEST_DATA``), with injectable faults (dropped connections, corrupted bytes, 404).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.server
import json
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from geo import sources
from geo.cli import main
from geo.errors import (
    ChecksumError,
    DataSourceError,
    DownloadError,
    GeoError,
    UnknownDatasetError,
)
from geo.settings import Settings, load_settings

# Small real datasets used below (mirror paths from the catalogue).
SMALL = "montagne"  # typologies/montagne_communes_ot_2026.csv.gz, 76 kB
SMALL_CSV = "pvd"  # programmes/pvd_communes_anct_superposeur_2024-09.csv


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _settings(data_dir: Path, **kw) -> Settings:
    """Isolated settings: own data folder, fast retries."""
    base = {"http_retries": 2, "http_backoff_s": 0.01, "http_timeout_s": 5.0}
    return load_settings(environ={}, data_dir=data_dir, **{**base, **kw})


def _leftovers(folder: Path) -> list[str]:
    """Temporary or partial files in ``folder`` (hidden names; OS lock files excepted)."""
    return sorted(
        p.name for p in folder.rglob("*")
        if p.is_file() and p.name.startswith(".") and p.parent.name != ".locks"
    )


# --- loopback HTTP mirror ------------------------------------------------------------------


class _MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror tree; ``faults[path]`` lists what to do on successive requests:
    ``drop`` (full Content-Length, half the body, close), ``corrupt`` (one byte flipped),
    ``html`` (an HTML error page with status 200), ``cut`` (half the body without a
    Content-Length), ``404``, ``503``; an exhausted or missing list serves the file
    normally."""

    faults: ClassVar[dict[str, list[str]]] = {}
    #: Extra files served outside the mirror tree (URL path -> file), e.g. "official" ones.
    extra: ClassVar[dict[str, Path]] = {}
    requests: ClassVar[list[str]] = []
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.lock:
            self.requests.append(path)
            queue = self.faults.get(path) or []
            fault = queue.pop(0) if queue else None
        if fault is None and path not in self.extra:
            return super().do_GET()
        if fault in {"404", "503"}:
            self.send_error(int(fault))
            return None
        if fault == "html":  # an error page served with status 200, as some portals do
            page = b"<!DOCTYPE html>\n<html><body>Service indisponible</body></html>\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return None
        body = Path(self.extra.get(path) or self.translate_path(path)).read_bytes()
        if fault == "cut":  # no Content-Length, half the body, close: looks complete
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: body.index(b"\n", len(body) // 2) + 4])  # mid-line
            self.wfile.flush()
            self.close_connection = True
            return None
        if fault == "corrupt":
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        self.wfile.write(body)
        return None


@pytest.fixture(scope="module")
def http_mirror(shared_data: Path) -> Iterator[str]:
    """Base URL of a loopback HTTP server serving the real mirror tree."""

    def handler(*args, **kwargs):
        return _MirrorHandler(*args, directory=str(shared_data), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def faults() -> Iterator[dict[str, list[str]]]:
    _MirrorHandler.faults.clear()
    _MirrorHandler.extra.clear()
    _MirrorHandler.requests.clear()
    yield _MirrorHandler.faults
    _MirrorHandler.faults.clear()
    _MirrorHandler.extra.clear()


def _url_path(dataset_id: str, settings: Settings) -> str:
    return "/" + sources.get_dataset(dataset_id, settings).mirror_path


def _closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- catalogue --------------------------------------------------------------------------------


def test_catalogue_matches_the_real_mirror(shared_data: Path) -> None:
    """Every catalogued mirror file exists and has the pinned sha256 (production-only
    datasets excepted); required metadata is filled in."""
    catalogue = sources.load_catalogue(load_settings(environ={}))
    assert len(catalogue) >= 50
    checked = 0
    for ds in catalogue.values():
        assert ds.scope in {"national", "local", "production"}, ds.id
        assert ds.licence and ds.producer and ds.vintage, ds.id
        if ds.scope == "production":
            continue
        path = shared_data / ds.mirror_path
        assert path.is_file(), f"{ds.id}: {path} missing"
        assert ds.sha256, f"{ds.id}: no sha256 pin"
        assert _sha(path) == ds.sha256, f"{ds.id}: sha256 of {path} differs from the pin"
        assert ds.urls or ds.homepage, f"{ds.id}: neither a download URL nor a homepage"
        checked += 1
    assert checked >= 50


def test_datasets_for_town() -> None:
    s = load_settings(environ={})
    assert {d.id for d in sources.datasets_for_town("01306", settings=s)} == {
        "osm_pont_de_veyle"
    }
    lot = {d.id for d in sources.datasets_for_town("46042", settings=s)}
    assert {"clc2018_lot", "clc2018_cahors_3035", "communes_lot_bdcarto"} <= lot
    assert [d.id for d in sources.datasets_for_town("46042", kind="dem", settings=s)] == [
        "dem_cahors_30m"
    ]
    assert sources.datasets_for_town("97701", kind="osm", settings=s)[0].id == (
        "osm_saint_barthelemy_pbf"
    )


def test_unknown_dataset_lists_close_matches(tmp_path: Path) -> None:
    s = _settings(tmp_path / "data")
    with pytest.raises(UnknownDatasetError) as err:
        sources.fetch(["apl_mgg", "montagne"], settings=s)
    msg = str(err.value)
    assert "'apl_mgg'" in msg and "apl_mg" in msg and "pvdgeo fetch --list" in msg
    assert not (tmp_path / "data" / "raw" / "typologies").exists()  # nothing fetched
    assert isinstance(err.value, KeyError) and isinstance(err.value, GeoError)


def test_bad_catalogue_is_reported(tmp_path: Path) -> None:
    cat = tmp_path / "sources.toml"
    cat.write_text('[datasets.x]\ntitle = "X"\nproducer = "P"\n', encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"x: missing licence, vintage, format"):
        sources.load_catalogue(_settings(tmp_path, catalogue_file=cat))
    cat.write_text("[datasets.x\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match="not valid TOML"):
        sources.load_catalogue(_settings(tmp_path, catalogue_file=cat))
    base = 'title = "X"\nproducer = "P"\nlicence = "L"\nvintage = "V"\nformat = "csv"\n'
    cat.write_text(
        f'[datasets.a]\n{base}mirror_path = "../x.csv"\nscope = "regional"\n'
        f'[datasets.b]\n{base}mirror_path = "b.csv"\nscope = "local"\ndecompress = "yes"\n'
        f'[datasets.c]\n{base}mirror_path = "c.csv"\nconvert = "anct_acv_js"\nurls = [1]\n',
        encoding="utf-8")
    with pytest.raises(DataSourceError) as err:
        sources.load_catalogue(_settings(tmp_path, catalogue_file=cat))
    for problem in ("a: scope 'regional' is not one of national, local, production",
                    "a: mirror_path must be relative", "b: decompress must be true or false",
                    "b: a local dataset needs insee or departements",
                    "c: urls must be a list of strings"):
        assert problem in str(err.value)


# --- directory mirror -------------------------------------------------------------------------


def test_directory_mirror_fetch_records_and_reuses(shared_data: Path, tmp_path: Path) -> None:
    s = _settings(tmp_path / "data", mirror=str(shared_data))
    (path,) = sources.fetch([SMALL_CSV], settings=s)
    ds = sources.get_dataset(SMALL_CSV, s)
    assert path == s.raw_dir / ds.mirror_path == sources.dataset_path(SMALL_CSV, s)
    assert path.read_bytes() == (shared_data / ds.mirror_path).read_bytes()
    entry = sources.provenance(s)[SMALL_CSV]
    assert entry["sha256"] == _sha(path) == ds.sha256
    assert entry["source"] == str(shared_data / ds.mirror_path)
    assert entry["vintage"] == ds.vintage and entry["licence"] == ds.licence
    assert _leftovers(s.raw_dir / "programmes") == []

    # Re-use: verified against the lock file, nothing downloaded (the mirror is gone).
    gone = s.replace(mirror=str(tmp_path / "no-such-mirror"))
    assert sources.ensure(SMALL_CSV, settings=gone) == path

    # A locally modified file is detected and named.
    path.write_bytes(path.read_bytes().replace(b"Bouillante", b"Bouillant3"))
    with pytest.raises(ChecksumError) as err:
        sources.ensure(SMALL_CSV, settings=s)
    assert str(path) in str(err.value) and "--force" in str(err.value)
    # --force downloads it again and the lock file follows.
    sources.fetch([SMALL_CSV], settings=s, force=True)
    assert _sha(path) == ds.sha256
    assert sources.ensure(SMALL_CSV, settings=s) == path


def test_directory_mirror_missing_file_and_missing_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    s = _settings(tmp_path / "data", mirror=str(mirror))
    with pytest.raises(DownloadError, match=r"montagne: typologies/montagne.* is not in"):
        sources.fetch([SMALL], settings=s)
    s = _settings(tmp_path / "data", mirror=str(tmp_path / "nowhere"))
    with pytest.raises(DownloadError, match=r"is not a directory .*GEO_MIRROR"):
        sources.fetch([SMALL], settings=s)


def test_directory_mirror_checksum_mismatch(shared_data: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    ds = sources.get_dataset(SMALL_CSV, load_settings(environ={}))
    bad = mirror / ds.mirror_path
    bad.parent.mkdir(parents=True)
    bad.write_bytes((shared_data / ds.mirror_path).read_bytes() + b"extra\n")
    s = _settings(tmp_path / "data", mirror=str(mirror))
    with pytest.raises(ChecksumError, match=r"pvd: sha256 of .* catalogue pins"):
        sources.fetch([SMALL_CSV], settings=s)
    assert not (s.raw_dir / ds.local_name).exists()
    assert _leftovers(s.raw_dir) == []
    assert SMALL_CSV not in sources.provenance(s)


def test_unrecorded_local_file_is_adopted(shared_data: Path, tmp_path: Path) -> None:
    """A file placed by hand (no network, no mirror) is used and recorded."""
    s = _settings(tmp_path / "data", mirror=None)
    ds = sources.get_dataset(SMALL_CSV, s)
    dest = s.raw_dir / ds.local_name
    dest.parent.mkdir(parents=True)
    shutil.copy(shared_data / ds.mirror_path, dest)
    assert sources.ensure(SMALL_CSV, settings=s) == dest
    assert sources.provenance(s)[SMALL_CSV]["source"] == "local file"
    assert sources.provenance(s)[SMALL_CSV]["sha256"] == ds.sha256


def test_corrupt_lock_file_is_reported(shared_data: Path, tmp_path: Path) -> None:
    s = _settings(tmp_path / "data", mirror=str(shared_data))
    s.lock_file.parent.mkdir(parents=True)
    s.lock_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"sources.lock.json is not valid JSON"):
        sources.fetch([SMALL], settings=s)


@pytest.mark.parametrize(
    ("dataset_id", "opener"),
    [
        ("osm_pont_de_veyle", gzip.open),
        ("osm_redon", lzma.open),
        ("osm_saint_barthelemy_xml", bz2.open),
    ],
)
def test_decompression(shared_data: Path, tmp_path: Path, dataset_id: str, opener) -> None:
    s = _settings(tmp_path / "data", mirror=str(shared_data))
    ds = sources.get_dataset(dataset_id, s)
    (path,) = sources.fetch([dataset_id], settings=s)
    assert path.suffix == ".osm" and path.name == Path(ds.mirror_path).stem
    with opener(shared_data / ds.mirror_path, "rb") as fh:
        expected = fh.read()
    assert path.read_bytes() == expected
    assert b"<osm" in expected[:500]
    entry = sources.provenance(s)[dataset_id]
    assert entry["sha256"] == _sha(path)  # of the plain file
    assert entry["source_sha256"] == ds.sha256  # of the download
    assert not (s.raw_dir / ds.mirror_path).exists()  # the compressed copy is not kept
    assert _leftovers(s.raw_dir) == []


def test_corrupt_compressed_file(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "x").mkdir(parents=True)
    (mirror / "x" / "broken.osm.xz").write_bytes(lzma.compress(b"<osm>" * 1000)[:-40])
    cat = tmp_path / "sources.toml"
    cat.write_text(textwrap.dedent("""
        [datasets.broken]
        title = "Broken"
        producer = "P"
        licence = "L"
        vintage = "V"
        format = "osm.xz"
        mirror_path = "x/broken.osm.xz"
        decompress = true
        """), encoding="utf-8")
    s = _settings(tmp_path / "data", mirror=str(mirror), catalogue_file=cat)
    with pytest.raises(DataSourceError, match=r"broken: .*broken.osm.xz is not a valid .xz"):
        sources.fetch(["broken"], settings=s)
    assert not (s.raw_dir / "x" / "broken.osm").exists()
    assert _leftovers(s.raw_dir) == []


# --- HTTP mirror ----------------------------------------------------------------------------


def test_http_mirror(http_mirror: str, faults, tmp_path: Path, shared_data: Path) -> None:
    s = _settings(tmp_path / "data", mirror=http_mirror + "/")
    paths = sources.fetch([SMALL, SMALL_CSV, "osm_redon"], settings=s)
    for ds_id, path in zip([SMALL, SMALL_CSV], paths, strict=False):
        ds = sources.get_dataset(ds_id, s)
        assert path.read_bytes() == (shared_data / ds.mirror_path).read_bytes()
        assert sources.provenance(s)[ds_id]["source"] == f"{http_mirror}/{ds.mirror_path}"
    assert paths[2].read_bytes()[:5] == b"\xef\xbb\xbf<?"  # decompressed .xz (BOM kept)
    assert _leftovers(s.raw_dir) == []


def test_http_mirror_dropped_connection_then_success(
    http_mirror: str, faults, tmp_path: Path
) -> None:
    s = _settings(tmp_path / "data", mirror=http_mirror, http_retries=3)
    path = _url_path(SMALL, s)
    faults[path] = ["drop", "503"]  # attempt 1 drops, 2 is a server error, 3 succeeds
    (dest,) = sources.fetch([SMALL], settings=s)
    assert _MirrorHandler.requests.count(path) == 3
    assert _sha(dest) == sources.get_dataset(SMALL, s).sha256
    assert _leftovers(s.raw_dir) == []


def test_http_mirror_dropped_connection_fails(http_mirror: str, faults, tmp_path: Path) -> None:
    s = _settings(tmp_path / "data", mirror=http_mirror, http_retries=2)
    path = _url_path(SMALL, s)
    faults[path] = ["drop"] * 5
    with pytest.raises(DownloadError) as err:
        sources.fetch([SMALL], settings=s)
    msg = str(err.value)
    assert "montagne" in msg and http_mirror in msg and "failed after 3 attempts" in msg
    assert _MirrorHandler.requests.count(path) == 3
    dest = sources.dataset_path(SMALL, s)
    assert not dest.exists()  # never a partial file under the final name
    assert _leftovers(s.raw_dir) == []
    assert SMALL not in sources.provenance(s)


def test_http_mirror_checksum_mismatch(http_mirror: str, faults, tmp_path: Path) -> None:
    s = _settings(tmp_path / "data", mirror=http_mirror)
    faults[_url_path(SMALL_CSV, s)] = ["corrupt"]
    with pytest.raises(ChecksumError) as err:
        sources.fetch([SMALL_CSV], settings=s)
    assert "pvd" in str(err.value) and "mirror file is corrupt" in str(err.value)
    assert not sources.dataset_path(SMALL_CSV, s).exists()
    assert _leftovers(s.raw_dir) == []


def _unpinned_catalogue(tmp_path: Path, s: Settings, ids: list[str]) -> Path:
    """A catalogue with the real entries ``ids`` but no sha256 (like ``bpe_xy``)."""
    lines = []
    for ds_id in ids:
        ds = sources.get_dataset(ds_id, s)
        lines += [f"[datasets.{ds_id}]", f"title = {json.dumps(ds.title)}",
                  f"producer = {json.dumps(ds.producer)}", f'licence = "{ds.licence}"',
                  f'vintage = "{ds.vintage}"', f'format = "{ds.format}"',
                  f'mirror_path = "{ds.mirror_path}"', ""]
    cat = tmp_path / "unpinned.toml"
    cat.write_text("\n".join(lines), encoding="utf-8")
    return cat


@pytest.mark.parametrize(("dataset_id", "fault", "expected"), [
    (SMALL_CSV, "html", re.escape("served an HTML page instead of the csv file (an error "
                                  "or login page?); nothing was stored")),
    (SMALL_CSV, "cut", r"is truncated or corrupt \(the last line has \d+ fields where the "
     r"header has \d+, and no line end\); nothing was stored"),
    (SMALL, "cut", r"is truncated or corrupt \(not a complete .gz stream"),
    ("communes_lot_bdcarto", "cut", r"is truncated or corrupt \(\d+ bytes where the SQLite "
     r"header announces \d+\)"),
])
def test_unpinned_download_html_page_or_truncated(
    http_mirror: str, faults, tmp_path: Path, dataset_id: str, fault: str, expected: str
) -> None:
    """A dataset the catalogue does not pin (like bpe_xy) used to store an HTML error
    page or a truncated download and record it in the lock file."""
    base = _settings(tmp_path / "data")
    s = _settings(tmp_path / "data", mirror=http_mirror,
                  catalogue_file=_unpinned_catalogue(tmp_path, base, [dataset_id]))
    faults[_url_path(dataset_id, s)] = [fault]
    with pytest.raises(DownloadError, match=rf"dataset {dataset_id}: {http_mirror}.* {expected}"):
        sources.fetch([dataset_id], settings=s)
    assert not sources.dataset_path(dataset_id, s).exists()
    assert dataset_id not in sources.provenance(s)
    assert _leftovers(s.raw_dir) == []
    (dest,) = sources.fetch([dataset_id], settings=s)  # served whole: accepted
    assert dataset_id in sources.provenance(s) and dest.stat().st_size > 0


def test_dns_failure_is_not_retried(tmp_path: Path, monkeypatch) -> None:
    """A name-resolution failure used to be retried 5 times (18 s) before the offline
    message: it now fails at the first attempt."""
    import requests

    calls = []

    def no_dns(url, **kwargs):
        calls.append(url)
        cause = socket.gaierror(-2, "Name or service not known")
        raise requests.ConnectionError(f"Failed to resolve 'www.insee.fr' ({cause})") from cause

    monkeypatch.setattr(requests, "get", no_dns)
    s = _settings(tmp_path / "data", mirror=None, http_retries=4, http_backoff_s=1.0)
    with pytest.raises(DownloadError) as err:
        sources.fetch(["bpe_xy"], settings=s)
    assert len(calls) == 1
    assert ("could not download dataset bpe_xy: https://www.insee.fr/fr/statistiques/fichier/"
            "8217525/BPE23.zip: cannot resolve the host name 'www.insee.fr' (no network or no "
            "DNS). Without network, use a mirror") in str(err.value)


def test_http_mirror_404(http_mirror: str, faults, tmp_path: Path) -> None:
    s = _settings(tmp_path / "data", mirror=http_mirror)
    path = _url_path(SMALL, s)
    faults[path] = ["404"]
    with pytest.raises(DownloadError, match=r"montagne from the mirror .*404 not found"):
        sources.fetch([SMALL], settings=s)
    assert _MirrorHandler.requests.count(path) == 1  # a 404 is not retried
    assert not sources.dataset_path(SMALL, s).exists()


# --- official URLs ------------------------------------------------------------------------------


def _offline_catalogue(tmp_path: Path, url: str) -> Path:
    cat = tmp_path / "sources.toml"
    cat.write_text(textwrap.dedent(f"""
        [datasets.centralite]
        title = "Niveaux de centralité"
        producer = "ANCT"
        licence = "Licence Ouverte 2.0"
        vintage = "COG 2025"
        format = "csv.gz"
        mirror_path = "typologies/centralite_communes_ot_2026.csv.gz"
        urls = ["{url}"]
        convert = "gzip_csv_strip_bom"
        """), encoding="utf-8")
    return cat


def test_official_url_with_converter(http_mirror: str, faults, tmp_path: Path,
                                     shared_data: Path) -> None:
    """An official download (a CSV with a BOM, served on loopback) converted to the
    mirror layout: same content as the mirror file."""
    official = tmp_path / "www" / "centralite.csv"
    official.parent.mkdir()
    with gzip.open(shared_data / "typologies/centralite_communes_ot_2026.csv.gz") as fh:
        plain = fh.read()
    official.write_bytes(b"\xef\xbb\xbf" + plain)
    rel = "/official/centralite.csv"
    _MirrorHandler.extra[rel] = official
    cat = _offline_catalogue(tmp_path, http_mirror + rel)
    s = _settings(tmp_path / "data", mirror=None, catalogue_file=cat)
    faults[rel] = ["drop"]  # retried like mirror downloads
    (dest,) = sources.fetch(["centralite"], settings=s)
    with gzip.open(dest) as fh:
        assert fh.read() == plain
    assert sources.provenance(s)["centralite"]["source"] == http_mirror + rel
    assert _leftovers(s.raw_dir) == []


def test_offline_without_mirror_cli(tmp_path: Path, monkeypatch, capsys) -> None:
    """No network, no mirror: one clear message naming the URL and the mirror option."""
    url = f"http://127.0.0.1:{_closed_port()}/centralite.csv"
    cat = _offline_catalogue(tmp_path, url)
    monkeypatch.delenv("GEO_MIRROR", raising=False)
    monkeypatch.setenv("GEO_CATALOGUE_FILE", str(cat))
    monkeypatch.setenv("GEO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GEO_HTTP_RETRIES", "1")
    monkeypatch.setenv("GEO_HTTP_BACKOFF_S", "0.01")
    try:
        status = main(["-q", "fetch", "centralite"])
    finally:
        from geo.settings import reset_settings

        reset_settings()
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("pvdgeo fetch: error:")]
    assert len(errors) == 1
    assert url in errors[0] and "Connection refused" in errors[0]
    assert "GEO_MIRROR=" in errors[0] and "--mirror" in errors[0]
    raw = tmp_path / "data" / "raw"
    assert not (raw / "typologies" / "centralite_communes_ot_2026.csv.gz").exists()
    assert _leftovers(raw) == []


def test_no_url_and_no_mirror(tmp_path: Path) -> None:
    s = _settings(tmp_path / "data", mirror=None)
    with pytest.raises(DownloadError, match=r"clc2018_lot has no official download URL.*"
                                            r"GEO_MIRROR"):
        sources.fetch(["clc2018_lot"], settings=s)


# --- concurrency --------------------------------------------------------------------------------

_WORKER = """
import sys
from geo import sources
from geo.settings import load_settings
s = load_settings()
sources.fetch(sys.argv[1].split(","), settings=s)
"""


def test_concurrent_fetches_share_the_lock_file(shared_data: Path, tmp_path: Path) -> None:
    """Two processes fetching the same datasets (in opposite orders) at once: every file
    is complete, recorded once, and the lock file stays valid JSON."""
    ids = [SMALL, SMALL_CSV, "acv", "pvd_2021", "osm_redon_complete", "eoliennes"]
    env = {**os.environ, "GEO_DATA_DIR": str(tmp_path / "data"), "GEO_MIRROR": str(shared_data)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, ",".join(order)], env=env,
                         stderr=subprocess.PIPE, text=True)
        for order in (ids, ids[::-1])
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    s = _settings(tmp_path / "data")
    lock = json.loads(s.lock_file.read_text(encoding="utf-8"))
    assert set(lock) == set(ids)
    for ds_id in ids:
        path = sources.dataset_path(ds_id, s)
        assert lock[ds_id]["sha256"] == _sha(path)
    assert _leftovers(s.raw_dir) == []  # no temporary or partial files


# --- make integration ---------------------------------------------------------------------------


def test_make_rules(tmp_path: Path) -> None:
    s = load_settings(environ={}, data_dir=tmp_path / "data")
    text = sources.make_rules(s)
    catalogue = sources.load_catalogue(s)
    for ds in catalogue.values():
        assert f"RAW_{ds.id} := {s.raw_dir / ds.local_name}" in text
    fragment = tmp_path / "datasets.mk"
    fragment.write_text(text, encoding="utf-8")
    target = s.raw_dir / catalogue["acv"].local_name
    # a clean environment: under `make test` the parent make's MAKEFLAGS/MAKELEVEL would
    # make these sub-makes print "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    run = subprocess.run(
        ["make", "-n", "-f", str(fragment), "PVDGEO=pvdgeo", "VENV_STAMP=", str(target)],
        capture_output=True, text=True, check=True, env=env,
    )
    assert run.stdout.strip() == "pvdgeo fetch acv"
    listed = subprocess.run(
        ["make", "-f", str(fragment), "--eval", "show: ; @echo $(RAW_NATIONAL_REFERENCE)",
         "show"], capture_output=True, text=True, check=True, env=env,
    ).stdout.split()
    assert str(s.raw_dir / catalogue["communes_cog"].local_name) in listed
    assert len(listed) == sum(
        1 for d in catalogue.values() if d.scope == "national" and d.kind == "reference"
    )


def test_multi_part_official_download(http_mirror: str, faults, tmp_path: Path) -> None:
    """A dataset built from two official files (ACV list + ACV 2 territories): both are
    downloaded and converted; when one part is missing nothing is left behind."""
    www = tmp_path / "www"
    www.mkdir()
    js = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [1.8322, 50.1086]},
        "properties": {"insee_com": 80001, "id_acv": "ACV001", "lib_com": "Abbeville",
                       "lib_com_carto": "Abbeville", "iso_territoire_2": "FR", "pop": 22595,
                       "insee_dep": 80, "insee_reg": 32, "siren_epci": 200070993,
                       "lib_reg": "Hauts-de-France"}}]}
    (www / "coeurdeville.js").write_text("var JS = " + json.dumps(js) + ";", encoding="utf-8")
    (www / "acv2.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None,
         "properties": {"liste_geo": "Abbeville (80001)"}}]}), encoding="utf-8")
    _MirrorHandler.extra.update({"/o/coeurdeville.js": www / "coeurdeville.js",
                                 "/o/acv2.geojson": www / "acv2.geojson"})
    cat = tmp_path / "sources.toml"
    cat.write_text(textwrap.dedent(f"""
        [datasets.acv]
        title = "ACV"
        producer = "ANCT"
        licence = "Licence Ouverte 2.0"
        vintage = "2024-04"
        format = "csv"
        mirror_path = "programmes/acv.csv"
        urls = ["{http_mirror}/o/coeurdeville.js", "{http_mirror}/o/acv2.geojson"]
        convert = "anct_acv_js"
        """), encoding="utf-8")
    s = _settings(tmp_path / "data", mirror=None, catalogue_file=cat, http_retries=1)
    faults["/o/acv2.geojson"] = ["404"]
    with pytest.raises(DownloadError, match=r"could not download dataset acv: .*acv2.geojson"):
        sources.fetch(["acv"], settings=s)
    assert _leftovers(s.raw_dir) == []  # the downloaded first part is removed too
    assert not (s.raw_dir / "programmes" / "acv.csv").exists()

    (path,) = sources.fetch(["acv"], settings=s)
    assert path.read_text(encoding="utf-8").splitlines()[1] == (
        "80001,ACV001,Abbeville,Abbeville,FR,22595,80,32,200070993,Hauts-de-France,"
        "1.8322,50.1086,True"
    )
    assert sources.provenance(s)["acv"]["source"] == (
        f"{http_mirror}/o/coeurdeville.js + {http_mirror}/o/acv2.geojson"
    )
    assert _leftovers(s.raw_dir) == []


def test_catalogue_markdown(tmp_path: Path, capsys) -> None:
    catalogue = sources.load_catalogue(load_settings(environ={}))
    try:
        assert main(["fetch", "--list", "--markdown"]) == 0
    finally:
        from geo.settings import reset_settings

        reset_settings()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| id | dataset | producer | licence | vintage | coverage |"
    rows = {line.split(" | ")[0].strip("| `"): line for line in lines[2:]}
    assert list(rows) == list(catalogue)
    apl = rows["apl_mg"]
    assert "| DREES | Licence Ouverte 2.0 | APL 2021 (populations 2019, COG ~2022) |" in apl
    assert f"]({catalogue['apl_mg'].homepage})" in apl
    assert rows["osm_pont_de_veyle"].endswith("| local: 01306 |")
    assert rows["clc2018_lot"].endswith("| local: dép. 46 |")
    for line in [lines[0], *lines[2:]]:
        assert line.count(" | ") == 5  # 6 cells, no stray separator

    cat = tmp_path / "sources.toml"
    cat.write_text('[datasets.x]\ntitle = "A | B"\nproducer = "P"\nlicence = "L"\n'
                   'vintage = "V"\nformat = "csv"\nmirror_path = "x.csv"\n', encoding="utf-8")
    table = sources.catalogue_markdown(load_settings(environ={}, catalogue_file=cat))
    assert table.splitlines()[2] == "| `x` | A \\| B | P | L | V | national |"


def test_readme_sources_table_matches_the_catalogue():
    """The README's data-source table is generated from data/sources.toml; keep in sync."""
    import re

    from geo.settings import PROJECT_ROOT, load_settings

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- sources-table:start -->(.*?)<!-- sources-table:end -->",
                      readme, flags=re.S)
    assert block, "README.md lost its sources-table markers"
    table = sources.catalogue_markdown(load_settings(environ={})).strip()
    assert table in block.group(1), (
        "README data-source table is stale: regenerate it with "
        "`pvdgeo fetch --list --markdown`"
    )
