"""The town GeoPackage for QGIS: every published layer, styled, with its provenance.

``data/out/<insee>/<insee>.gpkg`` holds, in the town's metric CRS (EPSG:2154 in
mainland France), the layers of :data:`geo.export.layers.LAYERS` that the town run
produced. It opens styled in QGIS:

- styles: QGIS ``layer_styles`` table (the schema QGIS itself creates), one QML style
  per map view and layer, one default per layer (see :mod:`geo.export.qml`);
- provenance, in the GeoPackage metadata tables (``gpkg_metadata`` and
  ``gpkg_metadata_reference``, metadata extension of the OGC GeoPackage standard):
  a schema.org ``Dataset`` document (JSON-LD) for the whole file with sources,
  licences, vintages (COG year, OSM date), build date and software versions, and one
  per layer (``featureType``) listing its fields with French labels and units and the
  provenance its stage recorded. GDAL shows the dataset document as the metadata item
  ``GPKG_METADATA_ITEM_1`` (``ogrinfo``, QGIS layer properties). No GDAL dataset
  metadata domain is written: GDAL 3.12 then writes a ``.aux.xml`` sidecar each time it
  merely opens the file read-only.

The file is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyogrio
import pyproj

from geo._io import atomic_path
from geo.errors import InputFileError
from geo.export.fields import category_labels, field_labels
from geo.export.layers import TownLayers, layer_spec, read_town_layers
from geo.export.metadata import attribution, town_provenance
from geo.export.qml import QgisStyle, build_qgis_styles
from geo.export.views import View, load_views
from geo.settings import Settings, get_settings

__all__ = [
    "LAYER_STYLES_DDL",
    "build_gpkg",
    "dataset_document",
    "gpkg_path",
    "published_provenance",
    "read_gpkg_provenance",
    "read_layer_styles",
    "write_gpkg",
]

log = logging.getLogger(__name__)

#: The ``layer_styles`` table exactly as QGIS creates it in a GeoPackage.
LAYER_STYLES_DDL = """
CREATE TABLE IF NOT EXISTS "layer_styles" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "f_table_catalog" TEXT(256),
    "f_table_schema" TEXT(256),
    "f_table_name" TEXT(256),
    "f_geometry_column" TEXT(256),
    "styleName" TEXT(30),
    "styleQML" TEXT,
    "styleSLD" TEXT,
    "useAsDefault" BOOLEAN,
    "description" TEXT,
    "owner" TEXT(30),
    "ui" TEXT(30),
    "update_time" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)"""

# GeoPackage 1.2.1, clause F.8 (metadata extension).
_METADATA_DDL = (
    """CREATE TABLE IF NOT EXISTS gpkg_metadata (
        id INTEGER CONSTRAINT m_pk PRIMARY KEY ASC NOT NULL,
        md_scope TEXT NOT NULL DEFAULT 'dataset',
        md_standard_uri TEXT NOT NULL,
        mime_type TEXT NOT NULL DEFAULT 'text/xml',
        metadata TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS gpkg_metadata_reference (
        reference_scope TEXT NOT NULL,
        table_name TEXT,
        column_name TEXT,
        row_id_value INTEGER,
        timestamp DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        md_file_id INTEGER NOT NULL,
        md_parent_id INTEGER,
        CONSTRAINT crmr_mfi_fk FOREIGN KEY (md_file_id) REFERENCES gpkg_metadata(id),
        CONSTRAINT crmr_mpi_fk FOREIGN KEY (md_parent_id) REFERENCES gpkg_metadata(id))""",
)
_METADATA_EXTENSION = "http://www.geopackage.org/spec121/#extension_metadata"
#: md_standard_uri of the provenance documents (schema.org vocabulary, JSON-LD).
SCHEMA_ORG = "https://schema.org/Dataset"
#: md_standard_uri of QGIS's layer metadata documents.
QGIS_DTD = "http://mrcc.com/qgis.dtd"


def gpkg_path(insee: str, settings: Settings | None = None) -> Path:
    """``data/out/<insee>/<insee>.gpkg``."""
    s = settings or get_settings()
    return s.town_dir(insee) / f"{insee}.gpkg"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _dataset_document(town: TownLayers, prov: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "name": f"pvdgeo : {town.nom} ({town.insee})",
        "description": "Indicateurs territoriaux de la commune et de son bassin : accès à "
                       "pied et à vélo aux équipements, APL, équipements, occupation des "
                       "sols, en hexagones H3 et par commune.",
        "inLanguage": "fr",
        "dateCreated": prov["build_date"],
        "creator": {"@type": "SoftwareApplication", "name": "pvdgeo",
                    "softwareVersion": prov["software"]["pvdgeo"]},
        "spatialCoverage": {"@type": "Place", "name": town.nom, "identifier": town.insee},
        "creditText": prov["attribution"],
        "isBasedOn": [
            {"@type": "Dataset", "identifier": s["id"], "name": s["title"],
             "creator": {"@type": "Organization", "name": s["producer"]},
             "license": s["licence"], "version": s["vintage"], "url": s["homepage"],
             "contentUrl": s["source"], "sha256": s["sha256"], "dateDownloaded": s["fetched_at"]}
            for s in prov["sources"]
        ],
        "pvdgeo:provenance": prov,
        "pvdgeo:crs": town.crs,
    }


def _layer_document(name: str, gdf: Any, labels: dict[str, Any],
                    inputs: list[dict[str, Any]]) -> dict[str, Any]:
    spec = layer_spec(name)
    fields = [c for c in gdf.columns if c != gdf.geometry.name]
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "name": spec.title,
        "description": spec.description,
        "inLanguage": "fr",
        "variableMeasured": [
            {"@type": "PropertyValue", "name": f, "description": labels[f].label,
             **({"unitText": labels[f].unit} if labels[f].unit else {})}
            for f in fields
        ],
        "pvdgeo:layer": name,
        "pvdgeo:features": len(gdf),
        "pvdgeo:inputs": inputs,
    }


def _write_styles(con: sqlite3.Connection, styles: Sequence[QgisStyle],
                  geometry_columns: dict[str, str]) -> None:
    con.execute(LAYER_STYLES_DDL)
    now = _now()
    con.execute(
        "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, "
        "description, last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', "
        "'Styles QGIS des couches (une entrée par vue cartographique)', ?)", (now,))
    con.executemany(
        'INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, '
        'f_geometry_column, "styleName", "styleQML", "styleSLD", "useAsDefault", '
        'description, owner, ui, update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [("", "", s.layer, geometry_columns[s.layer], s.name, s.qml, "", s.default,
          s.description, "pvdgeo", None, now) for s in styles])


def _latitude(layers: Mapping[str, Any]) -> float:
    """Latitude (degrees) of the layers' centre, for zoom -> scale conversions."""
    gdf = layers["communes"] if "communes" in layers else next(iter(layers.values()))
    try:
        return float(gdf.to_crs(4326).geometry.union_all().centroid.y)
    except (ValueError, AttributeError):
        return 46.5


def qgis_layer_metadata(name: str, gdf: Any, prov: dict[str, Any]) -> str:
    """The layer's metadata in QGIS's own XML (what Layer Properties > Metadata shows):
    French title and abstract, the producers' rights and the licences of the sources,
    links to them, the CRS and the build history."""
    spec = layer_spec(name)
    root = ET.Element("qgis", version="3.22.0-Białowieża")
    for tag, text in (("identifier", name), ("parentidentifier", ""), ("language", "fr"),
                      ("type", "dataset"), ("title", spec.title),
                      ("abstract", f"{spec.description}. {prov['town']['nom']} "
                                   f"({prov['town']['insee']}), pvdgeo.")):
        ET.SubElement(root, tag).text = text
    keywords = ET.SubElement(root, "keywords", vocabulary="pvdgeo")
    for word in ("Petites villes de demain", "Action Cœur de Ville", name):
        ET.SubElement(keywords, "keyword").text = word
    links = ET.SubElement(root, "links")
    for src in prov.get("sources", []):
        if src.get("homepage"):
            ET.SubElement(links, "link", name=str(src["title"]), type="WWW:LINK",
                          url=str(src["homepage"]), description=str(src.get("vintage", "")),
                          format="", mimeType="", size="")
    ET.SubElement(root, "fees").text = "aucun"
    ET.SubElement(root, "constraints", type="Licence").text = (
        "Réutilisation libre dans le respect des licences des sources (Licence Ouverte 2.0 "
        "d'Etalab ; ODbL 1.0 pour les données OpenStreetMap : partage à l'identique).")
    for credit in str(prov.get("attribution", "")).split(" · "):
        if credit:
            ET.SubElement(root, "rights").text = credit
    for licence in dict.fromkeys(str(src.get("licence", "")) for src in prov.get("sources", [])):
        if licence:
            ET.SubElement(root, "license").text = licence
    ET.SubElement(root, "encoding").text = "UTF-8"
    crs = ET.SubElement(ET.SubElement(root, "crs"), "spatialrefsys")
    ET.SubElement(crs, "authid").text = str(gdf.crs.to_string()) if gdf.crs else ""
    ET.SubElement(root, "history").text = (
        f"Construit le {prov['build_date']} par pvdgeo {prov['software']['pvdgeo']} "
        f"(GDAL {prov['software'].get('gdal', '')}).")
    ET.indent(root)
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            + ET.tostring(root, encoding="unicode"))


