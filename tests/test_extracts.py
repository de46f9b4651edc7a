"""Per-town extracts cut from a PBF with osmium-tool (geo.extracts), on a PBF built from
the mirror's OSM files (Pont-de-Veyle and Saint-Germain-en-Laye)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from conftest import private_data
from shared_data import IN_CI

from geo import communes, extracts, network, sources, streets
from geo._io import open_maybe_compressed
from geo.errors import InputFileError


@pytest.fixture(scope="module")
def osmium():
    if shutil.which("osmium") is None:
        msg = "osmium-tool not installed (apt-get install osmium-tool)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return shutil.which("osmium")


@pytest.fixture(scope="module")
def extract_settings(mirror_settings, tmp_path_factory):
    """A data folder of its own: the extracts cut here must not feed other tests' towns."""
    return private_data(mirror_settings, tmp_path_factory.mktemp("extracts") / "data")


@pytest.fixture(scope="module")
def france_pbf(osmium, mirror_settings, tmp_path_factory):
    """One PBF holding two towns of two départements (01 and 78), as a national file."""
    folder = tmp_path_factory.mktemp("pbf")
    sgl, pdv = folder / "sgl.osm", folder / "pdv.osm"
    for dataset, dest in (("osm_saint_germain", sgl), ("osm_pont_de_veyle", pdv)):
        with open_maybe_compressed(sources.ensure(dataset, mirror_settings), "rb") as src:
            dest.write_bytes(src.read())
    out = folder / "france.osm.pbf"
    subprocess.run([osmium, "sort", str(sgl), str(pdv), "-o", str(out), "--overwrite"],
                   check=True, capture_output=True)
    return out, sgl


TOWNS = ["01306", "78551", "78481"]  # Pont-de-Veyle; Saint-Germain-en-Laye, Le Pecq


@pytest.fixture(scope="module")
def cut(france_pbf, extract_settings):
    pbf, _ = france_pbf
    return extracts.town_extracts(pbf, TOWNS, max_per_pass=1, settings=extract_settings)


def test_each_town_gets_its_catchment(cut, france_pbf, extract_settings):
    _, sgl = france_pbf
    assert sorted(cut) == sorted(TOWNS)
    for insee, path in cut.items():
        assert path.name == f"{insee}.osm.pbf" and path.stat().st_size > 10_000
    # the streets of a catchment from its extract are those of the full file in it
    c = communes.catchment("78551", settings=extract_settings)
    from_extract = network.read_osm(cut["78551"], crs=c.crs, area=c.area)
    from_full = network.read_osm(sgl, crs=c.crs, area=c.area)
    assert from_extract.n_segments == from_full.n_segments > 10_000
    assert np.array_equal(np.sort(from_extract.node_id), np.sort(from_full.node_id))
    assert from_extract.dropped_ways == 0  # complete ways: no way cut at the edge
    # Pont-de-Veyle's extract has none of Saint-Germain's nodes
    pdv = network.read_osm(cut["01306"], crs="EPSG:2154")
    assert pdv.xy[:, 1].max() < 6_700_000  # Lambert-93 northing of the Ain, not Yvelines


def test_cut_again_only_what_changed(cut, france_pbf, extract_settings, monkeypatch):
    pbf, _ = france_pbf
    before = {k: p.stat().st_mtime_ns for k, p in cut.items()}
    calls = []
    real = extracts._run_pass

    def spy(osmium, pbf, polygons, out_dir, strategy):
        calls.append(sorted(polygons))
        return real(osmium, pbf, polygons, out_dir, strategy)

    monkeypatch.setattr(extracts, "_run_pass", spy)
    again = extracts.town_extracts(pbf, TOWNS, max_per_pass=1, settings=extract_settings)
    assert calls == [] and {k: p.stat().st_mtime_ns for k, p in again.items()} == before
    wider = extract_settings.replace(catchment_buffer_m=6000.0)
    extracts.town_extracts(pbf, ["01306"], max_per_pass=1, settings=wider)
    assert calls == [["01306"]]  # one level: one town, one département


def test_two_levels_and_passes(cut, france_pbf, extract_settings, monkeypatch, tmp_path):
    pbf, _ = france_pbf
    calls = []
    real = extracts._run_pass

    def spy(osmium, src, polygons, out_dir, strategy):
        calls.append((src.name, sorted(polygons)))
        return real(osmium, src, polygons, out_dir, strategy)

    monkeypatch.setattr(extracts, "_run_pass", spy)
    polygons = extracts.extract_polygons(TOWNS, settings=extract_settings)
    groups = {c: communes.departement_of(c) for c in TOWNS}
    out = extracts.split_pbf(pbf, polygons, tmp_path, groups=groups, max_per_pass=1)
    assert sorted(out) == sorted(TOWNS)
    # first the départements out of the big file (one per pass), then their towns
    assert calls[:2] == [("france.osm.pbf", ["group-01"]), ("france.osm.pbf", ["group-78"])]
    assert ("group-78.osm.pbf", ["78551"]) in calls and ("group-78.osm.pbf", ["78481"]) in calls
    assert not list(tmp_path.glob(".pvdgeo-extract-*"))  # temporary folders removed


def test_passes_sized_by_memory(france_pbf):
    pbf, _ = france_pbf
    top = extracts.highest_node_id(pbf)
    assert top > 5e9  # OSM node ids of 2022
    assert extracts.extracts_per_pass(pbf, memory_gb=top / 8 / 1e9 * 3.5) == 3
    assert extracts.extracts_per_pass(pbf, memory_gb=0.001) == 1


def test_the_stages_read_a_town_extract_first(cut, extract_settings):
    c = communes.catchment("78551", settings=extract_settings)
    assert extracts.town_extract("78551", extract_settings) == cut["78551"]
    st = streets.town_streets(c, settings=extract_settings)
    assert st.source.endswith("78551.osm.pbf")
    assert extracts.town_extract("71310", extract_settings) is None


def test_bad_input_is_one_clear_error(extract_settings, tmp_path, osmium):
    with pytest.raises(InputFileError, match="does not exist"):
        extracts.town_extracts(tmp_path / "none.osm.pbf", ["01306"], settings=extract_settings)
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(b"not a pbf" * 100)
    with pytest.raises(InputFileError, match=r"junk\.osm\.pbf"):
        extracts.split_pbf(junk, {"a": communes.catchment("01306", settings=extract_settings)
                                  .area}, tmp_path / "o", max_per_pass=1)
