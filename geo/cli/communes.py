"""``pvdgeo commune`` (a commune's card), ``pvdgeo reference`` (the commune reference
table) and ``pvdgeo towns`` (lists of towns)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from geo import communes
from geo._io import check_output_file, write_json_atomic
from geo.cli._args import add_departements, add_insee, deprecated
from geo.errors import UnknownCommuneError
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "commune",
        help="print a commune's card (code or name, case- and accent-insensitive)",
        description="Print the card of a commune given by INSEE code (01306, 2A004) or by "
        "name ('pont de veyle'; add the département to disambiguate: 'Vernon 27').",
    )
    add_insee(p, optional=True, help="INSEE code or commune name")
    p.add_argument("--json", metavar="FILE", help="also write the card (with catchment) as JSON")
    p.add_argument("--code", action="store_true",
                   help="print only the current INSEE code the query resolves to (a former "
                   "code, a municipal arrondissement such as 75101, or a name) and exit")
    # former mode flag, now the reference command
    p.add_argument("--build-reference", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run_commune)

    r = sub.add_parser(
        "reference",
        help="(re)build the commune reference table (data/interim/communes.parquet)",
        description="Build the commune reference of the COG year from its national "
        "datasets (COG, polygons, legal populations, programmes, typologies), merged "
        "communes re-keyed, into data/interim/communes.parquet, and print its counts.",
    )
    r.set_defaults(func=run_reference)

    w = sub.add_parser(
        "towns",
        help="list INSEE codes of towns (PVD, ACV, by typology or département) for batch runs",
        description="Print one INSEE code per line, e.g. for "
        "scripts/run_towns.sh $(pvdgeo towns --pvd).",
    )
    w.add_argument("--pvd", action="store_true", help="Petites Villes de Demain towns")
    w.add_argument("--acv", action="store_true", help="Action Cœur de Ville towns")
    w.add_argument("--typologie", choices=communes.TYPOLOGIES, help="population class")
    add_departements(w)
    w.set_defaults(func=run_towns)


def _fmt_int(value: Any) -> str:
    return "n.d." if value is None else f"{int(value):,}".replace(",", "\u202f")


def format_card(card: dict[str, Any]) -> str:
    """Human-readable town card (French labels)."""
    programmes = [p for p, on in (("PVD", card["pvd"]), ("ACV", card["acv"])) if on]
    lines = [
        f"{card['nom']} ({card['insee']})",
        f"  Département     {card['departement']} {card['departement_nom'] or ''}",
        f"  Région          {card['region']} {card['region_nom'] or ''}",
        f"  EPCI            {card['epci_nom'] or 'n.d.'} ({card['epci_siren'] or 'n.d.'})",
        f"  Population      {_fmt_int(card['population'])} (légale 2023; 2016: "
        f"{_fmt_int(card['pop_2016'])})",
        f"  Typologie       {card['typologie'] or 'n.d.'}",
        f"  Programmes      {', '.join(programmes) or 'aucun (ni PVD ni ACV)'}",
        f"  Centralité      {card['centralite'] or 'n.d.'}",
        f"  Densité         {card['densite'] or 'n.d.'}",
        f"  Ruralité        {card['ruralite'] or 'n.d.'}",
        f"  Montagne        {card['montagne'] or 'non'}",
        f"  Aire d'attraction {card['aav_code'] or 'n.d.'}: "
        f"{card['aav_categorie_libelle'] or 'n.d.'}",
        f"  CRS de calcul   {card['metric_crs']}",
    ]
    c = card.get("catchment")
    if c:
        lines.append(
            f"  Zone d'étude    {len(c['communes'])} communes dans {c['buffer_m'] / 1000:g} km "
            f"({c['area_km2']:g} km²)"
        )
    if card.get("local_datasets"):
        lines.append(f"  Données locales {', '.join(card['local_datasets'])}")
    return "\n".join(lines)


def run_reference(args: argparse.Namespace, settings: Settings) -> int:
    ref = communes.load_reference(settings, rebuild=True)
    print(f"{len(ref)} communes, {int(ref['pvd'].sum())} PVD, {int(ref['acv'].sum())} ACV")
    return 0


def run_commune(args: argparse.Namespace, settings: Settings) -> int:
    if args.build_reference:
        deprecated("pvdgeo commune --build-reference", "pvdgeo reference")
        return run_reference(args, settings)
    if not args.insee:
        raise UnknownCommuneError("give an INSEE code or a commune name")
    if args.code:
        print(communes.resolve_insee(args.insee, settings))
        return 0
    if args.json:
        check_output_file(args.json, "JSON", what="the town card (--json)")
    card = communes.town_card(args.insee, settings=settings)
    print(format_card(card))
    if args.json:
        path = write_json_atomic(Path(args.json), card)
        print(f"wrote {path}")
    return 0


def run_towns(args: argparse.Namespace, settings: Settings) -> int:
    ref = communes.load_reference(settings)
    mask = ref["insee"].notna()
    if args.pvd or args.acv:
        mask &= (ref["pvd"] & args.pvd) | (ref["acv"] & args.acv)
    if args.typologie:
        mask &= ref["typologie"] == args.typologie
    if args.departement:
        mask &= ref["departement"].isin(args.departement)
    for code in ref.loc[mask, "insee"]:
        print(code)
    return 0