#: Layer-tree order of the QGIS project (top first): points and lines over areas.
_PROJECT_ORDER = ("commune_labels", "facilities", "isochrones", "network_edges",
                  "street_limit", "h3_r9", "h3_r8", "landcover", "waterways", "water",
                  "communes")
_QGIS_PROJECTS_DDL = ("CREATE TABLE IF NOT EXISTS qgis_projects(name TEXT PRIMARY KEY, "
                      "metadata BLOB, content BLOB)")
#: Name of the QGIS project stored in the GeoPackage.
PROJECT_NAME = "pvdgeo"


def qgis_project(layers: Mapping[str, Any], styles: Sequence[QgisStyle],
                 metadata: Mapping[str, str], *, gpkg_name: str, title: str,
                 crs: str) -> str:
    """A QGIS project (``.qgs`` XML) of the GeoPackage's layers: each named by its French
    title, drawn with its default style (scale ranges included), with its metadata,
    points and lines above areas. Sources are relative (``./<gpkg_name>|layername=...``),
    so the project opens wherever the GeoPackage is."""
    root = ET.Element("qgis", version="3.22.0-Białowieża", projectname=title)
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "projectCrs").append(_spatialrefsys(crs))
    tree = ET.SubElement(root, "layer-tree-group")
    project_layers = ET.SubElement(root, "projectlayers")
    defaults = {st.layer: st for st in styles if st.default}
    for name in [n for n in _PROJECT_ORDER if n in layers]:
        spec, gdf = layer_spec(name), layers[name]
        lid = f"{name}_pvdgeo"
        source = f"./{gpkg_name}|layername={name}"
        ET.SubElement(tree, "layer-tree-layer", id=lid, name=spec.title, source=source,
                      providerKey="ogr", checked="Qt::Checked",
                      expanded="0")
        types = gdf.geometry.geom_type.dropna().unique()
        kind = str(types[0]) if len(types) else "Polygon"
        geometry = "Point" if "Point" in kind else "Line" if "Line" in kind else "Polygon"
        layer = ET.SubElement(project_layers, "maplayer", type="vector", geometry=geometry)
        ET.SubElement(layer, "id").text = lid
        ET.SubElement(layer, "datasource").text = source
        ET.SubElement(layer, "layername").text = spec.title
        ET.SubElement(layer, "srs").append(_spatialrefsys(crs))
        ET.SubElement(layer, "provider", encoding="UTF-8").text = "ogr"
        if name in metadata:
            doc = ET.fromstring(metadata[name].split("\n", 1)[1])
            doc.tag = "resourceMetadata"
            layer.append(doc)
        style = defaults.get(name)
        if style is not None:
            qml = ET.fromstring(style.qml.split("\n", 1)[1])
            for attr in ("hasScaleBasedVisibilityFlag", "minScale", "maxScale",
                         "labelsEnabled"):
                value = qml.get(attr)
                if value is not None:
                    layer.set(attr, value)
            for child in qml:
                if child.tag != "layerGeometryType":
                    layer.append(child)
    props = ET.SubElement(root, "properties")
    ET.SubElement(ET.SubElement(props, "Paths"), "Absolute", type="bool").text = "false"
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(
        root, encoding="unicode")


