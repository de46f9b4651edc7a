"""``pvdgeo site``: the national dashboard site (data/out/site/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from geo import communes
from geo.cli._args import ListAction, add_departements
from geo.errors import BadArgumentError
from geo.export.site import build_site, site_dir
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "site",
        help="national dashboard site of the PVD towns (data/out/site/, make serve)",
        description="Build the static dashboard site: France map of every indicator of the "
        "national commune tables and of the built towns (geo.dashboard), search, town "
        "panels compared with similar towns, table view and CSV downloads. Serve data/out "
        "with `make serve` (HTTP Range) and open /site/.",
    )
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="site folder (default data/out/site/; it links to ../viewer and "
                   "../<insee>, so keep it beside them)")
    p.add_argument("--compare", action=ListAction, metavar="TOWN",
                   help="towns that get a panel compared with their peers (codes or "
                   "names; default every PVD and ACV town and every built town)")
    add_departements(p, old="--departements",
                     help="draw only these départements on the map (a regional site or a "
                     "quick preview; the tables and downloads stay national)")
    p.add_argument("--no-tiles", action="store_true",
                   help="keep the tile archives already in the site folder")
    p.set_defaults(func=run_site)


def run_site(args: argparse.Namespace, settings: Settings) -> int:
    compare = None
    if args.compare:
        compare = [communes.resolve_insee(q, settings) for q in args.compare]
    deps = None
    if args.departement:
        known = {communes.departement_of(c) for c in communes.load_reference(settings)["insee"]}
        deps = [d.upper() if d.upper() in {"2A", "2B"} else d.zfill(2)
                for d in args.departement]
        unknown = [d for d in deps if d not in known]
        if unknown:
            raise BadArgumentError(f"--departements: unknown département(s) "
                                   f"{', '.join(unknown)} (expected codes such as 01, 2A, 971)")
    summary = build_site(settings, out_dir=args.out, compare=compare, departements=deps,
                         tiles=not args.no_tiles)
    folder = summary.index.parent
    print(f"Site: {summary.index} ({summary.communes} communes, {summary.compared} towns "
          f"compared with their peers, {summary.indicators} indicators)")
    for label, tiles in (("communes", summary.commune_tiles), ("cells", summary.cell_tiles)):
        if tiles is not None:
            z, x, y = tiles.max_tile
            print(f"  tiles {label}: {tiles.bytes / 1e6:.1f} MB, {tiles.tiles} tiles, zooms "
                  f"{tiles.min_zoom}-{tiles.max_zoom}, largest {z}/{x}/{y} "
                  f"{tiles.max_tile_bytes / 1e3:.0f} kB")
    print(f"  national table: {summary.table} and {summary.csv}")
    print(f"  built in {summary.seconds.get('total', 0):.0f} s")
    if folder.resolve() == site_dir(settings).resolve():
        print("  open it: `make serve`, then http://127.0.0.1:8765/site/")
    return 0
