"""The street pipeline on a shipped synthetic grid (tests/fixtures/grid_roads_l93.geojson):
road lines noded at shared vertices, the walking graph, times to a facility, the
national population shares. Exact values computed by hand."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo import access, network
from geo.national import population_shares
from geo.settings import load_settings

GRID = Path(__file__).resolve().parents[1] / "fixtures" / "grid_roads_l93.geojson"
X0, Y0, STEP = 845_000.0, 6_575_000.0, 100.0


@pytest.fixture(scope="module")
def settings():
    return load_settings(environ={})


@pytest.fixture(scope="module")
def walk(settings):
    streets = network.read_road_lines(GRID, crs="EPSG:2154")
    return network.build_graph(streets, "walk", settings=settings)


def test_lines_are_noded_at_shared_vertices(walk):
    # the motorway is not walkable; the grid is one component of 6 x 6 crossings; the 4
    # corners have two links each: contracted into their neighbours' links
    assert walk.n_nodes == 36 - 4
    assert walk.n_links == 2 * 6 * 5 - 4
    lengths = walk.edges_frame()["length_m"].to_numpy()
    assert np.isclose(lengths.sum(), 2 * 6 * 5 * STEP)
    assert sorted(set(np.round(lengths))) == [STEP, 2 * STEP]  # corner links: 200 m


def test_times_to_a_facility_are_manhattan_distances(walk, settings):
    # a facility at the crossing (2, 3) of the grid
    fac = gpd.GeoDataFrame({"category": ["sante"], "subcategory": ["pharmacie"]},
                           geometry=[shapely.Point(X0 + 2 * STEP, Y0 + 3 * STEP)],
                           crs="EPSG:2154")
    minutes = access.nearest_times(walk, fac, settings=settings)["all"].to_numpy()
    xy = walk.node_xy
    manhattan = np.abs(xy[:, 0] - (X0 + 2 * STEP)) + np.abs(xy[:, 1] - (Y0 + 3 * STEP))
    expected = manhattan / (settings.walk_speed_kmh * 1000 / 60)
    assert np.allclose(minutes, expected, atol=1e-6)
    counts = access.cumulative_counts(walk, fac, settings=settings)
    within_5 = counts["all_count_5min"].to_numpy()
    assert (within_5 == (expected <= 5 + 1e-9)).all()


def test_population_shares_count_unreached_cells_as_not_reached():
    cells = pd.DataFrame({
        "population": [100.0, 300.0, 600.0, 0.0],
        "walk_sante_minutes_median": [4.0, 12.0, np.nan, 2.0],
        "bike_sante_minutes_median": [1.0, 3.0, 16.0, 1.0],
    })
    shares = population_shares(cells)
    assert shares["walk_sante_pop_share_10min"] == 0.1
    assert shares["walk_sante_pop_share_15min"] == 0.4
    assert shares["bike_sante_pop_share_15min"] == 0.4
    assert population_shares(cells.assign(population=0.0)) == {}
