"""Where the real test data is, importable from any test module.

Real data comes from the mirror located by ``GEO_TEST_DATA`` (default ``../shared/data``
beside the project root). When it is missing, tests that need it are skipped, except
under ``CI=true`` where they fail: CI must never pass without having run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geo.settings import PROJECT_ROOT

__all__ = ["IN_CI", "require_shared", "shared_data_dir"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def shared_data_dir() -> Path:
    """The real-data mirror (``GEO_TEST_DATA`` or ``../shared/data``)."""
    return Path(os.environ.get("GEO_TEST_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def require_shared(relpath: str = "") -> Path:
    """Path of a mirror file; skip the test (fail under CI) when it is missing."""
    path = shared_data_dir() / relpath
    if not path.exists():
        msg = f"shared test data missing: {path} (set GEO_TEST_DATA)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


