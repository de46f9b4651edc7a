"""``pvdgeo access``: walking and cycling times to facilities, and isochrones, for a town."""

from __future__ import annotations

import argparse
import sys

from geo.cli._args import ListAction, add_insee, deprecated
from geo.settings import Settings
from geo.vocab import MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "access",
        help="street graphs, minutes to the nearest facilities and isochrones for a town",
        description="Build the walking and/or cycling street graph of a town and its "
        "catchment, compute for every node the minutes to the nearest facility of each "
        "category and key subcategory and the number reachable within 5/10/15/20 "
        "minutes, and isochrones from the town hall. Writes access_<mode>_nodes.parquet, "
        "access_<mode>_edges.parquet and isochrones.parquet into data/out/<INSEE>/ (or "
        "--out). Streets come from the town's catalogued OSM extract or road lines "
        "unless --osm/--roads is given.",
    )
    add_insee(p, optional=True)
    p.add_argument("--mode", action=ListAction, convert=_mode, metavar="MODE",
                   help=f"travel modes: {', '.join(MODES)} (default all)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--osm", metavar="FILE", help="OSM XML (.osm, .osm.gz, .osm.bz2) or PBF")
    src.add_argument("--roads", metavar="FILE",
                     help="road lines without node ids (GeoJSON, GeoPackage, shapefile, or "
                     "a tar of GeoJSON)")
    src.add_argument("--overpass", action="store_true",
                     help="download the streets from the Overpass API when the catalogue "
                     "has no street source for the town")
    p.add_argument("--dem", metavar="FILE", help="elevation raster for slope-aware times")
    p.add_argument("--facilities", metavar="FILE",
                   help="facilities GeoParquet (default <out>/facilities.parquet)")
    p.add_argument("--out", metavar="DIR",
                   help="town folder (default data/out/<INSEE>); the card and facilities "
                   "stages run first there when their files are missing or out of date")
    p.add_argument("--force", action="store_true", help="run even when up to date")
    p.add_argument("--make-rules", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _mode(value: str) -> str:
    if value not in MODES:
        raise ValueError(value)
    return value


def run(args: argparse.Namespace, settings: Settings) -> int:
    from geo import stages, streets
    from geo.cli.town import report_record

    if args.make_rules:
        deprecated("pvdgeo access --make-rules", "pvdgeo make-rules streets")
        sys.stdout.write(streets.street_make_rules(settings))
        return 0
    if not args.insee:
        print("pvdgeo access: error: INSEE is required", file=sys.stderr)
        return 2
    options = {k: v for k, v in {
        "modes": tuple(dict.fromkeys(args.mode)) if args.mode else None,
        "streets_file": args.osm or args.roads, "dem": args.dem,
        "facilities_file": args.facilities, "overpass": args.overpass or None,
    }.items() if v is not None}
    record = stages.run_town(args.insee, ["access"], out_dir=args.out, settings=settings,
                             options={"access": options}, force=args.force,
                             upstream="missing", touch_targets=True)
    report_record(record)
    return 0
