"""``pvdgeo make-rules`` and ``pvdgeo settings-stamps``: what the Makefile reads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geo import _make, communes
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "make-rules",
        help="print a Make fragment (datasets, streets or code) for the Makefile",
        description="Print a Make fragment generated from the catalogue or the code: "
        "'datasets' (RAW_<id> variables and fetch rules), 'streets' (the street source "
        "of every covered town), 'code' (CODE_<stage>: the source files of each stage and "
        "national table, with every module they import).",
    )
    r.add_argument("fragment", choices=_make.FRAGMENTS, metavar="FRAGMENT",
                   help=f"one of {', '.join(_make.FRAGMENTS)}")
    r.set_defaults(func=run_rules)

    st = sub.add_parser(
        "settings-stamps",
        help="write a town's per-stage settings stamps (rewritten only when they change)",
        description="Write DIR/.pvdgeo/settings-<stage>.json, the settings each stage "
        "reads, only when they changed: make reruns a stage when pvdgeo.toml, a GEO_* "
        "variable or --set changes what it computes.",
    )
    st.add_argument("insee", metavar="INSEE", help="INSEE code of the town")
    st.add_argument("--out", type=Path, metavar="DIR",
                    help="town folder (default data/out/INSEE)")
    st.set_defaults(func=run_stamps)


def run_rules(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(_make.fragment(args.fragment, settings))
    return 0


def run_stamps(args: argparse.Namespace, settings: Settings) -> int:
    code = communes.validate_insee(args.insee)
    _make.write_settings_stamps(args.out or settings.town_dir(code), settings)
    return 0
