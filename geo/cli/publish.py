"""``pvdgeo publish`` and ``pvdgeo viewer``: the GeoPackage, the PMTiles and the viewer."""

from __future__ import annotations

import argparse
from pathlib import Path

from geo import communes, stages
from geo._io import ensure_writable_dir
from geo.cli._args import add_insee, deprecated
from geo.cli.town import report_record
from geo.export import tiles, viewer
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="write a town's GeoPackage (QGIS) and PMTiles (web maps)",
        description="Publish the layers a town run produced: <insee>.gpkg (metric CRS, "
        "QGIS styles, provenance) and <insee>.pmtiles (EPSG:4326 vector tiles for the "
        "MapLibre styles in tiles/styles), then refresh the viewer's town index.",
    )
    add_insee(p, names=False)
    only = p.add_mutually_exclusive_group()
    only.add_argument("--gpkg", dest="only", action="store_const", const="gpkg",
                      help="only the GeoPackage")
    only.add_argument("--tiles", dest="only", action="store_const", const="tiles",
                      help="only the PMTiles (from an existing GeoPackage)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="town folder (default data/out/<INSEE>)")
    p.add_argument("--dir", type=Path, dest="old_dir", help=argparse.SUPPRESS)
    p.add_argument("--force", action="store_true", help="run even when up to date")
    p.set_defaults(func=run_publish)

    v = sub.add_parser(
        "viewer",
        help="build the static map viewer into data/out/viewer",
        description="Copy the viewer, the MapLibre styles and the npm libraries into "
        "data/out/viewer and index every built town. Serve it with `make serve`.",
    )
    v.set_defaults(func=run_viewer)


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    insee = communes.validate_insee(args.insee)
    if args.old_dir is not None:
        deprecated("pvdgeo publish --dir", "pvdgeo publish --out")
        args.out = args.out or args.old_dir
    options = {"only": args.only} if args.only else {}
    record = stages.run_town(insee, ["publish"], out_dir=args.out, settings=settings,
                             options={"publish": options}, force=args.force,
                             upstream="missing", touch_targets=True)
    report_record(record)
    gp = record.out_dir / f"{record.insee}.gpkg"
    if args.only in (None, "gpkg") and gp.is_file():
        print(f"GeoPackage: {gp} ({gp.stat().st_size / 1e6:.1f} MB)")
    pm = record.out_dir / f"{record.insee}.pmtiles"
    if args.only in (None, "tiles") and pm.is_file():
        summary = tiles.check_pmtiles(pm)
        z, x, y = summary.max_tile
        print(f"PMTiles:    {summary.path} ({summary.bytes / 1e3:.0f} kB, {summary.tiles} "
              f"tiles, zooms {summary.min_zoom}-{summary.max_zoom}, largest tile "
              f"{z}/{x}/{y} {summary.max_tile_bytes / 1e3:.1f} kB)")
        if viewer.viewer_dir(settings).is_dir() and args.out is None:
            viewer.write_town_index(settings)
    return 0


def run_viewer(args: argparse.Namespace, settings: Settings) -> int:
    ensure_writable_dir(viewer.viewer_dir(settings), what="viewer folder")
    index = viewer.build_viewer(settings)
    print(f"Viewer:     {index}")
    return 0
