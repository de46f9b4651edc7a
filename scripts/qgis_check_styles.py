"""Open a town GeoPackage in QGIS (headless) and apply every style of its layer_styles.

Run with a Python that has the QGIS bindings (Debian: ``apt-get install python3-qgis``,
then ``/usr/bin/python3``), not the project venv:

    /usr/bin/python3 scripts/qgis_check_styles.py data/out/01306/01306.gpkg [--png DIR]

For each layer: whether QGIS loads it with its default style from the GeoPackage, then
each of its styles: whether QGIS applies it, the renderer and the legend labels. With
``--png``, one rendered image per (layer, style). Exit status 1 if a style fails.
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
        names = [r[0] for r in con.execute("SELECT table_name FROM gpkg_geometry_columns")]
    for name in names:
        layer = QgsVectorLayer(f"{args.gpkg}|layername={name}", name, "ogr")
        print(f"{name}: valid={layer.isValid()} features={layer.featureCount()} "
              f"crs={layer.crs().authid()} default style renderer={layer.renderer().type()}")
        count, ids, styles, _descriptions, _error = layer.listStylesInDatabase()
        for style_id, style_name in list(zip(ids, styles, strict=True))[:count]:
            qml, _ = layer.getStyleFromDatabase(style_id)
            doc = QDomDocument()
            doc.setContent(qml)
            ok, message = layer.importNamedStyle(doc)
            failures += not ok
            labels = [item.label() for item in layer.renderer().legendSymbolItems()]
            print(f"  {'ok ' if ok else 'BAD'} {style_name!r}: {layer.renderer().type()} "
                  f"{labels} {message or ''}")
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
    app.exitQgis()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
