"""``pvdgeo batch``: many towns on Dask; ``pvdgeo national``: the national tables."""

from __future__ import annotations

import argparse

from geo import batch, communes, extracts, national
from geo.cli._args import add_departements
from geo.errors import SettingsError
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "batch",
        help="build many towns (all PVD, ACV, départements) on Dask distributed, resumable",
        description="Build every given town with the town stages on Dask distributed: a "
        "LocalCluster of --workers single-threaded processes, or an existing cluster "
        "(--scheduler or DASK_SCHEDULER_ADDRESS; its workers need the pvdgeo package and "
        "the data folder on a shared file system, or GEO_MIRROR as an http(s) URL). Towns "
        "already done with the current code, settings and inputs are skipped; failures "
        "are retried, then listed in data/national/batch/failures.csv. Then the national "
        "tables of the built towns (data/national/), their portraits and the viewer index.",
    )
    add_town_selection(b)
    b.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes of the LocalCluster (default 2)")
    b.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://host:8786 (default "
                   "DASK_SCHEDULER_ADDRESS, else a LocalCluster)")
    b.add_argument("--retries", type=int, default=2, metavar="K",
                   help="extra attempts of a failing town (default 2)")
    b.add_argument("--memory-limit", metavar="BYTES",
                   help="memory limit per LocalCluster worker, e.g. 6GB (default 80%% of "
                   "RAM / workers)")
    b.add_argument("--force", action="store_true", help="rebuild towns already done")
    b.set_defaults(func=run_batch)

    e = sub.add_parser(
        "extracts",
        help="cut per-town OSM extracts (catchments) out of a national or regional PBF",
        description="Cut the catchment of every given town out of an OSM PBF (e.g. "
        "Geofabrik's france-latest.osm.pbf or a région's file) with osmium-tool, in few "
        "passes, into data/interim/osm_extracts/<INSEE>.osm.pbf; the access and "
        "facilities stages then read them before any catalogued source. Towns whose "
        "extract is of this file and catchment are not cut again.",
    )
    add_town_selection(e)
    e.add_argument("--pbf", required=True, metavar="FILE", help="the OSM PBF to cut")
    e.add_argument("--max-per-pass", type=int, metavar="N",
                   help="extracts per osmium pass (default: as many as --memory-gb holds)")
    e.add_argument("--memory-gb", type=float, default=8.0, metavar="GB",
                   help="memory osmium may use (default 8): each extract takes up to the "
                   "input's highest node id / 8 bytes (about 1.2 GB with 2026 ids)")
    e.add_argument("--force", action="store_true", help="cut every town again")
    e.set_defaults(func=run_extracts)

    n = sub.add_parser(
        "national",
        help="the national tables of the built towns (data/national/towns.parquet, H3)",
        description="Write data/national/towns.parquet (one row per built town: card, "
        "indicators, population shares within 10 and 15 minutes) and the H3 cells of "
        "every built town partitioned by département (data/national/h3_r<res>/).",
    )
    n.set_defaults(func=run_national)


def add_town_selection(parser: argparse.ArgumentParser) -> None:
    """The arguments that choose towns: codes, --pvd, --acv, --departement."""
    parser.add_argument("insee", nargs="*", metavar="INSEE", help="INSEE codes of towns")
    parser.add_argument("--pvd", action="store_true",
                        help="every Petites Villes de Demain town")
    parser.add_argument("--acv", action="store_true", help="every Action Cœur de Ville town")
    add_departements(parser, help="with --pvd/--acv, only these départements; alone, "
                     "every town of the programmes (PVD and ACV) in them (space- or "
                     "comma-separated, repeatable)")


def select_towns(args: argparse.Namespace, settings: Settings) -> list[str]:
    """INSEE codes from the arguments (codes, --pvd, --acv, --departement)."""
    ref = communes.load_reference(settings)
    codes = [communes.resolve_insee(c, settings) for c in args.insee]
    if args.pvd or args.acv or args.departement:
        mask = ref["insee"].notna()
        pvd, acv = args.pvd, args.acv
        if not (pvd or acv):
            pvd = acv = True
        mask &= (ref["pvd"].fillna(False) & pvd) | (ref["acv"].fillna(False) & acv)
        if args.departement:
            known = set(ref["departement"].dropna())
            bad = [d for d in args.departement if d not in known]
            if bad:
                raise SettingsError(f"unknown département(s) {', '.join(bad)}: expected "
                                    "codes such as 01, 2A, 974")
            mask &= ref["departement"].isin(args.departement)
        codes += ref.loc[mask, "insee"].astype(str).tolist()
    return list(dict.fromkeys(codes))


def run_batch(args: argparse.Namespace, settings: Settings) -> int:
    codes = select_towns(args, settings)
    result = batch.run_batch(codes, workers=args.workers, scheduler=args.scheduler,
                             retries=args.retries, force=args.force,
                             memory_limit=args.memory_limit, settings=settings)
    counts = result.counts()
    print(f"{len(codes)} towns: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
          + f" in {result.seconds / 60:.1f} min")
    for o in result.failures:
        print(f"  failed {o.insee} at {o.stage}: {o.error}")
    print(f"reports: {result.report_dir}/towns.csv, {result.report_dir}/failures.csv")
    return 1 if result.failures else 0


def run_extracts(args: argparse.Namespace, settings: Settings) -> int:
    codes = select_towns(args, settings)
    if not codes:
        raise SettingsError("no town: give INSEE codes, --pvd, --acv or --departement")
    paths = extracts.town_extracts(args.pbf, codes, max_per_pass=args.max_per_pass,
                                   memory_gb=args.memory_gb, force=args.force,
                                   settings=settings)
    total = sum(p.stat().st_size for p in paths.values())
    print(f"{len(paths)} town extracts ({total / 1e6:.1f} MB) in "
          f"{settings.interim_dir / extracts.EXTRACTS_DIR}")
    return 0


def run_national(args: argparse.Namespace, settings: Settings) -> int:
    for path in national.write_national_tables(settings=settings):
        print(f"wrote {path}")
    return 0


