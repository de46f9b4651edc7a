"""``pvdgeo styles``: recompute the legend classes of the view styles from the national
distribution (``classes_rule`` of their legend entries, :mod:`geo.export.classes`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from geo import communes, facilities
from geo._io import read_parquet_metadata, write_text_atomic
from geo.export.classes import ClassRule, apply_classes, class_breaks, graduated_classes
from geo.export.views import STYLES_DIR
from geo.settings import Settings

#: What the national values are, for the legend's rule text.
_UNIVERSE = "communes de France (métropole et DROM)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "styles",
        help="recompute the legend classes of the map views from national data",
        description="For every legend entry of tiles/styles/*.json with a classes_rule, "
        "compute the classes from the national distribution of its field (quantiles over "
        "the communes of France, mainland and DROM: geo.export.classes) and write them "
        "into the legend and the layer's colour expression.",
    )
    p.add_argument("--styles-dir", type=Path, default=STYLES_DIR, metavar="DIR")
    p.add_argument("--check", action="store_true",
                   help="only report styles whose classes differ (exit status 1)")
    p.set_defaults(func=run_styles)


def national_values(field: str, settings: Settings) -> pd.Series:
    """``field`` of the national facility counts over the France universe
    (:func:`geo.communes.typology_groups`)."""
    ref = communes.load_reference(settings)
    france = ref.loc[communes.typology_groups(ref)["France"], "insee"]
    table = facilities.facilities_by_commune(settings).set_index("insee")
    return pd.to_numeric(table[field], errors="coerce").reindex(france).dropna()


def classified_style(style: dict[str, Any], settings: Settings, source: str) -> dict[str, Any]:
    """``style`` with every ``classes_rule`` legend recomputed."""
    for entry in style["metadata"]["pvdgeo:legend"]:
        raw = entry.get("classes_rule")
        if not raw:
            continue
        rule = ClassRule.from_json(raw)
        breaks = class_breaks(national_values(rule.field, settings), rule)
        classes = graduated_classes(breaks, raw["colors"], zero_class=rule.zero_class)
        style = apply_classes(style, entry["layer"], classes,
                              rule_text=rule.describe(_UNIVERSE, source))
    return style


def run_styles(args: argparse.Namespace, settings: Settings) -> int:
    facilities.facilities_by_commune(settings)  # built if needed
    meta = read_parquet_metadata(settings.interim_dir / facilities.COUNTS_FILE)
    source = str(meta.get("vintages", {}).get("bpe", "BPE")).split(": ", 1)[-1].split(" (")[0]
    changed = []
    for path in sorted(Path(args.styles_dir).glob("*.json")):
        style = json.loads(path.read_text(encoding="utf-8"))
        new = classified_style(style, settings, f"INSEE, {source}")
        if new != style:
            changed.append(path)
            if not args.check:
                write_text_atomic(path, json.dumps(new, ensure_ascii=False, indent=2) + "\n")
    verb = "differ" if args.check else "updated"
    print(f"{len(changed)} style(s) {verb}: {', '.join(p.name for p in changed) or '-'}")
    return 1 if args.check and changed else 0