def _spatialrefsys(crs: str) -> ET.Element:
    """A QGIS ``spatialrefsys`` element (WKT and authority id)."""
    ref = pyproj.CRS.from_user_input(crs)
    el = ET.Element("spatialrefsys")
    auth = ref.to_authority()
    for tag, text in (("wkt", ref.to_wkt()), ("srid", auth[1] if auth else ""),
                      ("authid", f"{auth[0]}:{auth[1]}" if auth else crs),
                      ("description", ref.name)):
        ET.SubElement(el, tag).text = text
    return el


def _write_project(con: sqlite3.Connection, project_xml: str) -> None:
    """Store the project as QGIS does (``qgis_projects``: the zipped ``.qgs``, hex)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{PROJECT_NAME}.qgs", project_xml)
    con.execute(_QGIS_PROJECTS_DDL)
    meta = json.dumps({"last_modified_time": _now()[:19], "last_modified_user": "pvdgeo"})
    con.execute("INSERT OR REPLACE INTO qgis_projects (name, metadata, content) VALUES "
                "(?, ?, ?)", (PROJECT_NAME, meta, buf.getvalue().hex()))


def _write_metadata(con: sqlite3.Connection, dataset_doc: dict[str, Any],
                    layer_docs: dict[str, dict[str, Any]],
                    qgis_docs: Mapping[str, str] | None = None) -> None:
    for ddl in _METADATA_DDL:
        con.execute(ddl)
    for table in ("gpkg_metadata", "gpkg_metadata_reference"):
        exists = con.execute("SELECT 1 FROM gpkg_extensions WHERE table_name = ? AND "
                             "extension_name = 'gpkg_metadata'", (table,)).fetchone()
        if not exists:
            con.execute("INSERT INTO gpkg_extensions (table_name, column_name, "
                        "extension_name, definition, scope) VALUES (?, NULL, "
                        "'gpkg_metadata', ?, 'read-write')", (table, _METADATA_EXTENSION))
    now = _now()

    def insert(scope: str, doc: dict[str, Any]) -> int:
        cur = con.execute("INSERT INTO gpkg_metadata (md_scope, md_standard_uri, mime_type, "
                          "metadata) VALUES (?, ?, 'application/ld+json', ?)",
                          (scope, SCHEMA_ORG, json.dumps(doc, ensure_ascii=False, indent=1)))
        return int(cur.lastrowid or 0)

    parent = insert("dataset", dataset_doc)
    con.execute("INSERT INTO gpkg_metadata_reference (reference_scope, table_name, "
                "timestamp, md_file_id) VALUES ('geopackage', NULL, ?, ?)", (now, parent))
    for table, doc in layer_docs.items():
        md_id = insert("featureType", doc)
        con.execute("INSERT INTO gpkg_metadata_reference (reference_scope, table_name, "
                    "timestamp, md_file_id, md_parent_id) VALUES ('table', ?, ?, ?, ?)",
                    (table, now, md_id, parent))
    # QGIS reads a layer's metadata (Layer Properties > Metadata: rights, licences...)
    # from a document in its own XML, dataset scope, referenced by the table
    for table, xml in (qgis_docs or {}).items():
        cur = con.execute("INSERT INTO gpkg_metadata (md_scope, md_standard_uri, mime_type, "
                          "metadata) VALUES ('dataset', ?, 'text/xml', ?)", (QGIS_DTD, xml))
        con.execute("INSERT INTO gpkg_metadata_reference (reference_scope, table_name, "
                    "timestamp, md_file_id) VALUES ('table', ?, ?, ?)",
                    (table, now, int(cur.lastrowid or 0)))


def has_landcover(layers: Mapping[str, Any]) -> bool:
    """True when the published layers show land cover (CORINE polygons or shares)."""
    if "landcover" in layers and len(layers["landcover"]):
        return True
    for gdf in layers.values():
        cols = [c for c in gdf.columns if str(c).startswith("clc_") and c != "clc_nodata_share"]
        if any(gdf[c].notna().any() for c in cols):
            return True
    return False


def published_provenance(town: TownLayers, provenance: dict[str, Any]) -> dict[str, Any]:
    """``provenance`` with the attribution of what the town's layers show (Copernicus
    only with land cover)."""
    return {**provenance, "attribution": attribution(
        provenance.get("sources", []), landcover=has_landcover(town.layers))}


def dataset_document(town: TownLayers, provenance: dict[str, Any]) -> dict[str, Any]:
    """The dataset-level document :func:`write_gpkg` stores (and
    :func:`read_gpkg_provenance` reads back): what the tiles' metadata is made of."""
    return _dataset_document(town, published_provenance(town, provenance))


