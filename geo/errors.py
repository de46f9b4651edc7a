"""Errors raised by the pipeline.

Each error subclasses :class:`GeoError` (catch everything from this package) and the
builtin it resembles (``ValueError``, ``LookupError``, ``OSError``), so callers can catch
either. Messages name the input that is wrong and what was expected; the CLI prints them
without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BadArgumentError",
    "ChecksumError",
    "DataSourceError",
    "DownloadError",
    "EmptyGraphError",
    "GeoError",
    "InputFileError",
    "MissingColumnsError",
    "MissingCrsError",
    "OutputError",
    "SettingsError",
    "UnknownCommuneError",
    "UnknownDatasetError",
    "did_you_mean",
]


class GeoError(Exception):
    """Base class of all errors raised by ``geo``."""


class SettingsError(GeoError, ValueError):
    """An unknown setting or a bad value."""


class BadArgumentError(GeoError, ValueError):
    """An argument (of a function or on the command line) out of range or of the wrong
    kind: an unknown travel mode, a negative time, an output name whose extension is not
    the format written."""


class OutputError(GeoError, OSError):
    """An output cannot be written: the folder is read-only or not writable, the disk is
    full, the path is not a folder."""


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


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 5) -> str:
    """``" (did you mean a, b?)"`` for the choices close to ``name`` (similar spelling, or
    containing it or contained in it), else ``""``; for "unknown ..." messages."""
    options = {str(c).lower(): str(c) for c in choices}
    text = str(name).strip().lower()
    close = difflib.get_close_matches(text, options, n=n, cutoff=0.6)
    if len(text) >= 3:
        close += [c for c in options if text in c or (len(c) >= 3 and c in text)]
    close = [options[c] for c in dict.fromkeys(close)][:n]
    return f" (did you mean {', '.join(close)}?)" if close else ""
