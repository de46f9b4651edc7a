"""``pvdgeo facilities`` (a town's facilities), ``pvdgeo facility-counts`` (national counts
per commune) and ``pvdgeo facility-trends`` (their change between BPE vintages)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from geo import communes, facilities, facility_trends, stages
from geo._io import check_output_file
from geo.cli._args import add_insee, deprecated
from geo.cli.town import report_record
from geo.errors import UnknownCommuneError
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "facilities",
        help="write a town's facilities (OSM, BPE, culture, energy, services)",
        description="The facilities stage: the facilities of a town and its catchment "
        "communes in data/out/INSEE/facilities.parquet (or --out) and their counts by "
        "category and source. The national counts per commune are `pvdgeo "
        "facility-counts`, their change between BPE vintages `pvdgeo facility-trends`.",
    )
    add_insee(p, optional=True)
    p.add_argument("--out", metavar="DIR_OR_FILE",
                   help="town folder (default data/out/INSEE; the card stage runs first "
                   "there if needed), or a .parquet file to write the table to")
    p.add_argument("--force", action="store_true", help="run even when up to date")
    p.add_argument("--osm", metavar="FILE",
                   help="OSM extract to read (default: the catalogued extract of the town)")
    p.add_argument("--bpe-xy", metavar="FILE",
                   help="geolocated BPE file (default: data/raw/bpe/BPE23.csv if downloaded)")
    # former mode flags, now commands of their own
    p.add_argument("--counts", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--trends", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bpe", choices=_BPE_CHOICES, default="auto", help=argparse.SUPPRESS)
    p.set_defaults(func=run)

    c = sub.add_parser(
        "facility-counts",
        help="national facility counts per commune and per 10,000 inhabitants",
        description="Count the facilities of every commune of France per category and "
        "subcategory, and per 10,000 inhabitants, from the BPE, the registers and OSM; "
        "check the registers' points against their commune polygons; write "
        f"data/interim/{facilities.COUNTS_FILE} (or --out).",
    )
    c.add_argument("--out", metavar="FILE", help="output Parquet file")
    c.add_argument("--bpe", choices=_BPE_CHOICES, default="auto",
                   help="BPE vintage (default: the geolocated file when downloaded, else "
                   "the 2013 counts)")
    c.set_defaults(func=_run_counts)

    t = sub.add_parser(
        "facility-trends",
        help="national facility counts of every BPE vintage and their changes",
        description="Put every catalogued BPE vintage on one nomenclature "
        "(data/bpe_passage.toml), count facilities per commune and vintage, per 10,000 "
        "inhabitants, with their change and the 'last shop' flag; write "
        f"data/interim/{facility_trends.TRENDS_FILE} (or --out).",
    )
    t.add_argument("--out", metavar="FILE", help="output Parquet file")
    t.set_defaults(func=_run_trends)


_BPE_CHOICES = ("auto", "xy", "2013", "2009")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.counts:
        deprecated("pvdgeo facilities --counts", "pvdgeo facility-counts")
        return _run_counts(args, settings)
    if args.trends:
        deprecated("pvdgeo facilities --trends", "pvdgeo facility-trends")
        return _run_trends(args, settings)
    if not args.insee:
        raise UnknownCommuneError("give the INSEE code or name of a town")
    insee = communes.resolve_insee(args.insee, settings)
    if args.out and Path(args.out).suffix:  # one file, not a town folder
        check_output_file(Path(args.out), "Parquet", what="the facility table (--out)")
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
    check_output_file(Path(args.out) if args.out else settings.interim_dir
                      / facilities.COUNTS_FILE, "Parquet", what="the facility counts (--out)")
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


def _run_trends(args: argparse.Namespace, settings: Settings) -> int:
    table = facility_trends.commune_trends(settings=settings)
    path = facility_trends.write_commune_trends(table, args.out, settings=settings)
    meta = table.attrs["meta"]
    years = ", ".join(str(v["year"]) for v in meta["vintages"])
    print(f"Facility trends of {len(table):,} communes (COG {settings.cog_year}), BPE {years}; "
          "populations " + ", ".join(f"{y}->{p}" for y, p in meta["population_years"].items()))
    trends = facility_trends.typology_trends(settings, table=table)
    for r in trends[trends["cle"].isin(facility_trends.KEY_SUBCATEGORIES)
                    & trends["groupe"].isin(["PVD", "France"])].itertuples():
        print(f"  {r.periode} {r.groupe:<7}{r.cle:<20}{r.equipements_debut:>9,.0f} ->"
              f"{r.equipements_fin:>9,.0f} ({r.evolution_relative:+.1%}); communes with one: "
              f"{r.part_communes_en_baisse:.1%} fewer, {r.part_communes_perte_dernier:.1%} "
              "none left")
    for msg in meta["undocumented_changes"]:
        print(f"  undocumented change: {msg}")
    print(f"wrote {path}")
    return 0
