"""Logging set-up: concise console messages, optional per-town log files."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["log_to_file", "setup_logging"]

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the *current* ``sys.stderr`` (not the one at creation), so a console
    handler set up once keeps working when stderr is replaced (tests, notebooks)."""

    #: marks the console handler setup_logging installs (found again by this attribute)
    _geo_console = True

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging(verbosity: int = 0) -> None:
    """Console logging: -1 warnings, 0 info, 1+ debug (``GEO_LOG_LEVEL`` overrides)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    level = logging.getLevelNamesMapping().get(os.environ.get("GEO_LOG_LEVEL", "").upper(), level)
    root = logging.getLogger("geo")
    root.setLevel(level)
    if not any(getattr(h, "_geo_console", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for h in root.handlers:
        if getattr(h, "_geo_console", False):
            h.setLevel(level)


@contextmanager
def log_to_file(path: Path) -> Iterator[Path]:
    """Also write ``geo`` log records (debug and up) to ``path`` while in the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("geo")
    previous = root.level
    root.setLevel(min(previous or logging.INFO, logging.DEBUG))
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
