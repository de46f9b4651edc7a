"""``pvdgeo fetch``: download datasets into data/raw (from the official sources or a mirror)."""

from __future__ import annotations

import argparse
import sys

from geo import sources
from geo.cli._args import deprecated
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fetch",
        help="download datasets into data/raw (official sources or GEO_MIRROR)",
        description="Download datasets of the catalogue (data/sources.toml) into data/raw/. "
        "With no ID, every national dataset. Offline: --mirror DIR_OR_URL or GEO_MIRROR.",
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="dataset ids (see --list)")
    p.add_argument("--national", action="store_true", help="every national dataset")
    p.add_argument("--town", metavar="INSEE", help="also the local datasets covering a town")
    p.add_argument("--force", action="store_true", help="download again even if present")
    p.add_argument("--list", action="store_true", help="list the catalogue and exit")
    p.add_argument(
        "--markdown", action="store_true",
        help="with --list: print the catalogue as a Markdown table (id, title, producer, "
        "licence, vintage, coverage), as in the README",
    )
    p.add_argument("--make-rules", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.make_rules:
        deprecated("pvdgeo fetch --make-rules", "pvdgeo make-rules datasets")
        sys.stdout.write(sources.make_rules(settings))
        return 0
    catalogue = sources.load_catalogue(settings)
    if args.list and args.markdown:
        sys.stdout.write(sources.catalogue_markdown(settings))
        return 0
    if args.list:
        width = max(len(i) for i in catalogue)
        for ds in catalogue.values():
            print(f"{ds.id:<{width}}  {ds.kind:<18} {ds.coverage:<24} {ds.vintage:<38} "
                  f"{ds.title}")
        return 0
    ids = list(args.ids)
    if args.national or not (ids or args.town):
        ids += [d.id for d in catalogue.values() if d.scope == "national"]
    if args.town:
        ids += [d.id for d in sources.datasets_for_town(args.town, settings=settings)]
    ids = list(dict.fromkeys(ids))
    for ds_id in ids:
        sources.get_dataset(ds_id, settings)  # unknown ids fail before any download
    for path in sources.fetch(ids, settings=settings, force=args.force):
        print(path)
    return 0
