"""The viewer in headless Chromium: every view renders features, no console error.

The Node script tests/browser/viewer_check.mjs (playwright-core) drives Debian's
chromium against the viewer served by geo.export.serve, and saves one screenshot per
view in tests/artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
from browser.harness import ARTIFACTS, run_script

from export.synthetic_town import OTHER_TOWN, TOWN
from geo.export.serve import serve_in_thread
from geo.export.viewer import build_viewer
from geo.export.views import load_views
from geo.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.browser

SCRIPT = PROJECT_ROOT / "tests" / "browser" / "viewer_check.mjs"


@pytest.fixture(scope="module")
def browser_run(built_viewer: Path, publish_settings: Settings) -> dict[str, Any]:
    server, url = serve_in_thread(publish_settings.out_dir)
    try:
        return run_script(SCRIPT, url, TOWN, str(ARTIFACTS), OTHER_TOWN[0], timeout=600)
    finally:
        server.shutdown()
        server.server_close()


def _view(run: dict[str, Any], view_id: str) -> dict[str, Any]:
    return next(v for v in run["views"] if v["id"] == view_id)


def test_no_console_error(browser_run: dict) -> None:
    assert browser_run["errors"] == []
    assert browser_run["state"] == "ready"


def test_every_view_renders_features(browser_run: dict) -> None:
    views = load_views()
    assert [v["id"] for v in browser_run["views"]] == [v.id for v in views]
    # no land cover in the Ain: the land-cover view is offered greyed out, with the reason
    sols = _view(browser_run, "occupation_sols")["status"]
    assert sols["available"] is False and sols["disabled"] == "true"
    assert sols["reason"] == "Pas d'occupation des sols (CORINE Land Cover) pour cette ville."
    for view, shown in zip(views, browser_run["views"], strict=True):
        if not shown["status"]["available"]:
            assert view.id == "occupation_sols"
            continue
        assert set(shown["counts"]) == {e.layer for e in view.legend}
        assert sum(shown["counts"].values()) > 0, (view.id, shown["counts"])
        assert f"view={view.id}" in shown["url"]
        shot = Path(shown["screenshot"])
        assert shot.is_file() and shot.stat().st_size > 20_000, shot
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the layers each view is about, for the demo town
    assert _view(browser_run, "acces_sante_pied")["counts"]["sante-walk-h3"] > 0
    assert _view(browser_run, "apl")["counts"]["apl-communes"] > 0
    assert _view(browser_run, "isochrones")["counts"]["isochrones-pied"] > 0


def test_popups_legends_and_links_in_french(browser_run: dict, town_gpkg: Path) -> None:
    popup = _view(browser_run, "acces_sante_pied")["popup"]
    if popup.startswith("Tronçon de rue"):  # the street on top of the cell
        assert "Temps jusqu'à l'équipement le plus proche : santé\t" in popup
        assert "Type de voie (OSM)\t" in popup
    else:
        assert popup.startswith("Hexagone de 0,1 km²")
        assert re.search(r"^Commune\t\S", popup, re.M)  # the hexagon's commune
        assert "Temps médian à pied : santé" in popup
    assert re.search(r"\t\d+(,\d)? min\n", popup), popup  # French decimals, unit
    # the commune under the centre, with its APL as in the GeoPackage, in French
    apl = _view(browser_run, "apl")["popup"]
    nom = re.search(r"^Commune\t(.+)$", apl, re.M)[1]
    communes = pyogrio.read_dataframe(town_gpkg, layer="communes").set_index("nom")
    shown = re.search(r"^APL médecins généralistes de 65 ans et moins\t(\d+(?:,\d{1,2})?) "
                      r"consultations/hab\./an$", apl, re.M)
    assert shown, apl
    assert float(shown[1].replace(",", ".")) == pytest.approx(communes.loc[nom, "apl_mg"],
                                                              abs=0.006)
    assert browser_run["towns"] == [OTHER_TOWN[0], TOWN]  # by name: Gourdon, Pont-de-Veyle
    links = {a["text"].split(" (")[0]: a["href"] for a in browser_run["links"]}
    assert links["GeoPackage pour QGIS"] == f"../{TOWN}/{TOWN}.gpkg"


def test_viewer_needs_the_npm_packages(publish_settings: Settings, tmp_path: Path) -> None:
    from geo.errors import InputFileError

    with pytest.raises(InputFileError, match=r"missing maplibre-gl/dist/maplibre-gl\.mjs.*"
                                             r"make install-web"):
        build_viewer(publish_settings, node_modules=tmp_path)


def test_town_picker_and_missing_layers(browser_run: dict) -> None:
    """The second town has no street network: its isochrones view says so, without error,
    and its land-cover view draws the classes."""
    other = browser_run["other"]
    assert other["town"] == OTHER_TOWN[0] and f"town={OTHER_TOWN[0]}" in other["url"]
    # no streets: the isochrones view is not shown empty; the first view with data is,
    # and a message says why
    assert other["view"] == other["first_available"] != "isochrones"
    assert other["message"].startswith("Isochrones : Pas de réseau de rues pour cette ville")
    assert other["landcover"]["sols-h3"] > 0
    zoomed = other["landcoverZoom15"]
    assert zoomed["sols-corine"] > 0 and zoomed["sols-h3"] == 0
    assert browser_run["errors"] == []


# --- basemap, labels, legends that match the map (issue 12) ------------------------------


def test_commune_names_render_from_local_fonts(browser_run: dict) -> None:
    assert "Pont-de-Veyle" in browser_run["labels"]  # the first view, on the town
    names = _view(browser_run, "apl")["labels"]  # the whole catchment
    assert "Pont-de-Veyle" in names and len(names) >= 5, names
    # the fonts come from the viewer's own copy of the npm package, nothing from a CDN
    assert browser_run["fonts"] and all("/viewer/vendor/fonts/" in f for f in browser_run["fonts"])
    assert all(f.startswith("http://127.0.0.1") for f in browser_run["fonts"])


def test_first_render_is_not_one_flat_colour(browser_run: dict) -> None:
    checked = 0
    for shown in browser_run["views"]:
        if not shown["status"]["available"]:
            continue
        for layer, classes in shown["classes"].items():
            if len(set(classes["all"]) - {"nodata"}) >= 2:  # the data varies
                assert len(classes["rendered"]) >= 2, (shown["id"], layer, classes)
                checked += 1
    assert checked >= 4  # hexagons of both access views, APL, shops, culture...
    assert _view(browser_run, "apl")["classes"]["apl-communes"]["rendered"]


def test_legend_swatches_are_the_rendered_fill(browser_run: dict) -> None:
    from browser.png import read_png

    compared = 0
    for shown in browser_run["views"]:
        for sample in shown.get("swatches", []):
            by_label = {s["label"]: s for s in sample["swatches"]}
            for label, got in sample["map_colours"].items():
                if got["samples"] < 15 or got["share"] < 0.5:
                    continue  # a class seen in a few pixels only (edges, outlines)
                image = read_png(Path(by_label[label]["path"]))
                h, w = image.shape[:2]
                swatch = image[h // 2, w // 2, :3].astype(int)
                diff = np.abs(swatch - np.array(got["rgb"])).max()
                assert diff <= 3, (shown["id"], sample["layer"], label, swatch.tolist(),
                                   got["rgb"], sample["zoom"])
                compared += 1
    assert compared >= 8


def test_access_map_says_what_it_measures(browser_run: dict) -> None:
    summary = _view(browser_run, "acces_sante_pied")["summary"]
    assert summary.startswith("Ce que mesure la carte : 5 équipements de santé localisés "
                              "(OpenStreetMap 2022-03-11) : ")
    assert "pharmacie 1" in summary and "médecin généraliste 1" in summary
    # streets-level views open where the streets are drawn
    assert _view(browser_run, "acces_sante_pied")["zoom"] >= 13


def test_unknown_town_is_a_message(browser_run: dict) -> None:
    unknown = browser_run["unknown"]
    assert unknown["state"] == "unknown-town" and not unknown["hidden"]
    assert unknown["message"].startswith("Aucune ville « 99999 » n'est publiée")
    assert unknown["town"] == ""  # no other town shown in its place
