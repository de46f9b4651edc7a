"""What each map view shows for one town: whether it has data, and what it measures.

The viewer writes, per town and per view (``towns.json``), a :class:`ViewStatus`:

- ``available``: the town's tiles hold a value of at least one thematic legend field of
  the view (a graduated or categorised legend whose field is in its tile layer), and,
  for an access view (``measures.category``), at least one facility point of that
  category. An unavailable view is offered greyed out with its ``reason``, never as an
  empty or all-grey map;
- ``summary``: for access views, what the times lead to, in French, e.g. "5 équipements
  de santé localisés (OpenStreetMap 2022-03-11) : pharmacie 4, laboratoire 1 ; aucun
  médecin généraliste. La BPE (INSEE) en recense 98 dans la commune : les temps ne
  portent que sur les points localisés."

Pure functions: the caller reads the town's facility table and tile fields.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pandas as pd

from geo.export.views import View

__all__ = ["SOURCE_LABELS", "ViewStatus", "facility_summary", "view_status"]

#: French names of the facility sources (``facilities.source``).
SOURCE_LABELS = {"osm": "OpenStreetMap", "bpe": "INSEE BPE", "museofile": "Muséofile",
                 "cinemas": "CNC", "festivals": "ministère de la Culture",
                 "eoliennes": "Géorisques", "france_services": "ANCT (France services)"}

_NO_DATA = "Pas de donnée de cette vue pour cette ville."


@dataclass(frozen=True, slots=True)
class ViewStatus:
    """Whether a view has data for a town, why not, and what it measures."""

    available: bool
    reason: str = ""
    summary: str = ""

    def as_json(self) -> dict[str, object]:
        """The status as written in ``towns.json``."""
        return {"available": self.available, "reason": self.reason, "summary": self.summary}


def _inline(label: str) -> str:
    """A label inside a sentence (``Santé`` -> ``santé``; ``EHPAD`` kept)."""
    return label[0].lower() + label[1:] if len(label) > 1 and label[1].islower() else label


def _fr(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def facility_summary(facilities: pd.DataFrame, category: str, *,
                     labels: Mapping[str, str],
                     key_subcategories: Collection[str] = (),
                     osm_date: str | None = None,
                     national_count: float | None = None,
                     national_source: str = "la Base permanente des équipements (INSEE)",
                     ) -> str:
    """One French sentence on the facility points of ``category`` an access map uses.

    Parameters
    ----------
    facilities
        The town's facility table (``category``, ``subcategory``, ``source``).
    category
        Category key (``sante``...).
    labels
        French labels of category and subcategory keys.
    key_subcategories
        Subcategories whose absence is said ("aucun médecin généraliste").
    osm_date
        Vintage of the OSM extract, shown with the OpenStreetMap count.
    national_count
        The national register's count for the town's commune (BPE), shown when larger
        than the points found in it.
    national_source
        Its name in the sentence.
    """
    cat_label = _inline(labels.get(category, category))
    rows = facilities[facilities["category"] == category]
    n = len(rows)
    national = ""
    if national_count is not None and national_count > n:
        national = (f" {national_source[0].upper()}{national_source[1:]} en recense "
                    f"{_fr(round(national_count))} dans la commune"
                    + (" : les temps ne portent que sur les points localisés." if n else
                       ", sans position : ils ne peuvent pas servir aux temps d'accès."))
    if n == 0:
        return (f"Aucun équipement de {cat_label} localisé dans la zone d'étude "
                "(OpenStreetMap et registres nationaux géolocalisés)." + national)
    first = rows["source"].astype(str).str.split(";").str[0]
    by_source = first.value_counts()
    parts = []
    for src, count in by_source.items():
        name = SOURCE_LABELS.get(str(src), str(src))
        if src == "osm" and osm_date:
            name = f"{name} {osm_date.removeprefix('OSM ')}"
        parts.append(name if len(by_source) == 1 else f"{name} : {_fr(int(count))}")
    subs = rows["subcategory"].fillna("autre").value_counts()
    detail = ", ".join(f"{_inline(labels.get(str(k), str(k)))} {_fr(int(v))}"
                       for k, v in subs.items())
    missing = [_inline(labels.get(k, k)) for k in key_subcategories if k not in subs.index]
    plural = "s" if n > 1 else ""
    text = (f"{_fr(n)} équipement{plural} de {cat_label} localisé{plural} "
            f"({' ; '.join(parts)}) : {detail}")
    if missing:
        text += " ; aucun " + ", aucun ".join(missing)
    return text + "." + national


def view_status(view: View, layer_fields: Mapping[str, Collection[str]], *,
                facilities: pd.DataFrame | None = None,
                labels: Mapping[str, str] | None = None,
                osm_date: str | None = None,
                national_counts: Mapping[str, float] | None = None,
                national_source: str | None = None) -> ViewStatus:
    """Whether ``view`` has data for a town (see module doc).

    Parameters
    ----------
    view
        A map view.
    layer_fields
        Per tile layer of the town, the attributes it holds (PMTiles ``vector_layers``).
    facilities
        The town's facility table, for access views (None: no facility table).
    labels
        French labels of category and subcategory keys.
    national_counts
        ``n_<category>`` of the national register for the town's commune.
    """
    labels = labels or {}
    thematic = [e for e in view.legend if e.kind != "single" and e.field]
    has_data = any(e.field in layer_fields.get(name, ())
                   for e in thematic for name in (e.source_layer, *e.qgis_layers))
    unavailable = str(view.style["metadata"]["pvdgeo:view"].get("unavailable") or _NO_DATA)
    category = view.measures.get("category")
    summary = ""
    if category:
        table = facilities if facilities is not None else pd.DataFrame(
            {"category": [], "subcategory": [], "source": []})
        national = (national_counts or {}).get(f"n_{category}")
        summary = facility_summary(table, category, labels=labels,
                                   key_subcategories=view.measures.get("key_subcategories", ()),
                                   osm_date=osm_date, national_count=national,
                                   **({"national_source": national_source}
                                      if national_source else {}))
        if not (table["category"] == category).any():
            return ViewStatus(False, summary + " Les temps d'accès ne peuvent pas être "
                                               "calculés.", summary)
    if not has_data:
        return ViewStatus(False, unavailable, summary)
    return ViewStatus(True, "", summary)
