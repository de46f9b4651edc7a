"""Street sources of a town (geo.streets): per-commune road archives, several
départements, missing communes."""

from __future__ import annotations

import json

import pyogrio
import pytest

from geo import communes, sources, streets
from geo.stages import access as access_stage


def test_a_catchment_across_two_departements_reads_both_archives(mirror_settings,
                                                                 monkeypatch):
    c = communes.catchment("04019", settings=mirror_settings)  # Barcelonnette, by the 05
    deps = {communes.departement_of(x) for x in c.insee_codes}
    assert deps == {"04", "05"}
    read: list[str] = []
    real = pyogrio.read_dataframe

    def spy(path, *args, **kwargs):
        read.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(streets.pyogrio, "read_dataframe", spy)
    st = streets.town_streets(c, settings=mirror_settings)
    files = {p.split("/")[-1][:5] for p in read}
    assert files == set(c.insee_codes)  # exactly the catchment's communes
    assert {communes.departement_of(f) for f in files} == {"04", "05"}
    assert "roads_04" not in st.source and "04-alpes-de-haute-provence" in st.source
    assert "05-hautes-alpes" in st.source
    assert st.vintage == "OSM 2021-07" and st.n_segments > 10_000


def test_an_archive_is_unpacked_once(mirror_settings):
    ds = sources.get_dataset("roads_05", mirror_settings)
    files = streets.commune_road_files(ds, mirror_settings)
    folder = mirror_settings.interim_dir / "roads" / "roads_05"
    stamp = json.loads((folder / ".archive.json").read_text())
    assert stamp["archive"] == "05-hautes-alpes_roads_by_commune.tar.xz"
    assert len(files) == 161 and "05179" in files and "05046" not in files
    before = folder.stat().st_mtime_ns
    assert streets.commune_road_files(ds, mirror_settings) == files
    assert folder.stat().st_mtime_ns == before


def test_a_town_missing_from_its_archive_has_no_streets(mirror_settings, tmp_path):
    """Embrun (05046) is kept out of the mirror's 05 archive: no access, said why."""
    assert not streets.has_streets("05046", mirror_settings)
    assert streets.has_streets("05179", mirror_settings)
    assert streets.has_streets("01306", mirror_settings)  # its OSM extract
    c = communes.catchment("05046", settings=mirror_settings)
    folder = tmp_path / "05046"
    communes.write_catchment(c, folder / communes.CATCHMENT_FILE)
    assert access_stage.run("05046", out_dir=folder, settings=mirror_settings) == []


def test_communes_the_archives_lack_are_reported(mirror_settings, caplog):
    """Arles (13004) is not in the snapshot: a neighbour's catchment reads the others and
    says which are missing."""
    c = communes.catchment("13078", settings=mirror_settings)
    roads = streets.catchment_road_files(c.insee_codes, mirror_settings)
    assert "13004" in roads.missing and "13078" not in roads.missing
    with caplog.at_level("WARNING"):
        streets.town_streets(c, settings=mirror_settings)
    assert "13004" in caplog.text and "missing from the graph" in caplog.text


def test_make_rules_name_every_commune_with_its_own_road_file(mirror_settings):
    rules = streets.street_make_rules(mirror_settings)
    assert "STREETS_04019 := $(RAW_roads_04)\n" in rules
    assert "STREETS_77051 := $(RAW_roads_77)\n" in rules
    assert "STREETS_35236 := $(RAW_osm_redon)\n" in rules
    assert "STREETS_13004" not in rules and "STREETS_84137" not in rules


@pytest.mark.parametrize("code", ["91016", "95250"])
def test_pvd_towns_of_ile_de_france_have_streets(mirror_settings, code):
    assert streets.has_streets(code, mirror_settings)
