"""The viewer in headless Chromium: every view renders features, no console error.

The Node script tests/browser/viewer_check.mjs (playwright-core) drives Debian's
chromium against the viewer served by geo.export.serve, and saves one screenshot per
view in tests/artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
    for view, shown in zip(views, browser_run["views"], strict=True):
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
        assert popup.startswith("Hexagone H3 (résolution 9)")
        assert "Temps médian à pied : santé" in popup
    assert re.search(r"\t\d+(,\d)? min\n", popup), popup  # French decimals, unit
    # the commune under the centre, with its APL as in the GeoPackage, in French
    apl = _view(browser_run, "apl")["popup"]
    nom = re.search(r"^Commune\t(.+)$", apl, re.M)[1]
    communes = pyogrio.read_dataframe(town_gpkg, layer="communes").set_index("nom")
    shown = re.search(r"^APL médecins généralistes\t(\d+(?:,\d{1,2})?) consultations/hab\./an$",
                      apl, re.M)
    assert shown, apl
    assert float(shown[1].replace(",", ".")) == pytest.approx(communes.loc[nom, "apl_mg"],
                                                              abs=0.006)
    legend = "\n".join(_view(browser_run, "occupation_sols")["legend"])
    assert "territoires artificialisés" in legend
    assert "Pour cette ville : donnée non disponible." in legend  # no land cover in the Ain
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
    assert other["view"] == "isochrones"  # the view is kept when the town changes
    assert other["counts"] == {"isochrones-pied": 0, "isochrones-velo": 0}
    assert "Pas de couche « isochrones » pour cette ville : donnée non disponible." in (
        "\n".join(other["legend"]))
    assert other["landcover"]["sols-h3"] > 0
    zoomed = other["landcoverZoom15"]
    assert zoomed["sols-corine"] > 0 and zoomed["sols-h3"] == 0
    assert browser_run["errors"] == []
