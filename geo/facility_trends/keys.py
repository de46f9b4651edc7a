"""What a trend is computed for: the keys (category, group of subcategories,
subcategory, :func:`trend_keys`) and the subcategories and groups the charts and the
portrait show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from geo._categories import CATEGORY_KEYS, Categories

#: Subcategories shown in the typology chart and the portrait table (with the categories
#: and the food shops group).
KEY_SUBCATEGORIES = ("boulangerie", "epicerie", "supermarche", "boucherie", "pharmacie",
                     "medecin_generaliste", "bureau_poste", "banque")
#: Keys drawn over the vintages in the portrait (a group of food shops, primary care).
PORTRAIT_CHART_KEYS = ("commerces_alimentaire", "sante_premier_recours")


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendKey:
    """A subcategory, a group of subcategories or a category compared over time."""

    key: str
    level: Literal["categorie", "groupe", "sous_categorie"]
    label: str
    category: str
    subcategories: tuple[str, ...]


def trend_keys(categories: Categories) -> dict[str, TrendKey]:
    """Keys with BPE codes, in report order: categories, their groups
    (``<category>_<group>``), subcategories. Field names are ``n_<key>...``."""
    subs = {k: v for k, v in categories.subcategories.items() if v.bpe_2013 or v.bpe_2021}
    out: dict[str, TrendKey] = {}
    for cat in CATEGORY_KEYS:
        members = tuple(k for k, v in subs.items() if v.category == cat)
        if not members:
            continue
        out[cat] = TrendKey(cat, "categorie", categories.category_labels[cat], cat, members)
    for cat in CATEGORY_KEYS:
        for group, label in categories.groups.get(cat, {}).items():
            members = tuple(k for k, v in subs.items() if v.category == cat and v.group == group)
            if members:
                key = f"{cat}_{group}"
                out[key] = TrendKey(key, "groupe", label, cat, members)
    for k, v in subs.items():
        out[k] = TrendKey(k, "sous_categorie", v.label, v.category, (k,))
    return out
