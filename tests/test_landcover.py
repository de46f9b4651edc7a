"""CORINE shares: exactextract on real rasters against an independent pixel-polygon
intersection, vector overlay, EEA grid codes, vintages and bad inputs."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window, from_bounds

from geo import communes, h3grid, landcover
from geo.errors import InputFileError, MissingColumnsError, MissingCrsError

LOT_RASTER = "landcover/corine/clc2018_lot46_100m_epsg3035.tif"
CAHORS_2154 = "landcover/corine/clc2018_cahors_100m_epsg2154.tif"


@pytest.fixture(scope="module")
def lot_communes(mirror_settings):
    """The current Lot communes on full-resolution (BD CARTO) polygons."""
    ref = communes.load_reference(mirror_settings)
    codes = ref.loc[ref["departement"] == "46", "insee"].tolist()
    return communes.commune_polygons(codes, full_resolution=True, settings=mirror_settings)


@pytest.fixture(scope="module")
def lot_source(shared_data):
    return landcover.open_landcover(shared_data / LOT_RASTER, label="clc2018_lot")


@pytest.fixture(scope="module")
def lot_shares(lot_communes, lot_source):
    return landcover.landcover_shares(lot_communes, lot_source, id_col="insee").set_index(
        "insee"
    )


def _independent_class_areas(geom, path):
    """Class areas (m²) of one polygon by intersecting it with every pixel square of a
    windowed read (shapely), and the polygon's area: no exactextract involved."""
    with rasterio.open(path) as ds:
        w = from_bounds(*geom.bounds, transform=ds.transform)
        win = Window(int(np.floor(w.col_off)) - 1, int(np.floor(w.row_off)) - 1,
                     int(np.ceil(w.width)) + 3, int(np.ceil(w.height)) + 3)
        values = ds.read(1, window=win, boundless=True, fill_value=np.nan).astype(float)
        t = ds.window_transform(win)
    rows, cols = np.indices(values.shape)
    x0 = t.c + cols * t.a
    y0 = t.f + rows * t.e
    pixels = shapely.box(x0.ravel(), (y0 + t.e).ravel(), (x0 + t.a).ravel(), y0.ravel())
    shapely.prepare(geom)
    inter = np.zeros(len(pixels))
    hit = shapely.intersects(geom, pixels)
    inter[hit] = shapely.area(shapely.intersection(pixels[hit], geom))
    vals = values.ravel()
    out: dict[int, float] = {}
    for v in np.unique(vals[(inter > 0) & np.isfinite(vals)]):
        out[int(v)] = float(inter[vals == v].sum())
    return out, geom.area


