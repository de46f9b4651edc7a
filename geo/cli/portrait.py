"""``pvdgeo portrait INSEE``: the town portrait (peers, indicators, HTML and CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path

from geo import communes, portrait
from geo._io import ensure_writable_dir
from geo._svg import format_fr, is_missing
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
    p.add_argument("--out", metavar="DIR", help="output folder (default data/out/<insee>/)")
    p.add_argument("--criteria", metavar="LIST",
                   help="comma-separated peer criteria among "
                   f"{', '.join(portrait.PEER_CRITERIA)} (default settings.peer_criteria; "
                   "'' for the population band only)")
    p.add_argument("--ratio", type=float, metavar="R",
                   help="population band r: peers have r x P .. P / r inhabitants "
                   "(default settings.peer_population_ratio = 0.5)")
    p.set_defaults(func=run_portrait)


def run_portrait(args: argparse.Namespace, settings: Settings) -> int:
    insee = communes.resolve_insee(args.query, settings)
    ensure_writable_dir(args.out or settings.town_dir(insee))
    rule = portrait.PeerRule.from_settings(settings)
    if args.criteria is not None:
        crit = tuple(c.strip() for c in args.criteria.split(",") if c.strip())
        rule = portrait.PeerRule(crit, rule.population_ratio)
    if args.ratio is not None:
        rule = portrait.PeerRule(rule.criteria, args.ratio)
    result = portrait.build_portrait(insee, rule=rule, settings=settings)
    card = result.card
    print(f"Portrait de {card['nom']} ({result.insee})")
    print(result.peers.describe(card))
    peers = result.peers.peers
    names = ", ".join(f"{r.nom} ({r.departement})" for r in peers.head(12).itertuples())
    more = len(peers) - 12
    print(f"Pairs : {names}" + (f" … (+{more})" if more > 0 else ""))
    print(f"{'indicateur':<62}{'commune':>14}{'pairs':>12}{'pct':>6}{'France':>12}")
    by_key = {i.key: i for i in portrait.INDICATORS}
    for row in result.table.itertuples():
        ind = by_key[row.indicateur]
        pct = "" if is_missing(row.percentile_pairs) else format_fr(row.percentile_pairs)
        print(f"{ind.label[:61]:<62}{ind.format(row.valeur):>14}"
              f"{ind.format(row.mediane_pairs):>12}{pct:>6}{ind.format(row.mediane_france):>12}")
    if result.missing:
        print(f"Manquants ({len(result.missing)}) :")
        for m in result.missing:
            print(f"  - {m}")
    for path in portrait.write_portrait(result, Path(args.out) if args.out else None,
                                        settings=settings):
        print(f"wrote {path}")
    return 0
