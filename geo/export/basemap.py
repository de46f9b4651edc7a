"""Basemap layers derived from what a town run already has: commune label points, water,
the limit of the street data, and the commune of each H3 cell.

The map views draw a light basemap under and over their thematic layers
(``tiles/basemap.json``, composed by :mod:`geo.export.views`); these layers feed it:

``commune_labels``
    One point per commune of the catchment (the polygon's pole of inaccessibility, the
    point farthest inside, so the name sits inside even a crescent-shaped commune), with
    ``insee``, ``nom``, ``population`` and ``is_town``.
``water`` and ``waterways``
    Water where a source has it: the OpenStreetMap extract of the town, when one is
    catalogued (areas ``natural=water``, ``waterway=riverbank``, ``landuse=reservoir`` /
    ``basin``, and the lines of ``waterway=river``, ``canal``, ``stream``), and the
    CORINE water classes (5xx) of the land-cover layer: areas in ``water``, lines in
    ``waterways``, with ``name`` (OSM) and ``source`` (``osm`` or ``corine``).
``street_limit``
    The area the street data describes: the street links buffered by
    ``settings.snap_max_m`` (the distance beyond which a facility is no longer tied to
    the network), merged, holes filled; traced on a grid of a quarter of that distance
    (on Forcalquier's 6,177 links: 0.04 s instead of 1.7 s, area within 0.4 % and 0.9 %
    of the area differing from the exact union of buffers). Outside it the street data
    says nothing: access times of H3 cells there are the nearest node's time plus a
    straight-line walk, i.e. estimates; those cells get ``beyond_street_data = true``.

Every function is pure (frames in, frames out) except :func:`read_osm_water`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import rasterio.transform
import shapely
from scipy import ndimage
from shapely.ops import polylabel

from geo._io import libosmium_readable
from geo.errors import InputFileError
from geo.h3grid import cell_commune_pieces

__all__ = [
    "WATER_AREA_TAGS",
    "WATER_LINE_TAGS",
    "cell_communes",
    "commune_label_points",
    "corine_water",
    "read_osm_water",
    "street_limit",
    "with_street_limit_flag",
]

log = logging.getLogger(__name__)

#: OSM tags (key, values) of water areas drawn on the basemap.
WATER_AREA_TAGS: dict[str, frozenset[str]] = {
    "natural": frozenset({"water"}),
    "waterway": frozenset({"riverbank", "dock"}),
    "landuse": frozenset({"reservoir", "basin"}),
}
#: OSM ``waterway`` values drawn as lines.
WATER_LINE_TAGS = frozenset({"river", "canal", "stream"})
#: CORINE level-1 key of water classes (5xx).
_CORINE_WATER = "eau"


def commune_label_points(communes: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One label point per commune: the pole of inaccessibility of its largest part.

    Parameters
    ----------
    communes
        Commune polygons with ``insee`` and ``nom`` (``population``, ``is_town`` when
        present), in a metric CRS.
    """
    keep = [c for c in ("insee", "nom", "population", "is_town") if c in communes.columns]
    parts = communes[[*keep, "geometry"]].explode(index_parts=False)
    parts = parts.assign(_area=parts.area).sort_values("_area", ascending=False)
    largest = parts[~parts.index.duplicated(keep="first")].drop(columns="_area")
    # tolerance ~1 % of the part's size: precise enough for a label, fast
    size = np.sqrt(largest.area.to_numpy())
    points = [polylabel(g, tolerance=max(t * 0.01, 1.0))
              for g, t in zip(largest.geometry, size, strict=True)]
    out = gpd.GeoDataFrame(largest.drop(columns="geometry"), geometry=points,
                           crs=communes.crs).loc[communes.index.intersection(largest.index)]
    if "population" in out.columns:
        out["population"] = pd.to_numeric(out["population"], errors="coerce").round()
        out["population"] = out["population"].astype("Int64")
    return out.reset_index(drop=True)


def cell_communes(cells: gpd.GeoDataFrame, communes: gpd.GeoDataFrame) -> pd.DataFrame:
    """The commune covering the largest part of each cell (``insee``, ``nom``), aligned
    on ``cells``' index; missing for cells outside every commune."""
    if cells.empty or communes.empty:
        return pd.DataFrame({"insee": pd.Series(index=cells.index, dtype="object"),
                             "nom": pd.Series(index=cells.index, dtype="object")})
    left = gpd.GeoDataFrame({"h3": np.arange(len(cells)).astype(str)},
                            geometry=cells.geometry.values, crs=cells.crs)
    pieces = cell_commune_pieces(left, communes[["insee", "geometry"]])
    best = (pieces.sort_values("area_m2", ascending=False, kind="stable")
            .drop_duplicates("h3").set_index("h3").reindex(left["h3"]))
    names = communes.drop_duplicates("insee").set_index("insee")["nom"]
    insee = best["insee"].to_numpy(dtype=object)
    return pd.DataFrame({"insee": insee, "nom": names.reindex(insee).to_numpy(dtype=object)},
                        index=cells.index)


