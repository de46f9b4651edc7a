"""The viewer's HTTP server: byte ranges for PMTiles, MIME types, loopback only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pmtiles.reader import Reader

from geo.export.serve import parse_range, serve_in_thread
from geo.export.tiles import PMTilesSummary

DATA = os.urandom(1000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("served")
    (root / "a.pmtiles").write_bytes(DATA)
    (root / "viewer").mkdir()
    (root / "viewer" / "index.html").write_text("<!doctype html><title>x</title>")
    (root / "viewer" / "app.mjs").write_text("export const x = 1;")
    srv, url = serve_in_thread(root)
    yield url, root
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("bytes=0-99", (0, 99)),
    ("bytes=900-", (900, 999)),
    ("bytes=-10", (990, 999)),
    ("bytes=-5000", (0, 999)),
    ("bytes=990-2000", (990, 999)),
    ("bytes=1000-1100", False),
    ("bytes=-0", False),
    ("bytes=5-1", None),
    ("bytes=0-1,5-9", None),  # multi-range: the whole file
    ("items=0-9", None),
])
def test_parse_range(header, expected) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-99", 0, 99), ("bytes=900-", 900, 999), ("bytes=-10", 990, 999),
    ("bytes=990-2000", 990, 999), ("bytes=127-127", 127, 127),
])
def test_range_requests(server, header: str, start: int, end: int) -> None:
    url, _ = server
    r = requests.get(f"{url}/a.pmtiles", headers={"Range": header}, timeout=10)
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/1000"
    assert int(r.headers["Content-Length"]) == end - start + 1
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.content == DATA[start:end + 1]


def test_unsatisfiable_range(server) -> None:
    url, _ = server
    r = requests.get(f"{url}/a.pmtiles", headers={"Range": "bytes=1000-"}, timeout=10)
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */1000"


def test_whole_file_and_head(server) -> None:
    url, _ = server
    r = requests.get(f"{url}/a.pmtiles", timeout=10)
    assert r.status_code == 200 and r.content == DATA
    assert r.headers["Accept-Ranges"] == "bytes"
    h = requests.head(f"{url}/a.pmtiles", headers={"Range": "bytes=10-19"}, timeout=10)
    assert h.status_code == 206 and h.headers["Content-Length"] == "10" and h.content == b""


def test_mime_types_redirect_and_traversal(server) -> None:
    url, root = server
    assert requests.get(f"{url}/viewer/app.mjs", timeout=10).headers["Content-Type"] == (
        "text/javascript")
    r = requests.get(f"{url}/", timeout=10, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/viewer/"
    assert requests.get(f"{url}/", timeout=10).text.startswith("<!doctype html>")
    secret = root.parent / "secret.txt"
    secret.write_text("outside the served folder")
    r = requests.get(f"{url}/../secret.txt", timeout=10)
    assert r.status_code == 404 and "outside" not in r.text
    assert requests.get(f"{url}/missing.pmtiles", headers={"Range": "bytes=0-1"},
                        timeout=10).status_code == 404


def test_pmtiles_reader_over_http(town_pmtiles: PMTilesSummary) -> None:
    """A PMTiles client reading the town archive through ranges gets what is on disk."""
    srv, url = serve_in_thread(town_pmtiles.path.parent)
    try:
        session = requests.Session()
        requested = []

        def get_bytes(offset: int, length: int) -> bytes:
            requested.append(length)
            r = session.get(f"{url}/{town_pmtiles.path.name}", timeout=10,
                            headers={"Range": f"bytes={offset}-{offset + length - 1}"})
            assert r.status_code == 206
            return r.content

        reader = Reader(get_bytes)
        meta = reader.metadata()
        z, x, y = town_pmtiles.max_tile
        tile = reader.get(z, x, y)
        assert meta["pvdgeo"]["insee"] == town_pmtiles.metadata["pvdgeo"]["insee"]
        assert len(tile) == town_pmtiles.max_tile_bytes
        assert sum(requested) < town_pmtiles.bytes  # ranges, not the whole archive
    finally:
        srv.shutdown()
        srv.server_close()


def test_serves_loopback_only(tmp_path: Path) -> None:
    srv, url = serve_in_thread(tmp_path)
    try:
        assert srv.server_address[0] == "127.0.0.1"
        assert url.startswith("http://127.0.0.1:")
    finally:
        srv.shutdown()
        srv.server_close()
