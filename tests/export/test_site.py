"""The national dashboard site (``pvdgeo site``, geo.export.site) on real data: the files
it writes, the national table as CSV, the tiles, and the page in headless Chromium
(tests/browser/site_check.mjs): first render without console errors or failed
requests, search, indicator switch (pixels), town panel, table view and downloads,
unknown town, phone-sized screen, keyboard."""

from __future__ import annotations

import io
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from browser.harness import ARTIFACTS, run_script
from browser.png import read_png
from conftest import private_data

from export.synthetic_town import TOWN
from geo import communes, dashboard, facilities, facility_trends, indicators, national
from geo.cli import main as cli_main
from geo.export.serve import serve_in_thread
from geo.export.site import CSV_NAME, DASHBOARD_FILE, SiteSummary, build_site
from geo.export.tiles import check_pmtiles
from geo.settings import PROJECT_ROOT, Settings

SCRIPT = PROJECT_ROOT / "tests" / "browser" / "site_check.mjs"
#: Map of the test site: the Ain, where the demo town is.
DEPARTEMENTS = ["01"]


@pytest.fixture(scope="module")
def site_settings(mirror_settings: Settings, publish_settings: Settings, town_pmtiles: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data folder with the session's national tables (built once in the shared folder,
    where later tests reuse them) and one built town: the demo town run of the publishing
    tests (its GeoPackage and tiles too), with the national tables of built towns."""
    for build in (facilities.facilities_by_commune, facility_trends.facility_trends_by_commune,
                  indicators.apl_by_commune):
        build(mirror_settings)
    s = private_data(mirror_settings, tmp_path_factory.mktemp("site") / "data")
    s.out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(publish_settings.town_dir(TOWN)), str(s.town_dir(TOWN))],
                   check=True)
    national.write_national_tables([TOWN], settings=s)
    return s


@pytest.fixture(scope="module")
def compared(site_settings: Settings) -> list[str]:
    """The demo town and the 9 largest other PVD towns of the Ain."""
    ref = communes.load_reference(site_settings)
    ain = ref[(ref["departement"] == "01") & ref["pvd"] & (ref["insee"] != TOWN)]
    return [TOWN, *ain.sort_values("population", ascending=False)["insee"].head(9)]


@pytest.fixture(scope="module")
def site(site_settings: Settings, compared: list[str]) -> SiteSummary:
    return build_site(site_settings, compare=compared, departements=DEPARTEMENTS)


@pytest.fixture(scope="module")
def site_data(site: SiteSummary) -> dict[str, Any]:
    folder = site.index.parent / "data"
    return {name: json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
            for name in ("config", "communes")}


def _read_csv(data: bytes | Path) -> pd.DataFrame:
    raw = data.read_bytes() if isinstance(data, Path) else data
    assert raw.startswith("\ufeff".encode())  # UTF-8 with BOM: accents right in a spreadsheet
    return pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig",
                       dtype={"insee": str, "departement": str, "region": str})


# --- files ------------------------------------------------------------------------------------


def test_site_files(site: SiteSummary, site_data: dict[str, Any],
                    site_settings: Settings) -> None:
    folder = site.index.parent
    assert folder == site_settings.out_dir / "site"
    for name in ("index.html", "site.js", "site.css", "sources.html",
                 "vendor/maplibre-gl/maplibre-gl.mjs", "vendor/pmtiles/index.js",
                 "vendor/fonts/noto-sans-latin-400-normal.woff2", f"data/{CSV_NAME}",
                 "tiles/communes.pmtiles", "tiles/cellules.pmtiles"):
        assert (folder / name).is_file(), name
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert '<html lang="fr">' in html and "https://" not in html  # nothing from a CDN
    config = site_data["config"]
    assert [i["key"] for i in config["indicators"]] == [i.key for i in dashboard.INDICATORS]
    assert [t["key"] for t in config["themes"]] == [t.key for t in dashboard.THEMES]
    assert config["counts"] == {"communes": site.communes, "compared": 10, "built": 1}
    assert config["built"][TOWN] == {"viewer": f"../viewer/?town={TOWN}",
                                     "gpkg": f"../{TOWN}/{TOWN}.gpkg"}
    apl = next(i for i in config["indicators"] if i["key"] == "apl_mg")
    assert apl["sources"] == ["apl_mg"] and apl["classes"] and apl["sens"] == "plus"
    assert config["catalogue"]["apl_mg"]["producer"].startswith("DREES")
    # every figure links to its dataset: every source cited has an anchor in sources.html
    sources_html = (folder / "sources.html").read_text(encoding="utf-8")
    cited = {d for i in config["indicators"] for d in i["sources"]}
    assert cited and cited <= set(config["catalogue"])
    for ds in cited:
        assert f'id="{ds}"' in sources_html, ds
    assert "Licence Ouverte" in sources_html and "ODbL" in sources_html


def test_national_csv_equals_the_national_table(site: SiteSummary,
                                                site_settings: Settings) -> None:
    csv = _read_csv(site.csv)
    table = pd.read_parquet(national.national_dir(site_settings) / DASHBOARD_FILE)
    assert site.table == national.national_dir(site_settings) / DASHBOARD_FILE
    assert list(csv.columns) == list(table.columns)
    assert csv["insee"].tolist() == table["insee"].astype(str).tolist()
    # the table computed again from the national commune tables
    board = dashboard.build_dashboard(site_settings)
    assert len(csv) == len(board.table) == len(communes.load_reference(site_settings))
    for ind in board.indicators:
        np.testing.assert_allclose(csv[ind.key].astype(float),
                                   board.table[ind.key].astype(float), rtol=1e-5, atol=0,
                                   equal_nan=True, err_msg=ind.key)
    # counts are exact: Paris's population is not rounded to 6 significant digits
    np.testing.assert_array_equal(csv["population"].astype("float64").to_numpy(),
                                  board.table["population"].astype("float64").to_numpy())
    assert csv.set_index("insee").at["75056", "population"] > 10**6
    row = csv.set_index("insee").loc[TOWN]
    assert row["nom"] == "Pont-de-Veyle" and row["programme"] == "PVD"
    assert bool(row["commune_traitee"]) is True


def test_values_and_sheets_follow_the_table(site: SiteSummary, site_data: dict[str, Any],
                                            compared: list[str]) -> None:
    folder = site.index.parent / "data"
    codes = site_data["communes"]["insee"]
    table = _read_csv(site.csv).set_index("insee")
    assert codes == table.index.tolist()
    values = json.loads((folder / "valeurs" / "apl_mg.json").read_text(encoding="utf-8"))
    np.testing.assert_allclose(np.array(values["v"], dtype=float), table["apl_mg"], rtol=0,
                               equal_nan=True)
    assert set(values["p"]) <= set(compared) and TOWN in values["p"]
    sheet = json.loads((folder / "fiches" / f"{TOWN}.json").read_text(encoding="utf-8"))
    assert sheet["nom"] == "Pont-de-Veyle" and sheet["peers"]["n"] >= 5
    assert sheet["rows"]["apl_mg"][0] == pytest.approx(table.at[TOWN, "apl_mg"])
    assert sheet["rows"]["apl_mg"][3] == values["p"][TOWN]
    assert [d["cote"] for d in sheet["distinctions"]] == ["fort"] * 3 + ["faible"] * 3
    assert sheet["links"]["viewer"] == f"../viewer/?town={TOWN}"
    assert {p.name for p in (folder / "fiches").iterdir()} == {f"{c}.json" for c in compared}
    # a point inside the commune, a zoom that frames it
    i = codes.index(TOWN)
    c = site_data["communes"]
    assert 4.8 < c["lon"][i] < 5.0 and 46.2 < c["lat"][i] < 46.3 and 8 <= c["z"][i] <= 12.5
    assert c["prog"][i] == 1 and c["fiche"][i] == 1 and c["traitee"][i] == 1


def test_tiles(site: SiteSummary, site_settings: Settings) -> None:
    tiles = check_pmtiles(site.index.parent / "tiles" / "communes.pmtiles",
                          layers=["communes", "departements", "labels"], min_zoom=4,
                          max_zoom=8)
    assert tiles.metadata["pvdgeo"]["fingerprint"]
    w, s, e, n = tiles.bounds
    assert 4.7 < w < 5.0 and 45.5 < s < 45.7 and 6.1 < e < 6.3 and 46.4 < n < 46.6  # the Ain
    cells = check_pmtiles(site.index.parent / "tiles" / "cellules.pmtiles", layers=["cells"],
                          min_zoom=10, max_zoom=13)
    fields = next(vl["fields"] for vl in cells.metadata["vector_layers"])
    assert {"h3", "town", "walk_sante_minutes_median", "bike_pharmacie_minutes_median"} \
        <= set(fields)


def test_cli_rejects_an_unknown_departement(site_settings: Settings, monkeypatch,
                                            capsys) -> None:
    monkeypatch.setenv("GEO_DATA_DIR", str(site_settings.data_dir))
    monkeypatch.setenv("GEO_MIRROR", str(site_settings.mirror))
    assert cli_main(["site", "--departement", "999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown département(s) 999" in err[0]


def test_serve_opens_the_site(site: SiteSummary, site_settings: Settings) -> None:
    server, url = serve_in_thread(site_settings.out_dir)
    try:
        with urllib.request.urlopen(url + "/") as response:
            assert response.url.endswith("/site/")
            assert "Tableau de bord" in response.read().decode("utf-8")
    finally:
        server.shutdown()
        server.server_close()


# --- in Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_run(site: SiteSummary, site_settings: Settings) -> dict[str, Any]:
    server, url = serve_in_thread(site_settings.out_dir)
    try:
        return run_script(SCRIPT, url, str(ARTIFACTS), json.dumps({
            "search": "pont de veyle", "expect": TOWN, "other": "n_commerces_per_10k",
            "filters": {"departement": "01", "programme": "pvd"}, "unknown": "99999"}),
            timeout=300)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_page_loads_without_errors(browser_run: dict[str, Any], site_settings: Settings) -> None:
    assert browser_run["errors"] == []
    load = browser_run["steps"]["load"]
    assert load["state"] == "ready" and load["indicator"] == "apl_mg"
    assert load["url"] == "?indicateur=apl_mg"
    assert load["rendered"] > 300  # the Ain's communes
    assert "APL aux médecins généralistes" in load["legend"]
    assert "donnée non disponible" in load["legend"]
    # names of the programme towns on the map (fonts served locally)
    ref = communes.load_reference(site_settings)
    pvd_ain = set(ref.loc[(ref["departement"] == "01") & ref["pvd"], "nom"])
    assert pvd_ain & set(load["labels"]), load["labels"]


@pytest.mark.browser
def test_search_opens_the_town_panel(browser_run: dict[str, Any]) -> None:
    search = browser_run["steps"]["search"]
    assert search["options"][0]["insee"] == TOWN
    assert search["options"][0]["text"].startswith("Pont-de-Veyle Ain (01)")
    assert search["commune"] == TOWN and f"commune={TOWN}" in search["url"]
    assert search["fiche"] == "1" and search["selected"] >= 1 and search["zoom"] > 10
    # accents, case and punctuation ignored; homonyms told apart by their département
    vernon = [o for o in search["homonyms"] if o["text"].startswith("Vernon ")]
    assert {o["insee"] for o in vernon} == {"27681", "07336", "86284"}
    assert vernon[0]["insee"] == "27681"  # the largest first
    assert all(f"({o['insee'][:2]})" in o["text"] for o in vernon)
    assert search["code"][0]["insee"] == "2A004" and "Ajaccio" in search["code"][0]["text"]
    assert search["accents"][0]["insee"] == "01350"  # Saint-Étienne-du-Bois
    panel = search["panel"]
    for text in ("Pont-de-Veyle", "Commune 01306", "Ce qui distingue la commune",
                 "Points forts", "Points faibles", "communes comparables", "Indicateurs clés",
                 "Médiane des pairs", "Percentile parmi les pairs", "Médiane nationale",
                 "Carte détaillée de la commune", "GeoPackage pour QGIS"):
        assert text in panel, text


@pytest.mark.browser
def test_town_panel_csv_holds_the_comparison(browser_run: dict[str, Any], site: SiteSummary,
                                             site_data: dict[str, Any]) -> None:
    search = browser_run["steps"]["search"]
    assert search["sheetCsvName"] == f"pvdgeo_{TOWN}_comparaison.csv"
    rows = _read_csv(Path(search["sheetCsv"])).set_index("indicateur")
    config = {i["key"]: i for i in site_data["config"]["indicators"]}
    assert list(rows.index) == list(config)  # every indicator, in the registry's order
    assert set(rows["insee"]) == {TOWN} and set(rows["nom"]) == {"Pont-de-Veyle"}
    sheet = json.loads((site.index.parent / "data" / "fiches" / f"{TOWN}.json")
                       .read_text(encoding="utf-8"))
    table = _read_csv(site.csv).set_index("insee")
    for key, (value, median, n, pct) in sheet["rows"].items():
        row = rows.loc[key]
        assert row["libelle"] == config[key]["label"] and row["n_pairs"] == n
        for got, want in ((row["valeur"], value), (row["mediane_pairs"], median),
                          (row["percentile_pairs"], pct),
                          (row["mediane_nationale"], config[key]["mediane_france"])):
            assert (pd.isna(got) and want is None) or got == pytest.approx(want), key
    assert rows.at["apl_mg", "valeur"] == pytest.approx(table.at[TOWN, "apl_mg"])
    assert rows.at["apl_mg", "sources"] == "apl_mg"


@pytest.mark.browser
def test_switching_indicator_changes_the_colours(browser_run: dict[str, Any]) -> None:
    switch = browser_run["steps"]["switch"]
    assert switch["indicator"] == "n_commerces_per_10k"
    assert switch["url"] == "?indicateur=n_commerces_per_10k"
    assert "Commerces" in switch["legend"] and "aucun" in switch["legend"]
    a = read_png(Path(switch["first"]))[..., :3].astype(int)
    b = read_png(Path(switch["second"]))[..., :3].astype(int)
    assert a.shape == b.shape
    changed = (np.abs(a - b).sum(axis=2) > 30).mean()
    assert changed > 0.05, changed
    # several classes drawn, not one flat colour
    colours = {tuple(px) for px in b.reshape(-1, 3)[:: 97]}
    assert len(colours) > 5


@pytest.mark.browser
def test_downloaded_csv_equals_the_national_table(browser_run: dict[str, Any],
                                                  site: SiteSummary,
                                                  site_settings: Settings) -> None:
    table = browser_run["steps"]["table"]
    assert table["nationalName"] == CSV_NAME
    assert Path(table["national"]).read_bytes() == site.csv.read_bytes()
    national_table = pd.read_parquet(national.national_dir(site_settings) / DASHBOARD_FILE)
    downloaded = _read_csv(Path(table["national"]))
    pd.testing.assert_frame_equal(
        downloaded, _read_csv(national_table.to_csv(index=False).encode("utf-8-sig")))
    # the view: PVD towns of the Ain, the columns of the national table
    view = _read_csv(Path(table["view"]))
    t = national_table.set_index("insee")
    wanted = t[(t["departement"] == "01") & t["pvd"]]
    assert sorted(view["insee"]) == sorted(wanted.index)
    assert table["rows"] == len(wanted) and table["shown"] == len(wanted)
    v = view.set_index("insee")
    for col in ("population", "n_commerces_per_10k", "apl_mg"):
        np.testing.assert_allclose(v[col].astype(float),
                                   wanted.loc[v.index, col].astype(float), equal_nan=True)
    assert "percentile_n_commerces_per_10k" in view.columns
    # every figure links to its datasets: each indicator column to its entry in sources.html
    sources_html = (site.index.parent / "sources.html").read_text(encoding="utf-8")
    assert len(table["columnSources"]) == len(table["headers"]) - 5  # not the card columns
    for href in table["columnSources"]:
        assert href.startswith("sources.html#indicateur-")
        assert f'id="{href.split("#")[1]}"' in sources_html, href
    assert "programme=pvd" in table["url"] and "departement=01" in table["url"]
    assert "vue=tableau" in table["url"]
    # sortable
    def num(texts: list[str]) -> list[float]:
        return [float(x.replace("\u202f", "").replace(",", ".")) for x in texts if x != "n.d."]
    assert num(table["sortedDesc"]) == sorted(num(table["sortedDesc"]), reverse=True)
    assert num(table["sortedAsc"]) == sorted(num(table["sortedAsc"]))


@pytest.mark.browser
def test_unknown_town_in_the_url(browser_run: dict[str, Any]) -> None:
    unknown = browser_run["steps"]["unknown"]
    assert unknown["message"].startswith("Commune inconnue : « 99999 »")
    assert unknown["kind"] == "unknown-commune" and unknown["panelHidden"] is True
    assert unknown["state"] == "ready"  # the map still shows


@pytest.mark.browser
def test_phone_and_keyboard(browser_run: dict[str, Any]) -> None:
    phone = browser_run["steps"]["phone"]
    assert phone["scrollWidth"] <= 390  # nothing wider than the screen
    assert phone["map"]["width"] == 390 and phone["panel"]["width"] == 390
    assert phone["panel"]["y"] > phone["map"]["y"]  # the panel below, over the map
    assert phone["toggle"]["height"] >= 32 and phone["controls"]["x"] == 0
    keyboard = browser_run["steps"]["keyboard"]
    assert all(keyboard.values()), keyboard