def street_limit(edges: gpd.GeoDataFrame, *, buffer_m: float) -> gpd.GeoDataFrame:
    """The area the street data describes (see module doc), one polygon row.

    Parameters
    ----------
    edges
        Street links (any CRS in metres).
    buffer_m
        Reach of the data around each link (m), ``settings.snap_max_m``.
    """
    if edges.crs is None or not edges.crs.is_projected:
        raise InputFileError("street_limit needs street links in a metric CRS")
    lines = np.asarray(edges.geometry.values)
    lines = lines[~shapely.is_missing(lines) & ~shapely.is_empty(lines)]
    if not len(lines):
        return gpd.GeoDataFrame({"buffer_m": []}, geometry=[], crs=edges.crs)
    # On a grid of buffer_m / 4: the cells the links pass through (their vertices every
    # cell), widened by buffer_m (a disk), traced back to polygons without holes. Within
    # a cell (75 m for 300 m) of the union of the buffered links, at a fraction of its
    # cost (a town's thousands of buffers were the costly step).
    cell = buffer_m / 4
    xy = shapely.get_coordinates(shapely.segmentize(lines, cell))
    x0, y0 = xy.min(axis=0) - buffer_m - cell
    x1, y1 = xy.max(axis=0) + buffer_m + cell
    nx_, ny_ = int(np.ceil((x1 - x0) / cell)), int(np.ceil((y1 - y0) / cell))
    grid = np.zeros((ny_, nx_), dtype=bool)
    grid[((y1 - xy[:, 1]) // cell).astype(int), ((xy[:, 0] - x0) // cell).astype(int)] = True
    r = int(np.ceil(buffer_m / cell))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    grid = ndimage.binary_dilation(grid, structure=(xx**2 + yy**2) <= r * r)
    transform = rasterio.transform.from_origin(x0, y1, cell, cell)
    shells = [shapely.Polygon(ring["coordinates"][0]) for ring, value in
              rasterio.features.shapes(grid.astype(np.uint8), mask=grid, transform=transform)
              if value == 1]
    limit = shapely.simplify(shapely.union_all(shells), cell / 2)
    return gpd.GeoDataFrame({"buffer_m": [float(buffer_m)]}, geometry=[limit], crs=edges.crs)


def with_street_limit_flag(cells: gpd.GeoDataFrame,
                           limit: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``cells`` with ``beyond_street_data``: true when the cell's centre lies outside the
    street-data limit (its access times are estimates)."""
    out = cells.copy()
    if limit.empty:
        out["beyond_street_data"] = True
        return out
    area = limit.to_crs(cells.crs).geometry.union_all()
    out["beyond_street_data"] = ~cells.geometry.centroid.within(area)
    return out


def corine_water(landcover: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """CORINE water polygons (level 1 ``eau``) as basemap water areas."""
    if "clc_level1" not in landcover.columns:
        return _empty_water(landcover.crs)
    water = landcover[landcover["clc_level1"] == _CORINE_WATER]
    return gpd.GeoDataFrame({"kind": "area", "name": None, "source": "corine"},
                            index=range(len(water)), geometry=water.geometry.to_numpy(),
                            crs=landcover.crs)


def _empty_water(crs: object) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"kind": pd.Series(dtype="object"),
                             "name": pd.Series(dtype="object"),
                             "source": pd.Series(dtype="object")}, geometry=[], crs=crs)


def read_osm_water(path: Path, *, crs: str,
                   clip: shapely.Geometry | None = None) -> gpd.GeoDataFrame:
    """Water areas and lines of an OpenStreetMap file (XML, PBF; ``.gz``/``.bz2``/``.xz``).

    Parameters
    ----------
    path
        The OSM extract.
    crs
        CRS of the result.
    clip
        Keep only what intersects this geometry (in ``crs``).
    """
    import osmium

    rows: list[tuple[str, str | None, shapely.Geometry]] = []
    factory = osmium.geom.WKBFactory()
    try:
        with libosmium_readable(Path(path)) as readable:
            fp = osmium.FileProcessor(str(readable), osmium.osm.NODE | osmium.osm.WAY
                                    | osmium.osm.AREA)
            for obj in fp.with_areas().with_locations():
                tags = obj.tags
                try:
                    if isinstance(obj, osmium.osm.Area):
                        if any(tags.get(k) in v for k, v in WATER_AREA_TAGS.items()):
                            rows.append(("area", tags.get("name"),
                                         shapely.from_wkb(factory.create_multipolygon(obj))))
                    elif (isinstance(obj, osmium.osm.Way)
                          and tags.get("waterway") in WATER_LINE_TAGS):
                        rows.append(("line", tags.get("name"),
                                     shapely.from_wkb(factory.create_linestring(obj))))
                except RuntimeError:  # ways whose nodes the extract cut off
                    continue
    except RuntimeError as exc:
        raise InputFileError(f"{path}: not a readable OSM file ({exc})") from None
    if not rows:
        return _empty_water(crs)
    kinds, names, geoms = zip(*rows, strict=True)
    gdf = gpd.GeoDataFrame({"kind": kinds, "name": names, "source": "osm"},
                           geometry=list(geoms), crs="EPSG:4326").to_crs(crs)
    if clip is not None:
        gdf = gdf[gdf.intersects(clip)]
    log.info("%s: %d water areas, %d waterways", path.name, int((gdf["kind"] == "area").sum()),
             int((gdf["kind"] == "line").sum()))
    return gdf.reset_index(drop=True)
