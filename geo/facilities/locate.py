"""Communes of facility points: the commune polygon a point falls in
(:func:`locate_communes`) and the check of a source's declared codes against the polygons
(:func:`check_communes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.errors import MissingColumnsError, MissingCrsError

# --- communes ----------------------------------------------------------------------------------


def locate_communes(
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    polygons: gpd.GeoDataFrame,
    *,
    max_distance_m: float = 250.0,
) -> pd.Series:
    """INSEE code of the commune polygon containing each point.

    Points outside every polygon (simplified coastlines, borders) take the nearest polygon
    within ``max_distance_m``; others get ``NA``. Empty geometries get ``NA``.

    Parameters
    ----------
    points
        Points with a CRS.
    polygons
        Communes with ``insee`` and a geometry (reprojected to the points' CRS if needed).
    """
    geo = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if geo.crs is None or polygons.crs is None:
        raise MissingCrsError("locate_communes: points and commune polygons need a CRS")
    if "insee" not in polygons.columns:
        raise MissingColumnsError("commune polygons", ["insee"], list(polygons.columns))
    polys = polygons[["insee", polygons.geometry.name]]
    if not polys.crs.equals(geo.crs):
        polys = polys.to_crs(geo.crs)
    pts = gpd.GeoDataFrame({"_i": np.arange(len(geo))}, geometry=geo.reset_index(drop=True),
                           crs=geo.crs)
    pts = pts[~(pts.geometry.isna() | pts.geometry.is_empty)]
    out = pd.Series(pd.array([None] * len(geo), dtype="str"))
    if pts.empty:
        out.index = geo.index
        return out
    hit = gpd.sjoin(pts, polys, how="inner", predicate="within")
    hit = hit[~hit["_i"].duplicated()]
    out.iloc[hit["_i"].to_numpy()] = hit["insee"].to_numpy()
    rest = pts[~pts["_i"].isin(hit["_i"])]
    if len(rest) and max_distance_m > 0:
        if rest.crs.is_geographic:
            # Web Mercator distances are stretched by 1/cos(latitude): scale them back.
            lat = np.radians(rest.geometry.y.to_numpy())
            rest_m, polys_m = rest.to_crs("EPSG:3857"), polys.to_crs("EPSG:3857")
            near = gpd.sjoin_nearest(rest_m, polys_m, how="inner",
                                     max_distance=max_distance_m / np.cos(np.radians(60)),
                                     distance_col="_d")
            scale = pd.Series(np.cos(lat), index=rest.index)
            near = near[near["_d"] * scale.loc[near.index] <= max_distance_m]
        else:
            near = gpd.sjoin_nearest(rest, polys, how="inner", max_distance=max_distance_m,
                                     distance_col="_d")
        near = near.sort_values("_d")
        near = near[~near["_i"].duplicated()]
        out.iloc[near["_i"].to_numpy()] = near["insee"].to_numpy()
    out.index = geo.index
    return out


@dataclass(frozen=True)
class CommuneCheck:
    """Declared INSEE codes against the commune polygon each point falls in."""

    source: str
    n_checked: int
    n_mismatch: int
    n_unlocated: int
    #: rows whose declared and located codes differ: source_id, name, declared, located
    mismatches: pd.DataFrame

    @property
    def mismatch_rate(self) -> float:
        """Share of located points whose polygon differs from the declared code."""
        return self.n_mismatch / self.n_checked if self.n_checked else 0.0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"{self.source}: {self.n_mismatch} of {self.n_checked} points "
                f"({self.mismatch_rate:.1%}) fall in another commune than their INSEE code; "
                f"{self.n_unlocated} outside every commune polygon")


def check_communes(
    facilities: gpd.GeoDataFrame, polygons: gpd.GeoDataFrame, *, max_distance_m: float = 250.0
) -> CommuneCheck:
    """Point-in-polygon check of the ``insee`` codes of ``facilities`` (rows with a code and
    a point), against ``polygons`` (``insee``, geometry)."""
    has = facilities["insee"].notna() & ~(facilities.geometry.isna() | facilities.geometry.is_empty)
    sub = facilities[has]
    located = locate_communes(sub, polygons, max_distance_m=max_distance_m)
    unlocated = located.isna()
    differs = ~unlocated & (located != sub["insee"])
    mism = pd.DataFrame({
        "source_id": sub["source_id"], "name": sub["name"], "declared": sub["insee"],
        "located": located,
    })[differs.fillna(False).astype(bool)]
    src = ",".join(sorted(set(facilities["source"].dropna()))) or "facilities"
    return CommuneCheck(src, int((~unlocated).sum()), len(mism), int(unlocated.sum()),
                        mism.reset_index(drop=True))
