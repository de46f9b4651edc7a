"""Provenance of published outputs: sources, licences, vintages, build, software.

:func:`town_provenance` gathers what a town's outputs are made of, from the dataset
catalogue (producer, licence, vintage) and the lock file (what was actually fetched,
from where, with which sha256): the national datasets and the local ones covering the
town. It also records the COG year, the OSM extract date, the build date and the
software versions. The GeoPackage stores it in its metadata tables; the PMTiles in its
metadata JSON; :func:`attribution` gives the one-line credit shown on maps.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import Any

from geo import __version__
from geo.settings import Settings, get_settings
from geo.sources import datasets_for_town, load_catalogue, provenance

__all__ = ["DEFAULT_ATTRIBUTION", "attribution", "attribution_html", "software_versions",
           "town_provenance"]

log = logging.getLogger(__name__)

#: Credits of every producer the pipeline can use (when the lock file is unknown).
DEFAULT_ATTRIBUTION = (
    "© contributeurs OpenStreetMap (ODbL) · © Union européenne, Copernicus Land "
    "Monitoring Service · DREES · INSEE · ANCT · IGN · ministère de la Culture · CNC · "
    "Géorisques"
)

#: Producer keyword (lower case) -> credit, in display order.
_CREDITS = (
    ("openstreetmap", "© contributeurs OpenStreetMap (ODbL)"),
    ("copernicus", "© Union européenne, Copernicus Land Monitoring Service"),
    ("drees", "DREES"),
    ("insee", "INSEE"),
    ("anct", "ANCT"),
    ("ign", "IGN"),
    ("culture", "ministère de la Culture"),
    ("cnc", "CNC"),
    ("géorisques", "Géorisques"),
    ("georisques", "Géorisques"),
    ("odré", "ODRÉ"),
    ("dgcl", "DGCL"),
    ("inrae", "INRAE"),
    ("nasa", "NASA SRTM"),
)


def software_versions() -> dict[str, str]:
    """Versions of pvdgeo and of the libraries that shape the outputs."""
    import geopandas
    import pyogrio
    import shapely

    return {
        "pvdgeo": __version__,
        "gdal": pyogrio.__gdal_version_string__,
        "pyogrio": pyogrio.__version__,
        "geopandas": geopandas.__version__,
        "shapely": shapely.__version__,
    }


def attribution(sources: list[dict[str, Any]], *, landcover: bool = True) -> str:
    """One-line credit for the producers of ``sources`` (default: every producer).

    ``landcover=False`` (a town published without land cover) leaves the Copernicus
    credit out: a map credits only what it shows.
    """
    producers = " | ".join(str(s.get("producer", "")) for s in sources
                           if landcover or not str(s.get("kind", "")).startswith("landcover"))
    credits = [c for key, c in _CREDITS if key in producers.lower()]
    if not landcover:
        credits = [c for c in credits if "Copernicus" not in c]
    credits = list(dict.fromkeys(credits))
    if credits:
        return " · ".join(credits)
    if landcover:
        return DEFAULT_ATTRIBUTION
    return " · ".join(c for c in DEFAULT_ATTRIBUTION.split(" · ") if "Copernicus" not in c)


#: Credits that link to their producer's terms (shown on maps as HTML).
_CREDIT_LINKS = {
    "© contributeurs OpenStreetMap": "https://www.openstreetmap.org/copyright",
    "© Union européenne, Copernicus Land Monitoring Service":
        "https://land.copernicus.eu/en/data-policy",
}


def attribution_html(text: str) -> str:
    """The credit line as HTML for map attributions: escaped, with the OpenStreetMap
    credit linking to its copyright page (as the ODbL asks) and Copernicus to its data
    policy."""
    out = html.escape(text)
    for credit, url in _CREDIT_LINKS.items():
        out = out.replace(html.escape(credit), f'<a href="{url}">{html.escape(credit)}</a>')
    return out


def town_provenance(insee: str, *, settings: Settings | None = None,
                    nom: str | None = None) -> dict[str, Any]:
    """What a town's published outputs are made of.

    Returns
    -------
    dict
        ``town`` (insee, nom), ``build_date`` (UTC, ISO 8601), ``software``,
        ``cog_year``, ``population_year``, ``osm_date`` (vintages of the OSM
        extracts used, or ``None``), ``landcover`` (CORINE vintages or ``None``),
        ``sources`` (one dict per fetched dataset: id, title, producer, licence,
        vintage, homepage, source, sha256, fetched_at) and ``attribution``.
    """
    s = settings or get_settings()
    catalogue = load_catalogue(s)
    lock = provenance(s)
    relevant = [d for d in catalogue.values() if d.scope == "national"]
    relevant += datasets_for_town(insee, settings=s)
    sources = []
    for ds in relevant:
        entry = lock.get(ds.id)
        if entry is None:
            continue
        sources.append({
            "id": ds.id, "title": ds.title, "producer": ds.producer, "licence": ds.licence,
            "vintage": ds.vintage, "kind": ds.kind, "homepage": ds.homepage,
            "source": entry.get("source", ""), "sha256": entry.get("sha256", ""),
            "fetched_at": entry.get("fetched_at", ""),
        })
    if not sources:
        log.warning("%s: no fetched dataset recorded in %s; provenance lists no source",
                    insee, s.lock_file)
    osm = sorted({x["vintage"] for x in sources if x["kind"].startswith(("osm", "roads"))})
    clc = sorted({x["vintage"] for x in sources if x["kind"].startswith("landcover")})
    return {
        "town": {"insee": insee, "nom": nom or insee},
        "build_date": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": software_versions(),
        "cog_year": s.cog_year,
        "population_year": s.population_year,
        "osm_date": "; ".join(osm) or None,
        "landcover": "; ".join(clc) or None,
        "sources": sources,
        "attribution": attribution(sources),
    }
