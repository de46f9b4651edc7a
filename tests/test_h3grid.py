"""H3 cells covering an area, polygons in two CRS, cell x commune pieces."""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import h3grid
from geo.errors import MissingColumnsError, MissingCrsError

# Two adjacent 3 x 2 km "communes" near Cahors (Lambert-93).
WEST = shapely.box(570_000, 6_370_000, 573_000, 6_372_000)
EAST = shapely.box(573_000, 6_370_000, 576_000, 6_372_000)


@pytest.fixture(scope="module")
def two_communes():
    return gpd.GeoDataFrame({"insee": ["46001", "46002"]}, geometry=[WEST, EAST],
                            crs="EPSG:2154")


@pytest.mark.parametrize("res", [8, 9])
def test_cells_cover_the_area_with_whole_cells(res):
    area = shapely.Point(573_000, 6_371_000).buffer(2_500)
    grid = h3grid.h3_grid(area, res, crs="EPSG:2154")
    assert grid.crs == "EPSG:2154"
    assert grid["h3"].is_unique
    assert all(h3.is_valid_cell(c) and h3.get_resolution(c) == res for c in grid["h3"])
    # Whole cells: the union covers the area, and every cell overlaps it.
    union = shapely.union_all(grid.geometry.values)
    assert union.buffer(1e-3).contains(area)
    assert (grid.geometry.intersection(area).area > 0).all()
    # No cell that overlaps the area is left out: the ring of neighbours outside the
    # grid does not overlap it.
    ring = {n for c in grid["h3"] for n in h3.grid_disk(c, 1)} - set(grid["h3"])
    outside = h3grid.cell_polygons(ring, crs="EPSG:2154")
    assert (outside.intersection(area).area < 1e-6).all()
    # Metric polygons have the true cell area (Lambert-93 scale error < 0.2 % here).
    np.testing.assert_allclose(grid.area, grid["area_m2"], rtol=2e-3)


def test_polygons_in_wgs84_match_h3_boundaries():
    cell = h3.latlng_to_cell(44.45, 1.44, 9)
    poly = h3grid.cell_polygons([cell]).iloc[0]
    lat, lng = h3.cell_to_latlng(cell)
    assert poly.contains(shapely.Point(lng, lat))
    assert len(poly.exterior.coords) - 1 == len(h3.cell_to_boundary(cell))
    assert h3grid.cell_polygons([cell]).crs == "EPSG:4326"


@settings(max_examples=25, deadline=None)
@given(st.floats(43.0, 49.0), st.floats(-1.0, 6.0), st.integers(7, 10))
def test_points_to_cells_agrees_with_h3(lat, lng, res):
    pts = gpd.GeoSeries([shapely.Point(lng, lat)], crs="EPSG:4326").to_crs("EPSG:2154")
    assert h3grid.points_to_cells(pts, res).iloc[0] == h3.latlng_to_cell(lat, lng, res)


def test_cell_commune_pieces_shares(two_communes):
    grid = h3grid.h3_grid(two_communes, 9)
    pieces = h3grid.cell_commune_pieces(grid, two_communes)
    assert set(pieces["insee"]) == {"46001", "46002"}
    # every commune is fully covered by cells: its pieces add up to the whole commune
    assert np.allclose(pieces.groupby("insee")["commune_share"].sum(), 1.0)
    # cells straddling the border split between the two communes
    per_cell = pieces.groupby("h3")["cell_share"].sum()
    inner = grid.set_index("h3").geometry.within(shapely.union_all([WEST, EAST]))
    assert np.allclose(per_cell[inner[inner].index], 1.0)
    assert (per_cell[inner[~inner].index] < 1).all()
    straddling = pieces.groupby("h3")["insee"].nunique()
    assert (straddling == 2).sum() > 0
    assert np.allclose(pieces.area, pieces["area_m2"])


def test_bad_inputs(two_communes):
    with pytest.raises(ValueError, match=r"0\.\.15"):
        h3grid.h3_grid(WEST, 16, crs="EPSG:2154")
    with pytest.raises(MissingCrsError, match="crs="):
        h3grid.cells_covering(WEST, 8)
    with pytest.raises(MissingCrsError, match="projected"):
        h3grid.cells_covering(shapely.box(1, 44, 1.1, 44.1), 8, crs="EPSG:4326")
    with pytest.raises(ValueError, match="not valid H3"):
        h3grid.cell_polygons(["not-a-cell"])
    grid = h3grid.h3_grid(WEST, 8, crs="EPSG:2154")
    with pytest.raises(MissingColumnsError, match="insee"):
        h3grid.cell_commune_pieces(grid, two_communes.rename(columns={"insee": "code"}))
    assert h3grid.cells_covering(shapely.Polygon(), 8, crs="EPSG:2154") == []
