"""``pvdgeo portrait INSEE``: the town portrait (peers, indicators, HTML and CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from geo import portrait, stages
from geo._svg import format_fr, is_missing
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
    p.add_argument("query", help="INSEE code or commune name")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="town folder (default data/out/<insee>/); earlier stages run first "
                   "there when needed")
    p.add_argument("--force", action="store_true", help="run even when up to date")
    p.add_argument("--criteria", metavar="LIST",
                   help="comma-separated peer criteria among "
                   f"{', '.join(portrait.PEER_CRITERIA)} (default settings.peer_criteria; "
                   "'' for the population band only)")
    p.add_argument("--ratio", type=float, metavar="R",
                   help="population band r: peers have r x P .. P / r inhabitants "
                   "(default settings.peer_population_ratio = 0.5)")
    p.set_defaults(func=run_portrait)


def run_portrait(args: argparse.Namespace, settings: Settings) -> int:
    options: dict[str, object] = {}
    rule = portrait.PeerRule.from_settings(settings)
    if args.criteria is not None or args.ratio is not None:
        if args.criteria is not None:
            crit = tuple(c.strip() for c in args.criteria.split(",") if c.strip())
            rule = portrait.PeerRule(crit, rule.population_ratio)
        if args.ratio is not None:
            rule = portrait.PeerRule(rule.criteria, args.ratio)
        options["rule"] = rule
    record = stages.run_town(args.query, ["portrait"], out_dir=args.out, settings=settings,
                             options={"portrait": options}, force=args.force,
                             upstream="missing", touch_targets=True)
    selection = portrait.find_peers(record.insee, rule, settings=settings)
    print_portrait(record.out_dir, selection, portrait.town_values(record.insee,
                                                                   settings=settings))
    report_record(record)
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
