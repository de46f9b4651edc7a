"""Tests of geo.export (GeoPackage, PMTiles, styles, viewer)."""
