"""Publishing: the town GeoPackage (QGIS), PMTiles and MapLibre styles, the static viewer.

- :mod:`geo.export.layers`   which layers a town run produced, read and prepared
- :mod:`geo.export.views`    the map views (``tiles/styles/*.json``) and their legends
- :mod:`geo.export.qml`      QGIS styles (QML) from the views' legends
- :mod:`geo.export.fields`   French labels and units of fields
- :mod:`geo.export.metadata` provenance: sources, licences, vintages, software
- :mod:`geo.export.gpkg`     ``<insee>.gpkg`` with styles and metadata
- :mod:`geo.export.tiles`    ``<insee>.pmtiles`` with tippecanoe, read back and checked
- :mod:`geo.export.viewer`   the static viewer build and the towns index
- :mod:`geo.export.serve`    a loopback HTTP server with Range support (``make serve``)
"""

__all__: list[str] = []
