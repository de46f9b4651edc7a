"""Command-line interface: ``pvdgeo <command> ...``.

Each module in this package registers its sub-commands through ``register(subparsers)``;
commands only parse arguments, call :mod:`geo` and write. Errors from :mod:`geo` are
printed as one line (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from geo import __version__
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
    except GeoError as exc:
        log.debug("error details", exc_info=True)
        print(f"pvdgeo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pvdgeo {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
