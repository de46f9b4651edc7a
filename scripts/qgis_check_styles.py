"""Open a town GeoPackage in QGIS (headless) and apply every style of its layer_styles.

Run with a Python that has the QGIS bindings (Debian: ``apt-get install python3-qgis``,
then ``/usr/bin/python3``), not the project venv:

    /usr/bin/python3 scripts/qgis_check_styles.py data/out/01306/01306.gpkg [--png DIR]

Also opens the QGIS project stored in the GeoPackage (layers named by their French titles,
default styles, metadata). For each layer (named by its title, the GeoPackage
``identifier``): whether QGIS loads it
with its default style from the GeoPackage, its metadata (rights and licences, which QGIS
shows in Layer Properties), then each of its styles: whether QGIS applies it, the
renderer, the legend labels, its scale range and how many features it leaves undrawn (a
style without a filter must draw every feature, those without a value in the "donnée non
disponible" class). With ``--png``, one rendered image per (layer, style). Exit status 1
if a style fails, leaves features undrawn or a layer has no licence; 0 otherwise.

Under ``xvfb-run`` or with ``QT_QPA_PLATFORM=offscreen``. The process ends with
``os._exit`` after QGIS is shut down and the output flushed: tearing down the Python
bindings after ``exitQgis`` crashes some QGIS builds (exit 139), which would hide the
checks' status.
This is a maintainer's check (QGIS is not a project dependency, nor installed in CI);
the test suite checks the table schema and the QML content.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gpkg", type=Path)
    parser.add_argument("--png", type=Path, help="folder for rendered images")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from qgis.core import (
            QgsApplication,
            QgsMapRendererParallelJob,
            QgsMapSettings,
            QgsProject,
            QgsRenderContext,
            QgsVectorLayer,
        )
        from qgis.PyQt.QtCore import QSize
        from qgis.PyQt.QtGui import QColor
        from qgis.PyQt.QtXml import QDomDocument
    except ImportError:
        print("no QGIS bindings in this Python: use /usr/bin/python3 with python3-qgis",
              file=sys.stderr)
        return 2
    app = QgsApplication([], False)
    app.initQgis()
    failures = 0
    with sqlite3.connect(args.gpkg) as con:
        names = con.execute("SELECT g.table_name, coalesce(c.identifier, g.table_name) FROM "
                            "gpkg_geometry_columns g LEFT JOIN gpkg_contents c ON "
                            "c.table_name = g.table_name").fetchall()
    for name, title in names:
        layer = QgsVectorLayer(f"{args.gpkg}|layername={name}", title, "ogr")
        md = layer.metadata()
        print(f"{title} ({name}): valid={layer.isValid()} features={layer.featureCount()} "
              f"crs={layer.crs().authid()} default style renderer={layer.renderer().type()} "
              f"licences={md.licenses()} rights={len(md.rights())}")
        if not md.licenses() or not md.rights():
            print("  BAD no licence or rights in the layer metadata")
            failures += 1
        count, ids, styles, _descriptions, _error = layer.listStylesInDatabase()
        for style_id, style_name in list(zip(ids, styles, strict=True))[:count]:
            qml, _ = layer.getStyleFromDatabase(style_id)
            doc = QDomDocument()
            doc.setContent(qml)
            ok, message = layer.importNamedStyle(doc)
            undrawn = _undrawn(layer, QgsRenderContext) if "filter=" not in qml else 0
            failures += (not ok) + (undrawn > 0)
            labels = [item.label() for item in layer.renderer().legendSymbolItems()]
            scales = (f" scales 1:{layer.maximumScale():.0f}-1:{layer.minimumScale():.0f}"
                      if layer.hasScaleBasedVisibility() else "")
            print(f"  {'ok ' if ok and not undrawn else 'BAD'} {style_name!r}: "
                  f"{layer.renderer().type()} {labels}{scales}"
                  f"{f' {undrawn} feature(s) not drawn' if undrawn else ''} {message or ''}")
            if args.png and ok:
                args.png.mkdir(parents=True, exist_ok=True)
                settings = QgsMapSettings()
                settings.setLayers([layer])
                settings.setDestinationCrs(layer.crs())
                settings.setExtent(layer.extent())
                settings.setOutputSize(QSize(600, 480))
                settings.setBackgroundColor(QColor(255, 255, 255))
                job = QgsMapRendererParallelJob(settings)
                job.start()
                job.waitForFinished()
                job.renderedImage().save(str(args.png / f"{name}_{style_id}.png"))
        del layer
    failures += _check_project(args, QgsProject, QgsMapSettings, QgsMapRendererParallelJob,
                               QSize, QColor)
    print(f"{'FAILED' if failures else 'OK'}: {failures} problem(s)")
    app.exitQgis()
    return 1 if failures else 0


def _check_project(args: argparse.Namespace, project_type: type, settings_type: type,
                   job_type: type, size_type: type, colour_type: type) -> int:
    """Open the QGIS project stored in the GeoPackage (``pvdgeo``): every layer valid and
    named by its title; with ``--png``, render it (``project.png``)."""
    project = project_type.instance()
    if not project.read(f"geopackage:{args.gpkg}?projectName=pvdgeo"):
        print(f"project: BAD cannot read the project stored in {args.gpkg}: {project.error()}")
        return 1
    layers = [node.layer() for node in project.layerTreeRoot().findLayers()]
    bad = [node.name() for node in project.layerTreeRoot().findLayers()
           if node.layer() is None or not node.layer().isValid()]
    print(f"project {project.title()!r}: {len(layers)} layers "
          f"{[node.name() for node in project.layerTreeRoot().findLayers()]}"
          f"{f' BAD invalid: {bad}' if bad else ''}")
    if args.png and not bad:
        settings = settings_type()
        settings.setLayers([lyr for lyr in layers if lyr.name() != "Communes"] +
                           [lyr for lyr in layers if lyr.name() == "Communes"])
        settings.setDestinationCrs(layers[0].crs())
        town = next(lyr for lyr in layers if lyr.name() == "Communes")
        settings.setExtent(town.extent())
        settings.setOutputSize(size_type(1000, 800))
        settings.setBackgroundColor(colour_type(242, 239, 233))
        job = job_type(settings)
        job.start()
        job.waitForFinished()
        job.renderedImage().save(str(args.png / "project.png"))
    project.clear()
    return 1 if bad else 0


def _undrawn(layer: object, context_type: type) -> int:
    """Features the layer's renderer gives no symbol (drawn by no rule or class)."""
    renderer = layer.renderer().clone()  # type: ignore[attr-defined]
    context = context_type()
    renderer.startRender(context, layer.fields())  # type: ignore[attr-defined]
    try:
        return sum(1 for f in layer.getFeatures()  # type: ignore[attr-defined]
                   if not renderer.willRenderFeature(f, context))
    finally:
        renderer.stopRender(context)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