def write_gpkg(town: TownLayers, path: str | Path, *, provenance: dict[str, Any],
               views: Sequence[View] | None = None,
               settings: Settings | None = None) -> Path:
    """Write the town's layers, QGIS styles and provenance to one GeoPackage.

    Parameters
    ----------
    town
        Prepared layers (:func:`geo.export.layers.read_town_layers`), in their metric CRS.
    path
        Output ``.gpkg``; written atomically (temporary file, then rename).
    provenance
        :func:`geo.export.metadata.town_provenance` of the town.
    views
        Map views whose legends become QGIS styles (default: ``tiles/styles``).
    """
    s = settings or get_settings()
    path = Path(path)
    views = list(views) if views is not None else load_views()
    layers = {name: gdf for name, gdf in town.layers.items() if len(gdf)}
    for name in town.layers.keys() - layers.keys():
        log.warning("%s: layer %s is empty; left out of the GeoPackage", town.insee, name)
    if not layers:
        raise InputFileError(f"town {town.insee}: every layer is empty; nothing to publish")
    provenance = published_provenance(town, provenance)
    labels = field_labels({c for g in layers.values() for c in g.columns}, s)
    latitude = _latitude(layers)
    styles = build_qgis_styles(views, layers, labels=labels,
                               category_labels=category_labels(s), latitude=latitude)
    with atomic_path(path) as tmp:
        for i, (name, gdf) in enumerate(layers.items()):
            spec = layer_spec(name)
            pyogrio.write_dataframe(
                gdf, tmp, layer=name, driver="GPKG",
                layer_options={"IDENTIFIER": spec.title, "DESCRIPTION": spec.description},
                # GeoPackage 1.2: read by every QGIS 3 (GDAL >= 3.8 writes 1.4 by default,
                # which QGIS 3.22 LTR on GDAL 3.6 only "partially supports")
                dataset_options={"VERSION": "1.2"} if i == 0 else None,
                layer_metadata={"TITLE": spec.title, "DESCRIPTION": spec.description},
            )
            log.debug("%s: wrote layer %s (%d features)", town.insee, name, len(gdf))
        with closing(sqlite3.connect(tmp)) as con, con:
            geometry_columns = dict(con.execute(
                "SELECT table_name, column_name FROM gpkg_geometry_columns").fetchall())
            _write_styles(con, styles, geometry_columns)
            qgis_docs = {n: qgis_layer_metadata(n, g, provenance) for n, g in layers.items()}
            _write_metadata(con, _dataset_document(town, provenance),
                            {n: _layer_document(n, g, labels, town.inputs.get(n, []))
                             for n, g in layers.items()}, qgis_docs)
            _write_project(con, qgis_project(
                layers, styles, qgis_docs, gpkg_name=path.name, crs=town.crs,
                title=f"pvdgeo : {town.nom} ({town.insee})"))
    log.info("%s: wrote %s (%d layers: %s; %d QGIS styles)", town.insee, path, len(layers),
             ", ".join(layers), len(styles))
    return path


