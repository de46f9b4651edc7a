"""Small helpers on OSM files shared by the facility and street readers."""

from __future__ import annotations

import lzma
import re
from pathlib import Path

from geo._io import open_maybe_compressed

__all__ = ["osm_timestamp"]


def osm_timestamp(path: Path) -> str | None:
    """Data timestamp of an OSM file, if it says: the ``osm_base`` of an Overpass export
    or the ``timestamp`` attribute of ``<osm>`` (XML, possibly compressed), the
    replication timestamp of a PBF header. None when absent or unreadable."""
    path = Path(path)
    try:
        if ".pbf" in path.suffixes:
            import osmium

            reader = osmium.io.Reader(str(path))
            try:
                header = reader.header()
                stamp = (header.get("osmosis_replication_timestamp")
                         or header.get("timestamp") or "")
            finally:
                reader.close()
            return stamp or None
        with open_maybe_compressed(path, "rt", encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096).lstrip("\ufeff")
    except (OSError, RuntimeError, UnicodeDecodeError, EOFError, lzma.LZMAError):
        return None
    match = re.search(r'osm_base="([^"]+)"', head) or re.search(
        r'<osm\b[^>]*\btimestamp="([^"]+)"', head)
    return match.group(1) if match else None
