"""The town PMTiles: metadata, a decoded tile, tile sizes, tippecanoe failures, atomicity."""

from __future__ import annotations

import json
import math
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pyogrio
import pytest

from export.synthetic_town import TOWN
from geo.errors import InputFileError
from geo.export import tiles as tiles_module
from geo.export.layers import layer_spec
from geo.export.tiles import (
    TILE_KEYS,
    PMTilesSummary,
    TileBuildError,
    check_pmtiles,
    find_tippecanoe,
    write_pmtiles,
)
from geo.export.views import load_views, tile_fields
from geo.settings import Settings


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def _decode(archive: Path, z: int, x: int, y: int) -> dict[str, list[dict]]:
    """Features per layer of one tile, decoded by tippecanoe-decode."""
    out = subprocess.run([str(find_tippecanoe("tippecanoe-decode")), str(archive), str(z),
                          str(x), str(y)], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    return {layer["properties"]["layer"]: layer["features"] for layer in doc["features"]}


def test_header_and_metadata(town_pmtiles: PMTilesSummary, town_gpkg: Path,
                             publish_settings: Settings) -> None:
    s = publish_settings
    geometry_layers = [str(n) for n, g in pyogrio.list_layers(town_gpkg) if g is not None]
    assert sorted(town_pmtiles.layers) == sorted(geometry_layers)
    assert (town_pmtiles.min_zoom, town_pmtiles.max_zoom) == (s.tiles_min_zoom, s.tiles_max_zoom)
    assert town_pmtiles.max_tile_bytes <= s.max_tile_bytes
    meta = town_pmtiles.metadata
    assert "OpenStreetMap" in meta["attribution"] and "DREES" in meta["attribution"]
    info = meta["pvdgeo"]
    assert info["insee"] == TOWN and info["nom"] == "Pont-de-Veyle"
    assert info["osm_date"] == "OSM 2022-03-11" and info["cog_year"] == s.cog_year
    zooms = {vl["id"]: vl["minzoom"] for vl in meta["vector_layers"]}
    for name in geometry_layers:
        assert zooms[name] == max(layer_spec(name).minzoom, s.tiles_min_zoom)
    # the town's own bounds lie inside the archive's bounds
    w, so, e, n = town_pmtiles.bounds
    tw, ts, te, tn = info["town_bounds"]
    assert w <= tw < te <= e and so <= ts < tn <= n


def test_decoded_tile_holds_layers_and_attributes(town_pmtiles: PMTilesSummary,
                                                  town_gpkg: Path) -> None:
    communes = pyogrio.read_dataframe(town_gpkg, layer="communes").to_crs(4326)
    town = communes[communes["is_town"].astype(bool)].geometry.iloc[0].representative_point()
    z = 14
    x, y = _tile_of(town.x, town.y, z)
    layers = _decode(town_pmtiles.path, z, x, y)
    assert set(layers) == set(town_pmtiles.layers)
    # cell values in the tile are the GeoPackage's (floats rounded to 4 decimals)
    source = pyogrio.read_dataframe(town_gpkg, layer="h3_r9").set_index("h3")
    cells = {f["properties"]["h3"]: f["properties"] for f in layers["h3_r9"]}
    assert cells
    used = tile_fields(load_views())["h3_r9"]
    assert {"walk_sante_minutes_median", "bike_sante_minutes_median"} <= used
    assert "apl_mg" not in used and "apl_mg" in source.columns
    for h3, props in cells.items():
        for field in ("walk_sante_minutes_median", "bike_sante_minutes_median"):
            expected = source.loc[h3, field]
            if np.isnan(expected):
                assert field not in props  # no null in vector tiles
            else:
                assert props[field] == pytest.approx(expected, abs=1e-4)
        assert isinstance(props["population"], int | float)
        # only the attributes a map view reads (and the keys) are in the tiles
        assert set(props) <= used | set(TILE_KEYS["h3_r9"])
        assert "apl_mg" not in props
    assert any("walk_sante_minutes_median" in p for p in cells.values())
    # street edges carry the access minutes of their mode
    edges = layers["network_edges"]
    assert {f["properties"]["mode"] for f in edges} == {"walk", "bike"}
    assert all(isinstance(f["properties"].get("sante_minutes", 0.0), float | int)
               for f in edges)
    # booleans stay booleans (not 0/1)
    chains = {f["properties"]["chain"] for f in layers["facilities"]
              if "chain" in f["properties"]}
    assert chains and chains <= {True, False}
    town_props = next(f["properties"] for f in layers["communes"]
                      if f["properties"]["insee"] == TOWN)
    assert town_props["is_town"] is True and town_props["nom"] == "Pont-de-Veyle"


def test_layers_start_at_their_zoom(town_pmtiles: PMTilesSummary, town_gpkg: Path) -> None:
    communes = pyogrio.read_dataframe(town_gpkg, layer="communes").to_crs(4326)
    c = communes.geometry.union_all().centroid
    z = 9
    layers = _decode(town_pmtiles.path, z, *_tile_of(c.x, c.y, z))
    assert "communes" in layers and "h3_r8" in layers
    assert "network_edges" not in layers and "h3_r9" not in layers  # from z12 and z10


def test_tiles_stay_under_the_size_limit(town_gpkg: Path, publish_settings: Settings,
                                         tmp_path: Path, town_pmtiles: PMTilesSummary) -> None:
    limit = town_pmtiles.max_tile_bytes // 2  # a limit that bites on the demo town
    s = publish_settings.replace(max_tile_bytes=limit)
    summary = write_pmtiles(town_gpkg, tmp_path / "small.pmtiles", settings=s)
    assert summary.max_tile_bytes <= limit
    assert check_pmtiles(summary.path, max_tile_bytes=limit).tiles == summary.tiles


def test_check_names_what_is_wrong(town_pmtiles: PMTilesSummary, tmp_path: Path) -> None:
    with pytest.raises(TileBuildError, match=r"layers .* differ from .*'roads'"):
        check_pmtiles(town_pmtiles.path, layers=[*town_pmtiles.layers, "roads"])
    with pytest.raises(TileBuildError, match=r"max zoom 15 != 16"):
        check_pmtiles(town_pmtiles.path, max_zoom=16)
    with pytest.raises(TileBuildError, match=r"do not contain the layers' bounds"):
        check_pmtiles(town_pmtiles.path, bounds=(0.0, 40.0, 10.0, 50.0))
    junk = tmp_path / "junk.pmtiles"
    junk.write_bytes(b"not a pmtiles archive" * 10)
    with pytest.raises(TileBuildError, match="not a readable PMTiles archive"):
        check_pmtiles(junk)


def test_tippecanoe_errors_show_the_input(tmp_path: Path) -> None:
    bad = tmp_path / "facilities.geojsons"
    bad.write_text('{"type":"Feature","properties":{},"geometry":{"type":"Polygon",'
                   '"coordinates":"broken"}}\n')
    cmd = [str(find_tippecanoe()), "-q", "-o", str(tmp_path / "x.pmtiles"),
           "--named-layer=" + json.dumps({"file": str(bad), "layer": "facilities"})]
    with pytest.raises(TileBuildError) as err:
        tiles_module._run_tippecanoe(cmd, [bad])
    msg = str(err.value)
    assert "tippecanoe failed (exit status" in msg
    assert "feature without coordinates array" in msg  # tippecanoe's own message
    assert 'facilities.geojsons:1: {"type":"Feature"' in msg  # and the offending input


def test_killed_tippecanoe_leaves_no_file(town_gpkg: Path, publish_settings: Settings,
                                          tmp_path: Path) -> None:
    fake = tmp_path / "tippecanoe"
    fake.write_text('#!/bin/sh\n'
                    'for a in "$@"; do case "$prev" in -o) out="$a";; esac; prev="$a"; done\n'
                    'printf "partial" > "$out"\n'
                    'kill -9 $$\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    final = tmp_path / "out" / "01306.pmtiles"
    with pytest.raises(TileBuildError, match="killed by signal 9"):
        write_pmtiles(town_gpkg, final, settings=publish_settings, tippecanoe=fake)
    assert not final.exists()
    assert not final.parent.exists() or not list(final.parent.iterdir())


def test_missing_gpkg_is_a_clear_error(publish_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"none\.gpkg: GeoPackage not found"):
        write_pmtiles(tmp_path / "none.gpkg", tmp_path / "none.pmtiles",
                      settings=publish_settings)


def _tiles_bytes(path: Path) -> dict[tuple[int, int, int], bytes]:
    from pmtiles.reader import MmapSource, Reader, all_tiles
    with path.open("rb") as fh:
        return dict(all_tiles(Reader(MmapSource(fh)).get_bytes))


def test_tiles_from_the_layers_in_memory_equal_the_tiles_from_the_gpkg(
        town_dir: Path, publish_settings: Settings, tmp_path: Path) -> None:
    """The publish stage tiles the layers it wrote to the GeoPackage without reading it
    back: the same tiles, byte for byte, as the archive made from the GeoPackage."""
    from geo.export import gpkg, layers, metadata
    s = publish_settings
    town = layers.read_town_layers(TOWN, settings=s, town_dir=town_dir)
    prov = metadata.town_provenance(TOWN, settings=s, nom=town.nom)
    path = gpkg.write_gpkg(town, tmp_path / f"{TOWN}.gpkg", provenance=prov, settings=s)
    from_gpkg = write_pmtiles(path, tmp_path / "from_gpkg.pmtiles", settings=s)
    in_memory = tiles_module.write_town_pmtiles(
        town, tmp_path / "in_memory.pmtiles", document=gpkg.dataset_document(town, prov),
        settings=s)
    a, b = _tiles_bytes(from_gpkg.path), _tiles_bytes(in_memory.path)
    assert len(a) > 100 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert in_memory.metadata["pvdgeo"] == from_gpkg.metadata["pvdgeo"]
    assert in_memory.metadata["attribution"] == from_gpkg.metadata["attribution"]


def test_in_memory_column_types_are_those_read_back_from_a_gpkg(tmp_path: Path) -> None:
    """Nullable integers with a missing value are floats once read back from a
    GeoPackage, an all-missing boolean is an object column: the in-memory path gives the
    tiles the same attribute types."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    from geo.export.layers import normalise_dtypes
    frame = gpd.GeoDataFrame({
        "n_full": pd.array([1, 2, 3], dtype="Int64"),
        "n_gaps": pd.array([1, None, 3], dtype="Int64"),
        "n_none": pd.array([None, None, None], dtype="Int64"),
        "share": pd.array([0.5, None, 1.0], dtype="Float64"),
        "flag": pd.array([True, False, True], dtype="boolean"),
        "flag_gaps": pd.array([True, None, False], dtype="boolean"),
        "flag_none": pd.array([None, None, None], dtype="boolean"),
        "small": np.array([1, 2, 3], dtype="int8"),
        "name": ["a", None, "c"],
    }, geometry=[Point(0, 0), Point(1, 1), Point(2, 2)], crs="EPSG:4326")
    pyogrio.write_dataframe(frame, tmp_path / "t.gpkg", layer="t", driver="GPKG")
    back = normalise_dtypes(pyogrio.read_dataframe(tmp_path / "t.gpkg", layer="t",
                                                   use_arrow=True))
    memory = normalise_dtypes(tiles_module._as_read_back(frame))
    assert tiles_module.attribute_types({"t": memory}) == \
        tiles_module.attribute_types({"t": back})
    assert tiles_module.attribute_types({"t": memory})["n_gaps"] == "float"


def test_tippecanoe_temporary_files_go_to_memory_only_with_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(tiles_module, "_MEMORY_TMP", shm)
    free = shutil.disk_usage(shm).free
    assert tiles_module.tippecanoe_tmpdir(tmp_path / "beside", 1_000) == shm
    # inputs so large that 20 times their size exceeds the free space: on the disk
    assert tiles_module.tippecanoe_tmpdir(tmp_path / "beside", free) == tmp_path / "beside"
    monkeypatch.setattr(tiles_module, "_MEMORY_TMP", tmp_path / "absent")
    assert tiles_module.tippecanoe_tmpdir(tmp_path / "beside", 1_000) == tmp_path / "beside"
