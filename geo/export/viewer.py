"""The static map viewer: ``data/out/viewer/``, served with the towns by ``make serve``.

:func:`build_viewer` copies the viewer sources (``tiles/viewer``), the MapLibre styles
(``tiles/styles``) and the front-end libraries installed by npm (``maplibre-gl``,
``pmtiles`` and its ``fflate`` dependency, with their licences; nothing is loaded from a
CDN) into ``data/out/viewer/``, and writes:

- ``views.json``: the views in order (id, French title, description, style file);
- ``fields.json``: French labels and units of every field of the built towns' tiles,
  and labels of coded values (modes, land-cover classes...);
- ``towns.json``: every built town (a folder of ``data/out`` holding
  ``<insee>.pmtiles``) with its name, bounds, attribution, vintages and links to its
  GeoPackage and portrait. :func:`write_town_index` refreshes it alone (after each
  town's publication; parallel towns serialise on a lock file).

The viewer reaches the towns' files as ``../<insee>/...``, so it must be served from
``data/out`` (:mod:`geo.export.serve`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pmtiles.reader import MmapSource, Reader

from geo._io import atomic_path, read_parquet_metadata, write_json_atomic
from geo.errors import InputFileError
from geo.export.captions import SOURCE_LABELS, view_status
from geo.export.fields import CLC_LEVEL1_LABELS, category_labels, field_labels
from geo.export.layers import read_town_card
from geo.export.metadata import attribution_html
from geo.export.views import STYLES_DIR, View, load_views
from geo.facilities import COUNTS_FILE
from geo.settings import PROJECT_ROOT, Settings, get_settings
from geo.vocab import MODE_LABELS_FR

__all__ = ["VIEWER_DIRNAME", "build_viewer", "copy_vendor_files", "town_index", "viewer_dir",
           "write_town_index"]

log = logging.getLogger(__name__)

VIEWER_DIRNAME = "viewer"
VIEWER_SRC = PROJECT_ROOT / "tiles" / "viewer"
NODE_MODULES = PROJECT_ROOT / "node_modules"

#: Files copied from npm packages: (package, file in the package, destination).
_VENDOR = (
    ("maplibre-gl", "dist/maplibre-gl.mjs", "maplibre-gl/maplibre-gl.mjs"),
    ("maplibre-gl", "dist/maplibre-gl-worker.mjs", "maplibre-gl/maplibre-gl-worker.mjs"),
    ("maplibre-gl", "dist/maplibre-gl.css", "maplibre-gl/maplibre-gl.css"),
    ("maplibre-gl", "LICENSE.txt", "maplibre-gl/LICENSE.txt"),
    ("pmtiles", "dist/esm/index.js", "pmtiles/index.js"),
    ("pmtiles", "package.json", "pmtiles/package.json"),  # BSD-3-Clause; no LICENSE file
    ("fflate", "esm/browser.js", "fflate/browser.js"),
    ("fflate", "LICENSE", "fflate/LICENSE"),
    # map label fonts (font-faces of tiles/basemap/basemap.json), SIL OFL 1.1
    *(("@fontsource/noto-sans", f"files/noto-sans-{subset}-{face}.woff2",
       f"fonts/noto-sans-{subset}-{face}.woff2")
      for subset in ("latin", "latin-ext") for face in ("400-normal", "700-normal",
                                                         "400-italic")),
    ("@fontsource/noto-sans", "LICENSE", "fonts/LICENSE-noto-sans.txt"),
)

#: Labels of coded values shown in popups.
_VALUE_LABELS = {
    "mode": MODE_LABELS_FR,
    "clc_level1": CLC_LEVEL1_LABELS,
    "clc_dominant": CLC_LEVEL1_LABELS,
    "highway": {
        "motorway": "autoroute", "trunk": "voie express", "primary": "route principale",
        "secondary": "route secondaire", "tertiary": "route tertiaire",
        "unclassified": "route de desserte", "residential": "rue résidentielle",
        "living_street": "zone de rencontre", "service": "voie de service",
        "pedestrian": "zone piétonne", "footway": "chemin piéton", "path": "sentier",
        "cycleway": "piste cyclable", "track": "chemin agricole ou forestier",
        "steps": "escalier", "bridleway": "chemin équestre",
    },
    "source": SOURCE_LABELS,
}


def viewer_dir(settings: Settings | None = None) -> Path:
    """``data/out/viewer``."""
    s = settings or get_settings()
    return s.out_dir / VIEWER_DIRNAME


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _read_pmtiles(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with path.open("rb") as fh:
        reader = Reader(MmapSource(fh))
        return dict(reader.header()), dict(reader.metadata())


def _national_counts(s: Settings) -> tuple[pd.DataFrame | None, str | None]:
    """The national facility counts per commune (indexed by insee) and the name of
    their BPE source, when ``data/interim/facilities_communes.parquet`` exists."""
    path = s.interim_dir / COUNTS_FILE
    if not path.is_file():
        return None, None
    try:
        table = pd.read_parquet(path).set_index("insee")
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s unreadable, access views without the BPE count: %s", path, exc)
        return None, None
    bpe = str(read_parquet_metadata(path).get("vintages", {}).get("bpe", ""))
    vintage = bpe.split(": ", 1)[-1].split(" (")[0] if bpe else ""
    return table, f"la Base permanente des équipements (INSEE{', ' + vintage if vintage else ''})"


def _view_statuses(folder: Path, insee: str, meta: dict[str, Any], views: Sequence[View],
                   national: pd.DataFrame | None, national_source: str | None,
                   labels: dict[str, str]) -> dict[str, Any]:
    layer_fields = {vl["id"]: set(vl.get("fields", {})) for vl in meta.get("vector_layers", [])}
    fac_path = folder / "facilities.parquet"
    fac = None
    if fac_path.is_file():
        try:
            fac = pd.read_parquet(fac_path, columns=["category", "subcategory", "source"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s unreadable; access views say no facility: %s", fac_path, exc)
    counts = None
    if national is not None and insee in national.index:
        counts = {k: float(v) for k, v in national.loc[insee].items()
                  if str(k).startswith("n_") and pd.notna(v) and not isinstance(v, str)}
    return {v.id: view_status(v, layer_fields, facilities=fac, labels=labels,
                              osm_date=meta.get("pvdgeo", {}).get("osm_date"),
                              national_counts=counts, national_source=national_source)
            .as_json() for v in views}


def _town_entry(folder: Path, out_dir: Path, *, views: Sequence[View] = (),
                national: pd.DataFrame | None = None, national_source: str | None = None,
                labels: dict[str, str] | None = None) -> dict[str, Any] | None:
    insee = folder.name
    pmtiles = folder / f"{insee}.pmtiles"
    if not pmtiles.is_file():
        return None
    try:
        header, meta = _read_pmtiles(pmtiles)
    except Exception as exc:  # the pmtiles reader raises bare Exceptions
        log.warning("%s: unreadable PMTiles archive left out of the index (%s)", pmtiles, exc)
        return None
    info = meta.get("pvdgeo", {})
    bounds = [header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7,
              header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7]
    card: dict[str, Any] = {}
    with contextlib.suppress(InputFileError):
        card = read_town_card(folder)
    gpkg = folder / f"{insee}.gpkg"
    portrait = folder / "portrait.html"

    def rel(p: Path) -> str:
        return "../" + p.relative_to(out_dir).as_posix()

    return {
        "insee": insee,
        "nom": card.get("nom") or info.get("nom") or insee,
        "pmtiles": rel(pmtiles),
        "pmtiles_bytes": pmtiles.stat().st_size,
        "gpkg": rel(gpkg) if gpkg.is_file() else None,
        "gpkg_bytes": gpkg.stat().st_size if gpkg.is_file() else None,
        "portrait": rel(portrait) if portrait.is_file() else None,
        "bounds": [round(b, 6) for b in bounds],
        "town_bounds": info.get("town_bounds"),
        "layers": [vl["id"] for vl in meta.get("vector_layers", [])],
        "attribution": meta.get("attribution", ""),
        "attribution_html": attribution_html(str(meta.get("attribution", ""))),
        "views": _view_statuses(folder, insee, meta, views, national, national_source,
                                labels or {}),
        "build_date": info.get("build_date"),
        "osm_date": info.get("osm_date"),
        "cog_year": info.get("cog_year"),
        "fields": sorted({f for vl in meta.get("vector_layers", []) for f in vl.get("fields", {})}),
    }


def town_index(settings: Settings | None = None, *,
               views: Sequence[View] | None = None) -> list[dict[str, Any]]:
    """Every built town of ``data/out`` (folders holding ``<insee>.pmtiles``), by name,
    with the status of each of ``views`` (default ``tiles/styles``) for it
    (:func:`geo.export.captions.view_status`)."""
    s = settings or get_settings()
    if not s.out_dir.is_dir():
        return []
    views = load_views() if views is None else views
    national, national_source = _national_counts(s)
    labels = category_labels(s)
    entries = [_town_entry(p, s.out_dir, views=views, national=national,
                           national_source=national_source, labels=labels)
               for p in sorted(s.out_dir.iterdir()) if p.is_dir()]
    return sorted((e for e in entries if e), key=lambda e: (e["nom"], e["insee"]))


@contextlib.contextmanager
def _index_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".index.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def write_town_index(settings: Settings | None = None, *,
                     views: Sequence[View] | None = None) -> Path:
    """Write ``towns.json`` and ``fields.json`` of the viewer from the built towns; the
    field labels cover the towns' tile fields and those ``views`` (default
    ``tiles/styles``) show."""
    s = settings or get_settings()
    folder = viewer_dir(s)
    views = load_views() if views is None else views
    with _index_lock(folder):
        towns = town_index(s, views=views)
        names = {f for t in towns for f in t.pop("fields")}
        for view in views:
            names |= {f for p in view.popup.values() for f in p.get("fields", [])}
            names |= {e.field for e in view.legend if e.field}
        labels = field_labels(names, s)
        values = {**_VALUE_LABELS, "category": category_labels(s)}
        write_json_atomic(folder / "fields.json", {
            "fields": {n: {"label": lab.label, "unit": lab.unit} for n, lab in labels.items()},
            "values": values,
        })
        path = write_json_atomic(folder / "towns.json", {
            "generated": datetime.now(UTC).isoformat(timespec="seconds"), "towns": towns})
    log.info("viewer index: %d town(s) in %s", len(towns), path)
    return path


def copy_vendor_files(dest: Path, *, node_modules: Path | None = None) -> None:
    """Copy the front-end files installed by npm (MapLibre, PMTiles, fflate, the label
    fonts, with their licences) into ``dest`` (the viewer's and the site's ``vendor``).

    Raises
    ------
    InputFileError
        When the npm packages are missing (run ``make install-web``).
    """
    modules = Path(node_modules) if node_modules is not None else NODE_MODULES
    missing = [f"{pkg}/{name}" for pkg, name, _ in _VENDOR if not (modules / pkg / name).is_file()]
    if missing:
        raise InputFileError(f"{modules}: missing {', '.join(missing)}; install the web "
                             "dependencies with `make install-web` (npm ci)")
    for pkg, name, target in _VENDOR:
        _copy(modules / pkg / name, dest / target)


def build_viewer(settings: Settings | None = None, *, styles_dir: Path | None = None,
                 node_modules: Path | None = None) -> Path:
    """Build the static viewer into ``data/out/viewer`` and index the built towns.

    Returns
    -------
    Path
        The viewer's ``index.html``.

    Raises
    ------
    InputFileError
        When the npm packages are missing (run ``make install-web``).
    """
    s = settings or get_settings()
    folder = viewer_dir(s)
    copy_vendor_files(folder / "vendor", node_modules=node_modules)
    views = load_views(styles_dir or STYLES_DIR)
    for view in views:  # the styles composed with the basemap
        write_json_atomic(folder / "styles" / f"{view.id}.json", view.style)
    for src in sorted(VIEWER_SRC.iterdir()):
        if src.is_file():
            _copy(src, folder / src.name)
    write_json_atomic(folder / "views.json", {"views": [
        {"id": v.id, "title": v.title, "description": v.description, "order": v.order,
         "style": f"styles/{v.id}.json", "framing": v.framing, "min_zoom": v.min_zoom}
        for v in views]})
    write_town_index(s, views=views)
    index = folder / "index.html"
    log.info("viewer: built %s (%d views)", index, len(views))
    return index
