"""Errors raised by the pipeline.

Each error subclasses :class:`GeoError` (catch everything from this package) and the
builtin it resembles (``ValueError``, ``LookupError``, ``OSError``), so callers can catch
either. Messages name the input that is wrong and what was expected; the CLI prints them
without a traceback.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DataSourceError",
    "DownloadError",
    "EmptyGraphError",
    "GeoError",
    "InputFileError",
    "MissingColumnsError",
    "MissingCrsError",
    "SettingsError",
    "UnknownCommuneError",
    "UnknownDatasetError",
]


class GeoError(Exception):
    """Base class of all errors raised by ``geo``."""


class SettingsError(GeoError, ValueError):
    """An unknown setting or a bad value."""


class DataSourceError(GeoError, OSError):
    """A dataset could not be obtained or read."""


class UnknownDatasetError(GeoError, KeyError):
    """A dataset id that is not in the catalogue."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DownloadError(DataSourceError):
    """A download failed (network, HTTP status, mirror path)."""


class ChecksumError(DataSourceError):
    """A file's sha256 differs from the catalogue or the lock file."""


class InputFileError(GeoError, ValueError):
    """An input file is missing, corrupt or in an unexpected format."""


class MissingColumnsError(InputFileError):
    """A table lacks columns the reader needs."""

    def __init__(self, source: str, missing: list[str], found: list[str] | None = None) -> None:
        msg = f"{source}: missing column(s) {', '.join(map(repr, missing))}"
        if found is not None:
            msg += f"; found {', '.join(map(repr, found[:30]))}"
        super().__init__(msg)
        self.source = source
        self.missing = missing


class MissingCrsError(GeoError, ValueError):
    """A GeoDataFrame or raster without a coordinate reference system."""


class UnknownCommuneError(GeoError, LookupError):
    """An INSEE code or commune name that matches no current commune."""


class EmptyGraphError(GeoError, ValueError):
    """A street graph with no usable edges."""
