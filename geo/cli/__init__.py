"""Command-line interface: ``pvdgeo <command> ...``.

Each module in this package registers its sub-commands through ``register(subparsers)``;
commands only parse arguments, call :mod:`geo` and write. Every error a user can cause
or meet (bad input or settings, a full disk, a read-only folder, the network) is printed
as one line naming the input and what was expected, with exit status 2 and no traceback
(``-v`` logs it); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from geo import __version__
from geo._io import describe_os_error
from geo._logging import setup_logging
from geo.errors import GeoError
from geo.settings import load_settings, set_settings

__all__ = ["build_parser", "main"]

log = logging.getLogger("geo")


def build_parser() -> argparse.ArgumentParser:
    """The ``pvdgeo`` parser with every command module registered."""
    parser = argparse.ArgumentParser(
        prog="pvdgeo",
        description="Territorial analysis for Petites Villes de Demain and Action Cœur de "
        "Ville towns: access times, H3 and commune indicators, GeoPackage and PMTiles.",
    )
    parser.add_argument("--version", action="version", version=f"pvdgeo {__version__}")
    parser.add_argument(
        "--mirror",
        help="take every dataset from this mirror (a directory laid out like "
        "../shared/data, or an http(s):// base URL) instead of the official sources; "
        "same as GEO_MIRROR",
    )
    parser.add_argument("--settings", metavar="FILE", help="TOML settings file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set walk_speed_kmh=5 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pvdgeo`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbosity=-1 if args.quiet else args.verbose)
    try:
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--set expects KEY=VALUE, got {item!r}")
            overrides[key.strip()] = value.strip()
        if args.mirror:
            overrides["mirror"] = args.mirror
        settings = load_settings(file=args.settings, **overrides)
        set_settings(settings)
        result = args.func(args, settings)
    except KeyboardInterrupt:
        print(f"pvdgeo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pvdgeo towns --pvd | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        message = user_error_message(exc)
        if message is None:
            raise
        log.debug("error details", exc_info=True)
        print(f"pvdgeo {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


#: Libraries whose exceptions are about the data or files given to them (a corrupt
#: raster, an unreadable GeoPackage, a bad CRS), reported as user errors.
_DATA_LIBRARIES = ("rasterio", "pyogrio", "pyproj", "pyarrow", "fiona", "osmium", "h3")


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can cause or meet, None for a bug.

    :class:`~geo.errors.GeoError` (bad input, settings, data sources, outputs) and
    operating-system errors (a full disk, a read-only folder, a missing file) are user
    errors, and so are the errors of the geodata libraries about their input files;
    anything else is a bug (its traceback is kept).
    """
    if isinstance(exc, GeoError):
        return str(exc)
    if isinstance(exc, OSError) and type(exc).__module__ == "builtins":
        return describe_os_error(exc)
    if isinstance(exc, MemoryError):
        return "out of memory; run fewer towns in parallel or on a larger machine"
    if type(exc).__module__.split(".")[0] in _DATA_LIBRARIES:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return f"{text} ({type(exc).__module__.split('.')[0]} {type(exc).__name__}; -v for details)"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