def test_lot_commune_shares_equal_independent_computation(
    lot_communes, lot_shares, shared_data
):
    assert len(lot_communes) == len(lot_shares) == 312  # 313 BD CARTO 2021 polygons, one merger
    # A sample: Cahors, Gourdon, Souillac, Figeac, the two communes reaching past the
    # raster's edge, and every 40th commune.
    l3035 = lot_communes.to_crs("EPSG:3035").set_index("insee")
    sample = sorted({"46042", "46127", "46309", "46102", "46083", "46307",
                     *l3035.index[::40]})
    for code in sample:
        areas, zone_area = _independent_class_areas(l3035.geometry[code],
                                                    shared_data / LOT_RASTER)
        valid = sum(areas.values())
        row = lot_shares.loc[code]
        assert row["clc_nodata_share"] == pytest.approx(1 - valid / zone_area, abs=1e-6)
        for c, a in areas.items():
            assert row[f"clc_{c}_share"] == pytest.approx(a / valid, abs=1e-6), (code, c)
        present = [c for c in lot_shares.columns if c[4:7].isdigit()]
        absent = [c for c in present if int(c[4:7]) not in areas]
        assert (row[absent] == 0).all()
        for digit, key in landcover.LEVEL1.items():
            expected = sum(a for c, a in areas.items() if c // 100 == digit) / valid
            assert row[f"clc_{key}_share"] == pytest.approx(expected, abs=1e-6)
    # Two communes reach past the raster's edge: their nodata share is real.
    assert lot_shares.loc["46307", "clc_nodata_share"] > 1e-5


def test_shares_sum_to_one(lot_shares):
    level1 = [f"clc_{k}_share" for k in landcover.LEVEL1.values()]
    level3 = [c for c in lot_shares.columns if c[4:7].isdigit()]
    assert np.allclose(lot_shares[level1].sum(axis=1), 1.0, atol=1e-9)
    assert np.allclose(lot_shares[level3].sum(axis=1), 1.0, atol=1e-9)
    assert lot_shares["clc_nodata_share"].between(0, 1).all()
    assert lot_shares.loc["46042", "clc_artificialise_share"] > 0.05  # Cahors


@pytest.fixture(scope="module")
def cahors_cells(shared_data):
    with rasterio.open(shared_data / CAHORS_2154) as ds:
        b = ds.bounds
    area = shapely.box(b.left, b.bottom, b.right, b.top).buffer(-3000)
    return h3grid.h3_grid(area, 8, crs="EPSG:2154")


def test_vector_overlay_equals_raster_exactextract(shared_data, cahors_cells, tmp_path):
    """The Cahors raster polygonised into CLC polygons (a code_18 column, as in the SDES
    and EEA vector products) gives the same shares by exact overlay."""
    path = shared_data / CAHORS_2154
    with rasterio.open(path) as ds:
        values = ds.read(1)
        shapes = list(rasterio.features.shapes(values, mask=np.isfinite(values),
                                               transform=ds.transform))
        crs = ds.crs
    vec = gpd.GeoDataFrame(
        {"ID": np.arange(len(shapes)), "CODE_18": [str(int(v)) for _, v in shapes]},
        geometry=[shapely.geometry.shape(g) for g, _ in shapes], crs=crs,
    )
    gpkg = tmp_path / "CLC18_D046_RGF.gpkg"
    vec.to_file(gpkg, layer="CLC18_D046_RGF")
    src_v = landcover.open_landcover(gpkg)
    assert (src_v.kind, src_v.code_column, src_v.year) == ("vector", "CODE_18", 2018)
    src_r = landcover.open_landcover(path)
    assert src_r.year == 2018  # from the file name
    v = landcover.landcover_shares(cahors_cells, src_v, id_col="h3").set_index("h3")
    r = landcover.landcover_shares(cahors_cells, src_r, id_col="h3").set_index("h3")
    assert list(v.columns) == list(r.columns)
    # exactextract accumulates coverage fractions in single precision (~1e-9 here)
    assert np.allclose(v.to_numpy(dtype=float), r.to_numpy(dtype=float), atol=1e-7,
                       equal_nan=True)


def test_eea_grid_codes_are_mapped(shared_data, cahors_cells, tmp_path):
    """The EEA raster stores 1..44 (class index) and 48 (no data) instead of CLC codes."""
    path = shared_data / CAHORS_2154
    with rasterio.open(path) as ds:
        values = ds.read(1)
        profile = ds.profile
    index = {code: i + 1 for i, code in enumerate(landcover.CLC_CODES)}
    grid = np.full(values.shape, 48, dtype=np.uint8)
    finite = np.isfinite(values)
    grid[finite] = [index[int(v)] for v in values[finite]]
    profile.update(dtype="uint8", nodata=None)
    eea = tmp_path / "U2018_CLC2018_V2020_20u1_clip.tif"
    with rasterio.open(eea, "w", **profile) as dst:
        dst.write(grid, 1)
    a = landcover.landcover_shares(cahors_cells, landcover.open_landcover(eea, year=2018),
                                   id_col="h3")
    b = landcover.landcover_shares(cahors_cells, landcover.open_landcover(path), id_col="h3")
    pd.testing.assert_frame_equal(a, b, atol=1e-9)


def test_artificialisation_change_with_two_vintages(shared_data, tmp_path):
    """A synthetic 2012 copy of the Cahors raster where 30 artificial pixels inside a
    pixel-aligned 10 x 10 zone were still meadow (231): the change is 30/100 there and 0
    in an untouched zone."""
    path = shared_data / CAHORS_2154
    with rasterio.open(path) as ds:
        values = ds.read(1)
        profile = ds.profile
        t = ds.transform
    art = np.isfinite(values) & (values < 200)
    rows, cols = np.nonzero(art)
    # the 10 x 10 block with the most artificial pixels
    best = max(((r, c) for r, c in zip(rows[::50], cols[::50], strict=True)
                if r + 10 <= values.shape[0] and c + 10 <= values.shape[1]),
               key=lambda rc: art[rc[0]:rc[0] + 10, rc[1]:rc[1] + 10].sum())
    r0, c0 = best
    block = art[r0:r0 + 10, c0:c0 + 10]
    assert block.sum() >= 30 and np.isfinite(values[r0:r0 + 10, c0:c0 + 10]).all()
    old = values.copy()
    flip = np.argwhere(block)[:30]
    old[r0 + flip[:, 0], c0 + flip[:, 1]] = 231
    old_path = tmp_path / "clc2012_synthetic.tif"
    with rasterio.open(old_path, "w", **profile) as dst:
        dst.write(old, 1)

    def zone(r, c):
        x0, y0 = t * (c, r)
        x1, y1 = t * (c + 10, r + 10)
        return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    zones = gpd.GeoDataFrame({"z": ["changed", "same"]},
                             geometry=[zone(r0, c0), zone(150, 150)], crs=profile["crs"])
    srcs = [landcover.open_landcover(old_path), landcover.open_landcover(path)]
    assert [s.year for s in srcs] == [2012, 2018]
    out, meta = landcover.landcover_indicators(zones, srcs, id_col="z")
    out = out.set_index("z")
    col = "clc_artificialise_change_2012_2018"
    assert meta["clc_year"] == 2018 and meta["clc_change_years"] == [2012, 2018]
    assert out.loc["changed", col] == pytest.approx(0.30, abs=1e-9)
    assert out.loc["changed", "clc_artificialise_share"] == pytest.approx(block.sum() / 100)
    assert out.loc["same", col] == pytest.approx(0.0, abs=1e-12)


def test_one_vintage_reports_change_missing(lot_communes, lot_source):
    out, meta = landcover.landcover_indicators(lot_communes.head(3), [lot_source],
                                               id_col="insee")
    assert out["clc_artificialise_change_2012_2018"].isna().all()
    assert "one CLC vintage" in meta["clc_missing"]


def test_no_source_gives_empty_shares(lot_communes):
    out, meta = landcover.landcover_indicators(lot_communes.head(2), [], id_col="insee")
    assert out["clc_artificialise_share"].isna().all()
    assert (out["clc_nodata_share"] == 1).all()
    assert "no land cover" in meta["clc_missing"]


def test_built_up_area(lot_communes, lot_source, lot_shares):
    """Artificialised area per zone = artificialised share x covered area; unknown for a
    zone mostly outside the land cover; None without a source."""
    zones = lot_communes[lot_communes["insee"].isin(["46001", "46042", "46127"])]
    far = gpd.GeoDataFrame({"insee": ["ain"]}, geometry=[shapely.box(
        850000, 6570000, 851000, 6571000)], crs="EPSG:2154").to_crs(zones.crs)
    built = landcover.built_up_area(pd.concat([zones, far]), [lot_source], id_col="insee")
    area = zones.set_index("insee").to_crs(lot_source.crs).area  # m² in EPSG:3035
    s = lot_shares.loc[zones["insee"]]
    expected = s["clc_artificialise_share"] * (1 - s["clc_nodata_share"]) * area
    np.testing.assert_allclose(built[zones["insee"]], expected, rtol=1e-6)
    assert built["46042"] > 5e6  # Cahors: several km² built up
    assert np.isnan(built["ain"])
    assert landcover.built_up_area(zones, [], id_col="insee") is None


def test_zone_outside_raster_is_nodata(lot_source, caplog):
    """A zone the raster does not cover has no shares, and the reader says so."""
    far = gpd.GeoDataFrame({"z": ["ain"]}, geometry=[shapely.box(850000, 6570000, 851000,
                                                                  6571000)], crs="EPSG:2154")
    with caplog.at_level(logging.WARNING, logger="geo.landcover"):
        out = landcover.landcover_shares(far, lot_source, id_col="z")
    assert out.loc[0, "clc_nodata_share"] == 1.0
    assert np.isnan(out.loc[0, "clc_artificialise_share"])
    assert [r.getMessage() for r in caplog.records] == [
        "land cover clc2018_lot does not cover any of the 1 zone(s) (no CORINE class under "
        "them: outside its extent, or nodata); their shares are empty"]


def test_bad_inputs(tmp_path, lot_source, shared_data):
    with pytest.raises(InputFileError, match="does not exist"):
        landcover.open_landcover(tmp_path / "nope.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff")
    with pytest.raises(InputFileError, match="cannot be read"):
        landcover.open_landcover(junk)
    no_crs = tmp_path / "nocrs.tif"
    with rasterio.open(no_crs, "w", driver="GTiff", width=2, height=2, count=1,
                       dtype="uint16") as dst:
        dst.write(np.full((1, 2, 2), 112, dtype="uint16"))
    with pytest.raises(MissingCrsError, match="no CRS"):
        landcover.open_landcover(no_crs)
    wrong = tmp_path / "wrong.gpkg"
    gpd.GeoDataFrame({"landuse": ["x"]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:2154").to_file(wrong)
    with pytest.raises(MissingColumnsError, match="code_18"):
        landcover.open_landcover(wrong)
    two = tmp_path / "cha.gpkg"
    gpd.GeoDataFrame({"code_12": ["112"], "code_18": ["121"]},
                     geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:2154").to_file(two)
    with pytest.raises(InputFileError, match="several CLC code columns"):
        landcover.open_landcover(two)
    assert landcover.open_landcover(two, year=2012).code_column == "code_12"
    zones = gpd.GeoDataFrame({"z": ["a", "a"]}, geometry=[shapely.box(0, 0, 1, 1)] * 2,
                             crs="EPSG:2154")
    with pytest.raises(InputFileError, match="not unique"):
        landcover.landcover_shares(zones, lot_source, id_col="z")
    with pytest.raises(MissingColumnsError, match="insee"):
        landcover.landcover_shares(zones, lot_source, id_col="insee")


def test_catchment_polygons_match_exact_shares(shared_data, cahors_cells):
    """Polygonised CORINE over a grid: same class areas as exactextract on the grid."""
    src = landcover.open_landcover(shared_data / CAHORS_2154)
    polys = landcover.catchment_polygons(cahors_cells, [src])
    assert {"code_18", "clc_level1", "label", "area_m2"} <= set(polys.columns)
    assert polys.crs == cahors_cells.crs and polys.geom_type.eq("Polygon").all()
    outline = shapely.union_all(cahors_cells.geometry.values)
    assert polys.area.sum() == pytest.approx(outline.area, rel=1e-9)
    by_code = polys.groupby("code_18")["area_m2"].sum()
    zone = gpd.GeoDataFrame({"z": ["grid"]}, geometry=[outline], crs=cahors_cells.crs)
    areas = landcover.class_areas(zone, src, id_col="z").iloc[0]
    for code, a in by_code.items():
        assert a == pytest.approx(areas[code], rel=1e-6)
    assert set(polys["label"]) <= set(landcover.CLC_LABELS_FR.values())
    far = gpd.GeoSeries([shapely.Point(850_000, 6_570_000).buffer(500)], crs="EPSG:2154")
    assert landcover.catchment_polygons(far, [src]) is None


def test_full_resolution_communes_replace_the_simplified_layer(lot_communes, mirror_settings):
    simple = communes.commune_polygons(lot_communes["insee"], settings=mirror_settings)
    full_v = shapely.get_num_coordinates(lot_communes.geometry.values).sum()
    simple_v = shapely.get_num_coordinates(simple.geometry.values).sum()
    assert full_v > 5 * simple_v  # BD CARTO vs the simplified national layer
    # same communes, nearly the same areas (simplification moves borders a little)
    a = lot_communes.set_index("insee").area
    b = simple.set_index("insee").area.reindex(a.index)
    assert ((a - b).abs() / a).median() < 0.01
    # outside the Lot nothing changes (and BD CARTO is not needed)
    ain = communes.commune_polygons(["01306"], full_resolution=True, settings=mirror_settings)
    assert ain.geometry.iloc[0].equals(
        communes.commune_polygons(["01306"], settings=mirror_settings).geometry.iloc[0])


def test_national_landcover_table_cli(use_settings, lot_shares, tmp_path):
    from geo._io import read_parquet_metadata
    from geo.cli import main

    out = tmp_path / "landcover_communes.parquet"
    assert main(["landcover-communes", "--departement", "46",
                 "--out", str(out)]) == 0
    table = pd.read_parquet(out).set_index("insee")
    assert len(table) == 312 and (table["departement"] == "46").all()
    pd.testing.assert_series_equal(table["clc_artificialise_share"],
                                   lot_shares["clc_artificialise_share"].reindex(table.index))
    assert read_parquet_metadata(out)["clc_year"] == 2018
