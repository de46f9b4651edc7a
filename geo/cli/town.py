"""``pvdgeo town``: a whole town run in one process; ``pvdgeo card``: its first stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from geo import stages
from geo.settings import Settings

__all__ = ["register", "report_record"]


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "town",
        help="run every stage of a town (card, facilities, access, aggregate, publish, "
        "portrait) in one process",
        description="Run the town pipeline for INSEE into data/out/INSEE/ (or --out): "
        "each stage runs only when its code, settings or inputs changed since it last "
        "ran (see geo.stages). Stage logs are appended to logs/<stage>.log.",
    )
    t.add_argument("insee", metavar="INSEE", help="INSEE code (or name) of the town")
    t.add_argument("--out", type=Path, metavar="DIR",
                   help="town folder (default data/out/INSEE)")
    t.add_argument("--stage", action="append", choices=stages.STAGE_NAMES, metavar="STAGE",
                   help="only this stage and the stages it needs (repeatable; one of "
                   f"{', '.join(stages.STAGE_NAMES)})")
    t.add_argument("--force", action="store_true",
                   help="run the chosen stages even when they are up to date")
    t.set_defaults(func=run_town)

    c = sub.add_parser(
        "card",
        help="write a town's card (town.json) and catchment (catchment.parquet)",
        description="The card stage: town.json (names, codes, typology, programmes, "
        "catchment communes) and catchment.parquet (the catchment communes' polygons, "
        "read by the later stages) in data/out/INSEE/ (or --out).",
    )
    c.add_argument("insee", metavar="INSEE", help="INSEE code (or name) of the town")
    c.add_argument("--out", type=Path, metavar="DIR",
                   help="town folder (default data/out/INSEE)")
    c.add_argument("--force", action="store_true", help="write even when up to date")
    c.set_defaults(func=run_card)


def report_record(record: stages.TownRecord) -> None:
    """Print what a town run did, one line per stage."""
    for r in record.stages:
        what = ", ".join(r.outputs) or "no file"
        timing = f" in {r.seconds:.1f} s" if r.status == "built" else ""
        print(f"{record.insee} {r.stage:<10} {r.status}{timing}: {what}")


def run_town(args: argparse.Namespace, settings: Settings) -> int:
    record = stages.run_town(args.insee, args.stage, out_dir=args.out, settings=settings,
                             force=args.force)
    report_record(record)
    print(f"Town {record.insee}: outputs in {record.out_dir}/")
    return 0


def run_card(args: argparse.Namespace, settings: Settings) -> int:
    record = stages.run_town(args.insee, ["card"], out_dir=args.out, settings=settings,
                             force=args.force, upstream="missing", touch_targets=True)
    report_record(record)
    return 0
