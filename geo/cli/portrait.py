"""``pvdgeo portrait INSEE`` (the town portrait: peers, indicators, HTML and CSV) and
``pvdgeo typology-stats`` (the national statistics by typology)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from geo import communes, portrait, stages
from geo._io import ensure_writable_dir
from geo._svg import format_fr, is_missing
from geo.cli._args import ListAction, add_insee
from geo.cli.town import report_record
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "portrait",
        help="town portrait compared with similar towns (HTML + CSV in data/out/<insee>/)",
        description="Choose the town's peers (same programme, centralité, population band… "
        "see --criteria), compare every indicator with the peers' median and France's, and "
        "write portrait.html, portrait.csv and portrait_pairs.csv.",
    )
    add_insee(p)
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="town folder (default data/out/<insee>/); earlier stages run first "
                   "there when needed")
    p.add_argument("--force", action="store_true", help="run even when up to date")
    p.add_argument("--criteria", action=ListAction, nargs="*", metavar="CRITERION",
                   help="peer criteria among "
                   f"{', '.join(portrait.PEER_CRITERIA)} (default settings.peer_criteria; "
                   "none, or '', for the population band only)")
    p.add_argument("--ratio", type=float, metavar="R",
                   help="population band r: peers have r x P .. P / r inhabitants "
                   "(default settings.peer_population_ratio = 0.5)")
    p.set_defaults(func=run_portrait)

    t = sub.add_parser(
        "typology-stats",
        help="communes and population by typology (petite/moyenne/grande ville, PVD, ACV)",
        description="Print the communes and legal population of a year per Data Territoria "
        "typology (petite ville < 10,000 inhabitants, ville moyenne 10,000-100,000, grande "
        "ville > 100,000), PVD and ACV towns and France; with --out, write every national "
        "table by typology (population, growth, APL, facilities and their trends, the "
        "Data Territoria themes) as CSV and SVG charts with an index.html.",
    )
    t.add_argument("--year", type=int, default=2023,
                   help=f"legal population year ({', '.join(map(str, communes.POPULATION_YEARS))})")
    t.add_argument("--out", metavar="DIR",
                   help="also write the national tables (population per year, growth per "
                   "period, APL, facilities per 10,000 inhabitants and their change between "
                   "BPE vintages, and one table per Data Territoria theme: jobs, housing, "
                   "commuting, students, demography, energy; a theme without its files is "
                   "reported missing, see `pvdgeo themes`) as CSV, SVG charts and "
                   "index.html into DIR")
    t.set_defaults(func=run_typology_stats)


def run_portrait(args: argparse.Namespace, settings: Settings) -> int:
    options: dict[str, object] = {}
    rule = portrait.PeerRule.from_settings(settings)
    if args.criteria is not None or args.ratio is not None:
        if args.criteria is not None:
            rule = portrait.PeerRule(tuple(args.criteria), rule.population_ratio)
        if args.ratio is not None:
            rule = portrait.PeerRule(rule.criteria, args.ratio)
        options["rule"] = rule
    record = stages.run_town(args.insee, ["portrait"], out_dir=args.out, settings=settings,
                             options={"portrait": options}, force=args.force,
                             upstream="missing", touch_targets=True)
    selection = portrait.find_peers(record.insee, rule, settings=settings)
    print_portrait(record.out_dir, selection, portrait.town_values(record.insee,
                                                                   settings=settings))
    report_record(record)
    return 0


def run_typology_stats(args: argparse.Namespace, settings: Settings) -> int:
    if args.out:
        ensure_writable_dir(args.out)
    table = communes.typology_stats(args.year, settings=settings)
    print(f"Population légale {args.year} par typologie (communes COG {settings.cog_year})")
    print(f"{'groupe':<14}{'communes':>10}{'population':>14}{'part':>8}{'depuis 2016':>13}")
    for r in table.itertuples():
        print(f"{r.groupe:<14}{r.communes:>10,}{r.population:>14,}"
              f"{r.part_population_nationale:>8.1%}{r.croissance_depuis_2016:>+13.2%}")
    if args.out:
        tables = portrait.typology_tables(settings)
        mg = tables["apl"][tables["apl"]["indicateur"] == "apl_mg"]
        print(f"\nAPL médecins généralistes (DREES 2021), seuil {settings.apl_threshold:g}")
        print(f"{'groupe':<14}{'médiane':>9}{'communes < seuil':>18}{'population < seuil':>20}")
        for r in mg.itertuples():
            print(f"{r.groupe:<14}{r.mediane:>9.2f}{r.part_communes_sous_seuil:>18.1%}"
                  f"{r.part_population_sous_seuil:>20.1%}")
        for path in portrait.write_typology_stats(Path(args.out), tables=tables,
                                                  settings=settings):
            print(f"wrote {path}")
    return 0


def print_portrait(folder: Path, selection: portrait.PeerSelection,
                   card: dict[str, Any]) -> None:
    """The portrait of a town folder (portrait.csv, portrait_pairs.csv) as text."""
    table = pd.read_csv(folder / "portrait.csv", dtype={"insee": str})
    peers = pd.read_csv(folder / "portrait_pairs.csv", dtype={"insee": str,
                                                              "insee_commune": str})
    print(f"Portrait de {card.get('nom')} ({card.get('insee')})")
    print(selection.describe(card))
    names = ", ".join(f"{r.nom} ({r.departement})" for r in peers.head(12).itertuples())
    more = len(peers) - 12
    print(f"Pairs : {names}" + (f" … (+{more})" if more > 0 else ""))
    print(f"{'indicateur':<62}{'commune':>14}{'pairs':>12}{'pct':>6}{'France':>12}")
    by_key = {i.key: i for i in portrait.INDICATORS}
    missing = []
    for row in table.itertuples():
        ind = by_key.get(row.indicateur)
        if ind is None:
            continue
        pct = "" if is_missing(row.percentile_pairs) else format_fr(row.percentile_pairs)
        print(f"{ind.label[:61]:<62}{ind.format(row.valeur):>14}"
              f"{ind.format(row.mediane_pairs):>12}{pct:>6}{ind.format(row.mediane_france):>12}")
        if isinstance(row.note, str) and row.note:
            missing.append(f"{ind.label} : {row.note}")
    if missing:
        print(f"Manquants ({len(missing)}) :")
        for m in missing:
            print(f"  - {m}")
