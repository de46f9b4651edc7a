"""pvdgeo: territorial analysis for French small and medium towns.

Pipeline stages, one module each:

- :mod:`geo.settings`   one settings object (paths, CRS, speeds, thresholds)
- :mod:`geo.sources`    dataset catalogue, downloads and local mirrors
- :mod:`geo.communes`   commune reference (COG), programmes (PVD, ACV) and typologies
- :mod:`geo.facilities` facilities from OSM, BPE, culture and energy sources
- :mod:`geo.network`    walking and cycling street graphs
- :mod:`geo.access`     nearest-facility times, cumulative counts, isochrones
- :mod:`geo.h3grid`, :mod:`geo.landcover`, :mod:`geo.indicators`  H3 and commune aggregation
- :mod:`geo.export`     GeoPackage, PMTiles, viewer
- :mod:`geo.portrait`   town portrait, peers and national statistics
- :mod:`geo.pipeline`   the town run that chains the stages
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pvdgeo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
