"""``pvdgeo facilities``: a town's facilities, or the national facility counts per commune."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from geo import communes, facilities, stages
from geo.cli.town import report_record
from geo.errors import UnknownCommuneError
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "facilities",
        help="write a town's facilities (OSM, BPE, culture, energy) or the national counts",
        description="Write the facilities of a town and its catchment communes to "
        "data/out/INSEE/facilities.parquet (or --out) and print counts by category and "
        "source. With --counts, write facility counts per category and per 10,000 "
        "inhabitants for every commune of France (data/interim/"
        f"{facilities.COUNTS_FILE}).",
    )
    p.add_argument("insee", nargs="?", help="INSEE code or name of the town")
    p.add_argument("--out", metavar="DIR_OR_FILE",
                   help="town folder (default data/out/INSEE; the card stage runs first "
                   "there if needed), or a .parquet file to write the table to; with "
                   "--counts, the output Parquet file")
    p.add_argument("--force", action="store_true", help="run even when up to date")
    p.add_argument("--osm", metavar="FILE",
                   help="OSM extract to read (default: the catalogued extract of the town)")
    p.add_argument("--bpe-xy", metavar="FILE",
                   help="geolocated BPE file (default: data/raw/bpe/BPE23.csv if downloaded)")
    p.add_argument("--counts", action="store_true",
                   help="national facility counts per commune instead of a town")
    p.add_argument("--bpe", choices=("auto", "xy", "2013", "2009"), default="auto",
                   help="BPE vintage of the national counts (default: the geolocated file "
                   "when downloaded, else the 2013 counts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.counts:
        return _run_counts(args, settings)
    if not args.insee:
        raise UnknownCommuneError("give the INSEE code or name of a town (or --counts)")
    insee = communes.resolve_insee(args.insee, settings)
    if args.out and Path(args.out).suffix.lower() == ".parquet":  # one file, not a town run
        table = facilities.town_facilities(insee, osm=args.osm, bpe_xy=args.bpe_xy,
                                           settings=settings)
        facilities.write_facilities(table, Path(args.out))
        print(format_town(table))
        print(f"wrote {args.out}")
        return 0
    options = {k: v for k, v in {"osm": args.osm, "bpe_xy": args.bpe_xy}.items() if v}
    record = stages.run_town(insee, ["facilities"], out_dir=args.out, settings=settings,
                             options={"facilities": options}, force=args.force,
                             upstream="missing", touch_targets=True)
    path = record.out_dir / "facilities.parquet"
    table = facilities.read_facility_table(path)
    print(format_town(table))
    report_record(record)
    return 0


def format_town(table: pd.DataFrame) -> str:
    """Counts by category and source, the chain/independent split, and what was left out."""
    meta = table.attrs.get("meta", {})
    lines = [f"Facilities of {meta.get('insee', '?')} and its "
             f"{len(meta.get('catchment_communes', []))} catchment communes "
             f"({meta.get('crs', '')}): {len(table)}", ""]
    summary = facilities.summarize(table)
    lines += summary.to_string().splitlines()
    merged = int(table["source"].str.contains(";").sum())
    if merged:
        lines.append(f"({merged} facilities seen by several sources, counted under the first)")
    shops = table[table["category"] == "commerces"]
    if len(shops):
        n_chain = int((shops["chain"] == True).sum())  # noqa: E712 - nullable boolean
        n_indep = int((shops["chain"] == False).sum())  # noqa: E712
        n_unknown = int(shops["chain"].isna().sum())
        named = n_chain + n_indep
        share = f" ({n_chain / named:.0%} chains)" if named else ""
        lines += ["", f"Shops, restaurants, cafés: {n_chain} chain, {n_indep} independent, "
                  f"{n_unknown} unnamed{share}"]
        examples = shops[shops["chain"] == True]["brand"].dropna().unique()[:8]  # noqa: E712
        if len(examples):
            lines.append(f"  chains: {', '.join(examples)}")
    reports = table.attrs.get("reports", {})
    if reports:
        lines += ["", "Sources:"]
        lines += [f"  {r.summary()}" for r in reports.values() if r is not None]
        for r in reports.values():
            for note in (r.notes if r is not None else []):
                lines.append(f"    {r.source}: {note}")
    return "\n".join(lines)


def _run_counts(args: argparse.Namespace, settings: Settings) -> int:
    counts = facilities.commune_counts(settings=settings, bpe=args.bpe)
    path = facilities.write_commune_counts(counts, args.out, settings=settings)
    meta = counts.attrs.get("meta", {})
    print(f"Facility counts of {len(counts):,} communes (COG {settings.cog_year}), "
          f"BPE: {meta.get('bpe')}")
    totals = {cat: int(counts[f"n_{cat}"].sum()) for cat in facilities.CATEGORY_KEYS}
    print("  " + ", ".join(f"{k} {v:,}" for k, v in totals.items()))
    print(f"  wind power {counts['eolienne_power_mw'].sum():,.0f} MW")
    for name, check in meta.get("checks", {}).items():
        print(f"  {name}: {check['n_mismatch']} of {check['n_checked']} points "
              f"({check['mismatch_rate']:.1%}) in another commune polygon than their code")
    for rep in meta.get("reports", {}).values():
        if rep["unknown"]:
            print(f"  {rep['source']}: unknown {rep['unknown']}")
    print(f"wrote {path}")
    return 0
