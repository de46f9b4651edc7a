"""``pvdgeo aggregate``: H3 and commune indicators of a town; national land-cover table."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from geo import landcover, stages
from geo._io import write_parquet
from geo.cli.town import report_record
from geo.errors import InputFileError
from geo.settings import Settings

log = logging.getLogger("geo.cli.aggregate")

_YEAR_FILE = re.compile(r"^(?P<year>\d{4})=(?P<path>.+)$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "aggregate",
        help="H3 cells and commune indicators of a town (land cover, APL, facilities, "
        "access, E2SFCA)",
        description="Write data/out/<INSEE>/h3_r<res>.parquet and communes.parquet from the "
        "town's facilities and access outputs, CORINE land cover and DREES APL. Missing "
        "inputs (no street network, no land cover) are reported and the other indicators "
        "still written. With --landcover-communes, write the land-cover shares of every "
        "commune a CORINE source covers to data/interim/landcover_communes.parquet.",
    )
    p.add_argument("insee", nargs="?", metavar="INSEE", help="town INSEE code or name")
    p.add_argument("--res", default=None, metavar="R[,R...]",
                   help="H3 resolutions (default: settings h3_resolutions, 8,9)")
    p.add_argument("--landcover", nargs="+", default=None, metavar="[YEAR=]FILE",
                   help="CORINE raster (GeoTIFF, CLC or EEA grid codes) or vector (polygons "
                   "with a code_18-like column) files, instead of the catalogue's; "
                   "YEAR=FILE gives the vintage when neither the file name nor a code "
                   "column tells it")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default data/out/<INSEE>); with "
                   "--landcover-communes, the output file")
    p.add_argument("--inputs", type=Path, default=None, metavar="DIR",
                   help="folder with the town's facilities and access outputs "
                   "(default: --out, else data/out/<INSEE>)")
    p.add_argument("--force", action="store_true", help="run even when up to date")
    p.add_argument("--landcover-communes", action="store_true",
                   help="national table: land-cover shares of every covered commune")
    p.add_argument("--departement", nargs="+", default=None, metavar="DEP",
                   help="with --landcover-communes: only these départements")
    p.set_defaults(func=run)


def _parse_resolutions(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputFileError(f"--res expects comma-separated integers, got {text!r}") from None
    bad = [v for v in values if not 0 <= v <= 15]
    if not values or bad:
        raise InputFileError(f"--res expects H3 resolutions in 0..15, got {text!r}")
    return values


def _landcover_args(items: list[str] | None) -> list[landcover.LandCoverSource] | None:
    if items is None:
        return None
    out = []
    for item in items:
        m = _YEAR_FILE.match(item)
        year, path = (int(m.group("year")), m.group("path")) if m else (None, item)
        out.append(landcover.open_landcover(path, year=year))
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    sources = _landcover_args(args.landcover)
    if args.landcover_communes:
        table, meta = landcover.commune_landcover(
            sources, departements=args.departement, settings=settings
        )
        out = args.out or settings.interim_dir / "landcover_communes.parquet"
        write_parquet(table, out, metadata=meta)
        log.info("wrote %s: %d communes (%d fully covered), CLC %s", out, meta["communes"],
                 meta["communes_fully_covered"], meta.get("clc_year"))
        return 0
    if not args.insee:
        raise InputFileError("give a town INSEE code (or --landcover-communes)")
    options = {k: v for k, v in {"resolutions": _parse_resolutions(args.res),
                                  "landcover_sources": sources,
                                  "inputs_dir": args.inputs}.items() if v is not None}
    record = stages.run_town(args.insee, ["aggregate"], out_dir=args.out, settings=settings,
                             options={"aggregate": options}, force=args.force,
                             upstream="missing", touch_targets=True)
    report_record(record)
    return 0
