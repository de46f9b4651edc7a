"""``pvdgeo themes``: the Data Territoria themes (jobs, housing, commuting, higher
education, demography, energy): which files are downloaded, their national tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from geo import themes
from geo._io import check_output_file, write_parquet
from geo.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "themes",
        help="Data Territoria themes (jobs, housing, commuting, students, demography, "
             "energy): status and national tables",
        description="Without option, list every theme with the state of its source files "
        "and the `pvdgeo fetch` command of the missing ones (they are not in the test "
        "mirror: downloading them needs internet). --build writes the national commune "
        "tables (data/interim/theme_<theme>_communes.parquet) of the downloaded themes.",
    )
    p.add_argument("--build", nargs="*", metavar="THEME",
                   help="build the tables of these themes ("
                   f"{', '.join(t.key for t in themes.THEMES)}; default: every theme whose "
                   "files are downloaded)")
    p.add_argument("--table", metavar="FILE",
                   help="also write every theme indicator per commune (the dashboard's "
                   "table) to FILE (.parquet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.table:
        check_output_file(args.table, "Parquet", what="the theme indicator table (--table)")
    if args.build is not None:
        for path in themes.build_available(settings, args.build or None):
            print(f"wrote {path}")
    states = themes.status(settings)
    width = max(len(k) for k in states["theme"])
    print(f"{'theme':<{width}}  {'status':<10} title (French)")
    for r in states.itertuples():
        print(f"{r.theme:<{width}}  {r.statut:<10} {r.titre}")
        if r.manquants:
            print(f"{'':<{width}}  {'':<10} missing: {r.manquants}")
    missing = " ".join(m for m in states["manquants"] if m)
    if missing:
        print(f"To download the missing files (needs internet): pvdgeo fetch {missing}")
    if args.table:
        table = themes.indicator_table(settings)
        periods = table.attrs.get("periods", {})
        table.attrs = {}
        path = write_parquet(table.reset_index(), Path(args.table),
                             metadata={"periods": periods,
                                       "indicators": themes.DASHBOARD_INDICATORS})
        print(f"wrote {path}")
    return 0