def build_gpkg(insee: str, *, settings: Settings | None = None, town_dir: Path | None = None,
               out: Path | None = None) -> Path:
    """Read a town run's layers and write ``<insee>.gpkg`` in its folder (or ``out``)."""
    s = settings or get_settings()
    town = read_town_layers(insee, settings=s, town_dir=town_dir)
    prov = town_provenance(insee, settings=s, nom=town.nom)
    target = out or (Path(town_dir) / f"{insee}.gpkg" if town_dir else gpkg_path(insee, s))
    return write_gpkg(town, target, provenance=prov, settings=s)


def read_gpkg_provenance(path: str | Path) -> dict[str, Any]:
    """The dataset-level provenance document of a GeoPackage written by :func:`write_gpkg`."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: GeoPackage not found")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            row = con.execute(
                "SELECT m.metadata FROM gpkg_metadata m JOIN gpkg_metadata_reference r "
                "ON r.md_file_id = m.id WHERE r.reference_scope = 'geopackage' AND "
                "m.md_standard_uri = ? ORDER BY m.id DESC LIMIT 1", (SCHEMA_ORG,)).fetchone()
    except sqlite3.DatabaseError as exc:
        raise InputFileError(f"{path}: not a readable GeoPackage ({exc})") from None
    if row is None:
        raise InputFileError(f"{path}: no pvdgeo provenance in gpkg_metadata")
    return dict(json.loads(row[0]))


def read_layer_styles(path: str | Path) -> list[dict[str, Any]]:
    """Rows of the ``layer_styles`` table (layer, name, default, QML...)."""
    with closing(sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM layer_styles ORDER BY id")]
