"""A static file server for the viewer, on the loopback interface, with HTTP Range.

PMTiles archives are read by byte ranges (``Range: bytes=start-end``), which Python's
``http.server`` does not implement. :class:`RangeRequestHandler` adds single-range
requests (RFC 9110 section 14: ``206 Partial Content`` with ``Content-Range``, ``416``
when the range is outside the file, suffix ranges ``bytes=-N`` and open ranges
``bytes=N-``), ``Accept-Ranges``, an ``ETag``, and the MIME types the viewer needs
(``.mjs``, ``.pmtiles``, ``.gpkg``). Multi-range requests get the whole file (allowed by
the RFC). ``/`` redirects to the dashboard site (``site/``) when it is built, else to
the viewer.

``make serve`` runs ``python -m geo.export.serve --port 8765 data/out``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, AnyStr, BinaryIO, Literal

from geo.errors import GeoError, InputFileError

if TYPE_CHECKING:
    from _typeshed import SupportsRead, SupportsWrite

__all__ = ["RangeRequestHandler", "main", "make_server", "parse_range", "serve_in_thread"]

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """The inclusive byte range ``(start, end)`` a ``Range`` header asks of a file of
    ``size`` bytes; ``None`` when the header is absent, malformed or multi-range (serve
    the whole file); ``False`` when the range is unsatisfiable (416)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix: the last N bytes
        length = int(m[2])
        if length == 0 or size == 0:
            return False
        return max(size - length, 0), size - 1
    start = int(m[1])
    end = int(m[2]) if m[2] else size - 1
    if m[2] and end < start:
        return None  # syntactically invalid: ignore the header
    if start >= size:
        return False
    return start, min(end, size - 1)


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """``SimpleHTTPRequestHandler`` with single byte-range requests."""

    extensions_map = {  # noqa: RUF012 (class attribute of the base class)
        **SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".json": "application/json",
        ".pmtiles": "application/octet-stream",
        ".gpkg": "application/geopackage+sqlite3",
        ".css": "text/css",
        ".html": "text/html; charset=utf-8",
    }
    #: bytes of the requested range still to send (None: not a range request)
    _remaining: int | None = None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def send_head(self) -> BinaryIO | None:
        if self.path in {"", "/"}:
            self.send_response(HTTPStatus.FOUND)
            root = Path(self.directory)
            home = "/site/" if (root / "site" / "index.html").is_file() else "/viewer/"
            self.send_header("Location", home)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        path = self.translate_path(self.path)
        if Path(path).is_dir() or "Range" not in self.headers:
            return super().send_head()
        try:
            fh = open(path, "rb")  # noqa: PTH123, SIM115 (returned to the base class)
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        try:
            stat = os.fstat(fh.fileno())
            size = stat.st_size
            wanted = parse_range(self.headers.get("Range"), size)
            etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
            if wanted is None:
                fh.close()
                return super().send_head()
            if wanted is False:
                fh.close()
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            start, end = wanted
            self.send_response(HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Type", self.guess_type(path))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
            self.end_headers()
            fh.seek(start)
            self._remaining = end - start + 1
            return fh
        except BaseException:
            fh.close()
            raise

    def copyfile(self, source: SupportsRead[AnyStr], outputfile: SupportsWrite[AnyStr]) -> None:
        remaining = self._remaining
        if remaining is None:
            return super().copyfile(source, outputfile)
        self._remaining = None
        while remaining > 0:
            chunk = source.read(min(remaining, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)
        return None

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        if code == HTTPStatus.OK:
            self.send_header("Accept-Ranges", "bytes")


def make_server(root: str | Path, port: int = 8765, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A threading HTTP server for ``root`` (not started); port 0 picks a free port."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"{root}: not a directory to serve (build a town first: "
                             "make demo)")
    handler = functools.partial(RangeRequestHandler, directory=str(root))
    return ThreadingHTTPServer((host, port), handler)


def serve_in_thread(root: str | Path, port: int = 0,
                    host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns it and its base URL (for tests).
    Stop it with ``server.shutdown(); server.server_close()``."""
    server = make_server(root, port, host)
    threading.Thread(target=server.serve_forever, daemon=True, name="pvdgeo-serve").start()
    return server, f"http://{host}:{server.server_address[1]}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m geo.export.serve [--port N] [--host H] DIR``."""
    parser = argparse.ArgumentParser(prog="python -m geo.export.serve",
                                     description="Serve the viewer and the towns' outputs "
                                     "(HTTP Range support for PMTiles).")
    parser.add_argument("root", nargs="?", default="data/out", help="folder to serve")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface (default loopback only)")
    args = parser.parse_args(argv)
    try:
        server = make_server(args.root, args.port, args.host)
    except (GeoError, OSError) as exc:
        print(f"serve: error: {exc}", file=sys.stderr)
        return 2
    host, port = str(server.server_address[0]), int(server.server_address[1])
    if not (Path(args.root) / "viewer" / "index.html").is_file():
        print(f"serve: no viewer in {args.root}/viewer yet: run `make demo` (or `make "
              "viewer`) first", file=sys.stderr)
    print(f"Serving {Path(args.root).resolve()} at http://{host}:{port}/ "
          f"(dashboard: http://{host}:{port}/site/, viewer: http://{host}:{port}/viewer/); "
          "Ctrl+C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
