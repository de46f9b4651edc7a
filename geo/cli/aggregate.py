"""``pvdgeo aggregate`` (H3 and commune indicators of a town) and ``pvdgeo
landcover-communes`` (the national land-cover table)."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from geo import landcover, stages
from geo._io import check_output_file, write_parquet
from geo.cli._args import ListAction, add_departements, add_insee, deprecated
from geo.cli.town import report_record
from geo.errors import BadArgumentError
from geo.settings import Settings
from geo.vocab import is_h3_resolution

log = logging.getLogger("geo.cli.aggregate")

_YEAR_FILE = re.compile(r"^(?P<year>\d{4})=(?P<path>.+)$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "aggregate",
        help="H3 cells and commune indicators of a town (land cover, APL, facilities, "
        "access, E2SFCA)",
        description="The aggregate stage: data/out/<INSEE>/h3_r<res>.parquet and "
        "communes.parquet from the town's facilities and access outputs, CORINE land cover "
        "and DREES APL. Missing inputs (no street network, no land cover) are reported and "
        "the other indicators still written. The national land-cover table is `pvdgeo "
        "landcover-communes`.",
    )
    add_insee(p, optional=True)
    p.add_argument("--res", action=ListAction, convert=int, metavar="R",
                   help="H3 resolutions (default: settings h3_resolutions, 8 9)")
    _landcover_option(p)
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default data/out/<INSEE>)")
    p.add_argument("--inputs", type=Path, default=None, metavar="DIR",
                   help="folder with the town's facilities and access outputs "
                   "(default: --out, else data/out/<INSEE>)")
    p.add_argument("--force", action="store_true", help="run even when up to date")
    # former mode flag, now the landcover-communes command
    p.add_argument("--landcover-communes", action="store_true", help=argparse.SUPPRESS)
    add_departements(p, help=argparse.SUPPRESS)
    p.set_defaults(func=run)

    c = sub.add_parser(
        "landcover-communes",
        help="national table: land-cover shares of every commune CORINE covers",
        description="Write the CORINE land-cover shares (level 1 and artificial surfaces) "
        "of every commune a land-cover source covers to "
        "data/interim/landcover_communes.parquet (or --out).",
    )
    _landcover_option(c)
    c.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="output Parquet file")
    add_departements(c)
    c.set_defaults(func=run_landcover_communes)


def _landcover_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--landcover", nargs="+", default=None, metavar="[YEAR=]FILE",
                   help="CORINE raster (GeoTIFF, CLC or EEA grid codes) or vector (polygons "
                   "with a code_18-like column) files, instead of the catalogue's; "
                   "YEAR=FILE gives the vintage when neither the file name nor a code "
                   "column tells it")


def _resolutions(values: list[int] | None) -> list[int] | None:
    if values is None:
        return None
    bad = [v for v in values if not is_h3_resolution(v)]
    if not values or bad:
        raise BadArgumentError(f"--res expects H3 resolutions in 0..15, got {values}")
    return values


def _landcover_args(items: list[str] | None) -> list[landcover.LandCoverSource] | None:
    if items is None:
        return None
    out = []
    for item in items:
        m = _YEAR_FILE.match(item)
        year, path = (int(m.group("year")), m.group("path")) if m else (None, item)
        source = landcover.open_landcover(path, year=year)
        if source.year is None:
            raise BadArgumentError(
                f"--landcover {item}: no CORINE vintage in the file name (clc2018_..., "
                f"CLC18_...), its code column or its metadata; give it as "
                f"--landcover YEAR={path} (e.g. 2018={path})")
        out.append(source)
    return out


def run_landcover_communes(args: argparse.Namespace, settings: Settings) -> int:
    out = check_output_file(args.out or settings.interim_dir / "landcover_communes.parquet",
                            "Parquet", what="the land-cover table (--out)")
    table, meta = landcover.commune_landcover(
        _landcover_args(args.landcover), departements=args.departement, settings=settings
    )
    write_parquet(table, out, metadata=meta)
    log.info("wrote %s: %d communes (%d fully covered), CLC %s", out, meta["communes"],
             meta["communes_fully_covered"], meta.get("clc_year"))
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.landcover_communes:
        deprecated("pvdgeo aggregate --landcover-communes", "pvdgeo landcover-communes")
        return run_landcover_communes(args, settings)
    if not args.insee:
        raise BadArgumentError("give a town INSEE code")
    options = {k: v for k, v in {"resolutions": _resolutions(args.res),
                                  "landcover_sources": _landcover_args(args.landcover),
                                  "inputs_dir": args.inputs}.items() if v is not None}
    record = stages.run_town(args.insee, ["aggregate"], out_dir=args.out, settings=settings,
                             options={"aggregate": options}, force=args.force,
                             upstream="missing", touch_targets=True)
    report_record(record)
    return 0
