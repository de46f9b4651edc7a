"""Polygons of communes the national commune layer lacks, from other boundary sources.

The simplified national layer (``communes_polygons``) predates some communes of COG 2026
and does not cover the collectivités d'outre-mer. Two sources fill such gaps, both
recorded as the polygon's source:

- **the gap its neighbours leave** (:func:`gap_polygons`): communes tile mainland France,
  so a commune missing from the layer is a hole in the union of the polygons around it.
  A hole is taken as the commune's polygon only when it touches a commune of the same
  EPCI and no other missing commune of that EPCI could claim it (Conques-en-Rouergue,
  12218, is the 106 km² hole its Aveyron neighbours leave);
- **the OSM administrative boundary** of a catalogued OSM extract of the commune
  (:func:`osm_boundary`): the ``boundary=administrative`` relation whose ``ref:INSEE``
  or name is the commune's, clipped to the land (the extract's ``natural=coastline``
  islands) because island boundaries follow territorial waters (Saint-Barthélemy, 97701).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = ["gap_polygons", "osm_boundary"]

log = logging.getLogger(__name__)

#: Holes smaller than this (m²) are slivers of the simplification, not communes.
MIN_HOLE_M2 = 100_000.0
#: Neighbours looked at around a missing commune's EPCI (m).
SEARCH_M = 5_000.0
#: CRS the holes are measured in (mainland France).
_METRIC_CRS = "EPSG:2154"


def gap_polygons(
    missing: Iterable[str], polygons: gpd.GeoDataFrame, epci: Mapping[str, str | None]
) -> dict[str, BaseGeometry]:
    """Polygons of mainland communes absent from ``polygons``, from the holes their
    neighbours leave.

    Parameters
    ----------
    missing
        INSEE codes of the communes to find (mainland France).
    polygons
        The commune layer: ``insee`` and polygons (any CRS; returned in it).
    epci
        EPCI SIREN per INSEE code (the missing communes and the layer's).

    Returns
    -------
    dict
        INSEE code -> polygon, for the communes whose hole is unambiguous; the others
        are left out.
    """
    layer = polygons[["insee", "geometry"]].to_crs(_METRIC_CRS)
    layer = layer.assign(epci=[epci.get(c) for c in layer["insee"]])
    candidates: dict[str, list[BaseGeometry]] = {}
    for code in missing:
        siren = epci.get(code)
        members = layer[layer["epci"] == siren] if siren else layer.iloc[:0]
        if members.empty:
            continue
        near = layer.iloc[layer.sindex.query(
            shapely.box(*members.total_bounds).buffer(SEARCH_M), predicate="intersects")]
        union = shapely.union_all(np.asarray(near.geometry.values))
        members_union = shapely.union_all(np.asarray(members.geometry.values))
        holes = [shapely.Polygon(ring) for part in getattr(union, "geoms", [union])
                 for ring in part.interiors]
        candidates[code] = [h for h in holes if h.area >= MIN_HOLE_M2
                            and h.distance(members_union) < 1.0]
    found: dict[str, BaseGeometry] = {}
    for code, holes in candidates.items():
        rivals = [other for other, theirs in candidates.items() if other != code
                  and any(h.equals_exact(t, 1e-6) for h in holes for t in theirs)]
        if len(holes) == 1 and not rivals:
            found[code] = holes[0]
        else:
            log.debug("%s: %d candidate hole(s), shared with %s: no polygon", code,
                      len(holes), rivals)
    if not found:
        return {}
    back = gpd.GeoSeries(list(found.values()), crs=_METRIC_CRS).to_crs(polygons.crs)
    return dict(zip(found, back, strict=True))


def osm_boundary(path: Path, insee: str, nom: str) -> tuple[BaseGeometry, str] | None:
    """The administrative boundary of commune ``insee`` in an OSM extract, clipped to
    the land; and a description of it (relation id). None when the extract has none.

    The boundary is the ``boundary=administrative`` area whose ``ref:INSEE`` is
    ``insee``, else whose name is ``nom`` (accents and case ignored; the most local
    ``admin_level`` wins). When the extract maps the coastline (closed
    ``natural=coastline`` ways), the boundary is intersected with those islands.
    """
    import osmium
    import shapely.wkb

    from geo.communes import normalize_name

    wkb = osmium.geom.WKBFactory()
    by_code: list[tuple[int, str, BaseGeometry]] = []
    by_name: list[tuple[int, str, BaseGeometry]] = []
    land: list[BaseGeometry] = []
    wanted = normalize_name(nom)
    processor = osmium.FileProcessor(str(path)).with_areas().with_filter(
        osmium.filter.KeyFilter("boundary", "natural"))
    for obj in processor:
        if not isinstance(obj, osmium.osm.Area):
            continue
        tags = dict(obj.tags)
        try:
            geom = shapely.wkb.loads(wkb.create_multipolygon(obj), hex=True)
        except (RuntimeError, shapely.errors.GEOSException):  # an incomplete ring
            continue
        if tags.get("natural") == "coastline":
            land.append(geom)
        elif tags.get("boundary") == "administrative":
            level = int(tags["admin_level"]) if tags.get("admin_level", "").isdigit() else 0
            item = (level, f"{'way' if obj.from_way() else 'relation'} {obj.orig_id()}", geom)
            if tags.get("ref:INSEE") == insee:
                by_code.append(item)
            elif normalize_name(tags.get("name", "")) == wanted:
                by_name.append(item)
    matches = by_code or by_name
    if not matches:
        return None
    level, osm_id, boundary = max(matches, key=lambda m: m[0])
    note = f"OSM boundary {osm_id} (admin_level {level})"
    if land:
        clipped = shapely.make_valid(boundary).intersection(shapely.union_all(land))
        if not clipped.is_empty:
            return clipped, note + " clipped to the coastline"
    return boundary, note
