"""Duplicates across sources: names compared on their significant words
(:func:`names_similar`) and facilities of the same category, close and similarly named,
merged into one row listing every source (:func:`deduplicate`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from difflib import SequenceMatcher

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo._categories import CATEGORY_KEYS, Categories, load_categories, normalize_text
from geo.errors import GeoError, MissingCrsError
from geo.facilities.schema import FACILITY_COLUMNS, SOURCE_PRIORITY
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facilities: log lines keep their logger name


# --- deduplication -----------------------------------------------------------------------------

_STOPWORDS = frozenset({
    "le", "la", "les", "l", "de", "du", "des", "d", "et", "a", "au", "aux", "en", "sur",
    "sous", "un", "une", "the", "of", "saint", "st", "ste",
})


def _name_tokens(name: object, generic: frozenset[str]) -> frozenset[str]:
    return frozenset(t for t in normalize_text(name).split() if t not in _STOPWORDS
                     and t not in generic)


def names_similar(a: object, b: object, *, generic: Iterable[str] = ()) -> bool | None:
    """Whether two facility names designate the same place.

    Names are compared without accents, case, stop words and ``generic`` words (what the
    facility is, e.g. "pharmacie", "cinema"): similar when one's words contain
    the other's, or when their sorted words are at least 80 % alike. ``None`` when either
    name is missing or only generic words.
    """
    gen = frozenset(generic)
    ta, tb = _name_tokens(a, gen), _name_tokens(b, gen)
    if not ta or not tb:
        return None
    if ta <= tb or tb <= ta:
        return True
    return SequenceMatcher(None, " ".join(sorted(ta)), " ".join(sorted(tb))).ratio() >= 0.8


_GENERIC_EXTRA = {
    "commerces": {"sarl", "sas", "eurl", "sa", "ets", "magasin", "boutique"},
    "sante": {"cabinet", "docteur", "dr", "centre", "medical", "medicale"},
    "culture": {"cine", "espace", "salle"},
    "education": {"groupe", "scolaire", "public", "publique", "prive", "privee"},
    "services": {"agence"},
}


def _generic_words(cats: Categories) -> dict[str, frozenset[str]]:
    """Words that say what a facility is rather than which one: the words of the category's
    subcategory keys ("pharmacie", "cinema", "ecole") and a few more."""
    words: dict[str, set[str]] = {c: set(_GENERIC_EXTRA.get(c, ())) for c in CATEGORY_KEYS}
    for sub in cats.subcategories.values():
        words[sub.category] |= set(sub.key.split("_"))
    return {c: frozenset(w) for c, w in words.items()}


def deduplicate(
    facilities: gpd.GeoDataFrame,
    *,
    distance_m: float | None = None,
    settings: Settings | None = None,
) -> gpd.GeoDataFrame:
    """Merge the same facility seen by several sources.

    Two rows of different sources are the same facility when they have the same category,
    lie within ``distance_m`` (default ``settings.dedup_distance_m``) and have similar names
    (:func:`names_similar`), or have the same subcategory and a missing name (wind turbines,
    unnamed OSM objects). Closest pairs are merged first; a merged facility never holds two
    rows of one source. The row of the preferred source (:data:`SOURCE_PRIORITY`) is kept,
    its empty fields filled from the others; ``source`` and ``source_id`` list every source
    and id, ``;``-separated, in the same order.

    Requires a metric CRS.
    """
    s = settings or get_settings()
    d = s.dedup_distance_m if distance_m is None else float(distance_m)
    if facilities.crs is None:
        raise MissingCrsError("deduplicate: the facilities have no CRS")
    if facilities.crs.is_geographic:
        raise GeoError(
            f"deduplicate: facilities are in a geographic CRS ({facilities.crs.to_string()}); "
            "project them to a metric CRS (e.g. EPSG:2154) first"
        )
    gdf = facilities.reset_index(drop=True)
    n = len(gdf)
    if n < 2:
        return gdf
    cats = load_categories(s)
    generic = _generic_words(cats)
    geoms = gdf.geometry.to_numpy()
    valid = ~(pd.isna(geoms) | shapely.is_empty(geoms))
    idx = np.flatnonzero(valid)
    tree = shapely.STRtree(geoms[idx])
    left, right = tree.query(geoms[idx], predicate="dwithin", distance=d)
    left, right = idx[left], idx[right]
    keep = left < right
    left, right = left[keep], right[keep]
    first_src = gdf["source"].str.split(";").str[0].to_numpy()
    cat = gdf["category"].to_numpy()
    subc = gdf["subcategory"].to_numpy()
    names = gdf["name"].to_numpy(dtype=object, na_value=None)
    ok = (cat[left] == cat[right]) & (first_src[left] != first_src[right])
    left, right = left[ok], right[ok]
    dist = shapely.distance(geoms[left], geoms[right])
    order = np.argsort(dist, kind="stable")

    parent = list(range(n))
    members: dict[int, set[str]] = {i: set(str(first_src[i]).split(";")) for i in range(n)}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in order:
        a, b = int(left[k]), int(right[k])
        similar = names_similar(names[a], names[b], generic=generic[cat[a]])
        if not (similar or (similar is None and subc[a] == subc[b])):
            continue
        ra, rb = find(a), find(b)
        if ra == rb or members[ra] & members[rb]:
            continue
        parent[rb] = ra
        members[ra] |= members.pop(rb)

    roots = np.array([find(i) for i in range(n)])
    if len(set(roots)) == n:
        return gdf
    prio = {src: i for i, src in enumerate(SOURCE_PRIORITY)}
    rank = np.array([prio.get(src, len(prio)) for src in first_src])
    work = gdf.assign(_root=roots, _rank=rank, _order=np.arange(n))
    work = work.sort_values(["_root", "_rank"], kind="stable")
    grouped = work[work["_root"].duplicated(keep=False)].groupby("_root", sort=False)
    out = work[~work["_root"].duplicated()].set_index("_root")
    merged = grouped.size().index
    out.loc[merged, "source"] = grouped["source"].agg(";".join)
    out.loc[merged, "source_id"] = grouped["source_id"].agg(";".join)
    for col in ("name", "brand", "chain", "power_mw", "insee"):
        # the first non-empty value, in source priority order
        out.loc[merged, col] = out.loc[merged, col].fillna(grouped[col].first())
    out = out.sort_values("_order").reset_index(drop=True)
    out = gpd.GeoDataFrame(out[FACILITY_COLUMNS], geometry="geometry", crs=gdf.crs)
    log.info("deduplicate: %d rows -> %d facilities (%d merged across sources, %.0f m)",
             n, len(out), n - len(out), d)
    return out[FACILITY_COLUMNS]
