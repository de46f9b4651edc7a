"""H3 cells covering a catchment, and how each cell splits over communes.

Cells are whole H3 cells (h3 v4, ids as strings): a cell is kept when it overlaps the
area at all, never clipped to it, so a cell's indicators always describe the same
hexagon whatever the catchment. Polygons come in EPSG:4326 (publishing) or any metric
CRS (computing); H3 edges are great-circle arcs, drawn here as straight segments between
the vertices, which at resolutions 7-10 (edges of 1.4 km to 75 m) is off by well under a
millimetre.

The cell x commune table (:func:`cell_commune_pieces`) records the share of each cell
inside each commune (``cell_share``) and the share of each commune inside each cell
(``commune_share``): the weights of every area-weighted indicator (APL per cell,
population spread over cells).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from geo.errors import BadArgumentError, InputFileError, MissingColumnsError, MissingCrsError
from geo.vocab import is_h3_resolution

__all__ = [
    "GEOGRAPHIC_CRS",
    "cell_commune_pieces",
    "cell_polygons",
    "cells_covering",
    "check_resolution",
    "h3_grid",
    "points_to_cells",
]

log = logging.getLogger(__name__)

#: CRS of H3 coordinates (WGS 84 longitude/latitude).
GEOGRAPHIC_CRS = "EPSG:4326"


def check_resolution(resolution: int) -> int:
    """``resolution`` as an int if it is an H3 resolution (0..15), else BadArgumentError."""
    if not is_h3_resolution(resolution):
        raise BadArgumentError(
            f"H3 resolution must be an integer in 0..15, got {resolution!r}")
    return int(resolution)


def _area_geometry(
    area: BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame, crs: str | CRS | None
) -> tuple[BaseGeometry, CRS]:
    """One geometry and its CRS from a geometry (with ``crs``) or a GeoSeries/GeoDataFrame."""
    if isinstance(area, gpd.GeoDataFrame | gpd.GeoSeries):
        if area.crs is None:
            raise MissingCrsError("the area to cover with H3 cells has no CRS")
        if crs is not None and CRS.from_user_input(crs) != area.crs:
            area = area.to_crs(crs)
        geom = shapely.union_all(np.asarray(area.geometry.values))
        return geom, CRS.from_user_input(area.crs)
    if crs is None:
        raise MissingCrsError("a bare geometry to cover with H3 cells needs crs=...")
    return area, CRS.from_user_input(crs)


def cell_polygons(cells: Iterable[str], *, crs: str | CRS = GEOGRAPHIC_CRS) -> gpd.GeoSeries:
    """Polygons of H3 cells, indexed by cell id.

    Parameters
    ----------
    cells
        H3 cell ids (strings).
    crs
        Output CRS (default EPSG:4326); a metric CRS gives polygons for area computations.
    """
    ids = list(dict.fromkeys(cells))
    bad = [c for c in ids if not (isinstance(c, str) and h3.is_valid_cell(c))]
    if bad:
        raise BadArgumentError(f"not valid H3 cell ids: {bad[:5]}")
    # cell_to_boundary gives (lat, lng) pairs; shapely wants (x=lng, y=lat).
    rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(c)] for c in ids]
    # Cells crossing an icosahedron edge have 7+ vertices: build polygons one by one.
    polys = np.array([shapely.Polygon(r) for r in rings], dtype=object)
    out = gpd.GeoSeries(polys, index=pd.Index(ids, name="h3", dtype="str"), crs=GEOGRAPHIC_CRS)
    return out if CRS.from_user_input(crs) == out.crs else out.to_crs(crs)


def cells_covering(
    area: BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame,
    resolution: int,
    *,
    crs: str | CRS | None = None,
) -> list[str]:
    """Ids of the whole H3 cells that overlap ``area`` (sorted).

    Parameters
    ----------
    area
        Polygon(s) to cover: a shapely geometry in ``crs``, or a GeoSeries/GeoDataFrame
        (its own CRS; all rows are merged).
    resolution
        H3 resolution (0..15).
    crs
        CRS of a bare geometry.

    Returns
    -------
    list of str
        Cells whose hexagon shares a positive area with ``area`` (touching only is not
        enough).
    """
    return list(_covering(area, check_resolution(resolution), crs).index)


def _covering(
    area: BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame, res: int, crs: str | CRS | None
) -> gpd.GeoSeries:
    """Polygons of the cells overlapping ``area`` in its CRS, indexed by sorted cell id."""
    geom, geom_crs = _area_geometry(area, crs)
    if geom is None or geom.is_empty:
        return cell_polygons([], crs=geom_crs)
    if not geom_crs.is_projected:
        raise MissingCrsError(
            f"cover an area given in a projected (metric) CRS, got {geom_crs.to_string()}"
        )
    ll = gpd.GeoSeries([geom], crs=geom_crs).to_crs(GEOGRAPHIC_CRS).iloc[0]
    shape = h3.geo_to_h3shape(ll)
    candidates = h3.h3shape_to_cells_experimental(shape, res, contain="overlap")
    polys = cell_polygons(sorted(candidates), crs=geom_crs)
    if polys.empty:
        return polys
    shapely.prepare(geom)
    # Interiors intersect <=> a positive shared area (valid polygons); cheaper than
    # computing intersections with a detailed boundary.
    keep = shapely.relate_pattern(geom, np.asarray(polys.values), "T********")
    return polys[keep]


def h3_grid(
    area: BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame,
    resolution: int,
    *,
    crs: str | CRS | None = None,
) -> gpd.GeoDataFrame:
    """H3 cells covering ``area`` as a GeoDataFrame in the area's metric CRS.

    Returns
    -------
    GeoDataFrame
        Columns ``h3`` (str), ``resolution``, ``area_m2`` (true cell area on the
        ellipsoid's sphere, from h3), ``geometry`` (whole cells, in the CRS of ``area``
        or ``crs``). Use ``.to_crs("EPSG:4326")`` to publish.
    """
    res = check_resolution(resolution)
    polys = _covering(area, res, crs)
    cells = list(polys.index)
    gdf = gpd.GeoDataFrame(
        {
            "h3": pd.array(cells, dtype="str"),
            "resolution": np.full(len(cells), res, dtype="int8"),
            "area_m2": np.array([h3.cell_area(c, unit="m^2") for c in cells], dtype=float),
        },
        geometry=polys.values,
        crs=polys.crs,
    )
    log.debug("H3 r%d: %d cells", res, len(gdf))
    return gdf


def points_to_cells(points: gpd.GeoSeries | gpd.GeoDataFrame, resolution: int) -> pd.Series:
    """H3 cell (str) of each point at ``resolution``, aligned on the input index.

    Empty or missing geometries get ``<NA>``.
    """
    res = check_resolution(resolution)
    geoms = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if geoms.crs is None:
        raise MissingCrsError("points to index with H3 have no CRS")
    if len(geoms) == 0:
        return pd.Series([], index=geoms.index, dtype="str", name="h3")
    ll = geoms.to_crs(GEOGRAPHIC_CRS)
    if not ll.dropna().geom_type.isin(["Point"]).all():
        raise InputFileError("points_to_cells expects point geometries")
    x = ll.x.to_numpy()
    y = ll.y.to_numpy()
    out = [
        h3.latlng_to_cell(lat, lng, res) if np.isfinite(lat) and np.isfinite(lng) else None
        for lat, lng in zip(y, x, strict=True)
    ]
    return pd.Series(pd.array(out, dtype="str"), index=geoms.index, name="h3")


def cell_commune_pieces(
    cells: gpd.GeoDataFrame, communes: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Intersections of cells and communes with their area shares.

    Parameters
    ----------
    cells
        GeoDataFrame with ``h3`` and polygon geometries in a metric CRS.
    communes
        GeoDataFrame with ``insee`` and polygon geometries (reprojected to the cells' CRS).

    Returns
    -------
    GeoDataFrame
        One row per (cell, commune) pair with a positive shared area: ``h3``, ``insee``,
        ``area_m2`` (of the piece), ``cell_share`` (piece area / cell area: the weight of
        commune values in the cell), ``commune_share`` (piece area / commune area: the
        weight of the cell in the commune), ``geometry`` (the piece). A cell partly
        outside every commune (sea, foreign country) has ``cell_share`` summing below 1.
    """
    for name, frame, col in (("cells", cells, "h3"), ("communes", communes, "insee")):
        if col not in frame.columns:
            raise MissingColumnsError(name, [col], list(frame.columns))
        if frame.crs is None:
            raise MissingCrsError(f"{name} have no CRS")
    if not CRS.from_user_input(cells.crs).is_projected:
        raise MissingCrsError(f"cells must be in a metric CRS, got {cells.crs.to_string()}")
    communes = communes[["insee", "geometry"]]
    if communes.crs != cells.crs:
        communes = communes.to_crs(cells.crs)
    cgeom = np.asarray(cells.geometry.values)
    mgeom = shapely.make_valid(np.asarray(communes.geometry.values))
    tree = shapely.STRtree(mgeom)
    ci, mi = tree.query(cgeom, predicate="intersects")
    pieces = shapely.intersection(cgeom[ci], mgeom[mi])
    area = shapely.area(pieces)
    keep = area > 0
    ci, mi, pieces, area = ci[keep], mi[keep], pieces[keep], area[keep]
    cell_area = shapely.area(cgeom)[ci]
    commune_area = shapely.area(mgeom)[mi]
    return gpd.GeoDataFrame(
        {
            "h3": pd.array(cells["h3"].to_numpy()[ci], dtype="str"),
            "insee": pd.array(communes["insee"].to_numpy()[mi], dtype="str"),
            "area_m2": area,
            "cell_share": area / cell_area,
            "commune_share": area / commune_area,
        },
        geometry=pieces,
        crs=cells.crs,
    )
