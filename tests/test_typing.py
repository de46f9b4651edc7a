"""The ``geo`` package type-checks cleanly with mypy.

The configuration is ``[tool.mypy]`` in pyproject.toml (the one ``make lint`` uses); the
cache is the project's ``.mypy_cache``, so a run after an unchanged checkout takes well
under a second and a cold run a few seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
CACHE = ROOT / ".mypy_cache"


def _mypy(*args: str) -> tuple[str, int]:
    """mypy's report (stdout and stderr) and exit status, with the project configuration."""
    stdout, stderr, status = api.run(
        ["--config-file", str(CONFIG), "--cache-dir", str(CACHE), "--no-pretty", *args]
    )
    return stdout + stderr, status


def test_geo_has_no_type_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # `files = ["geo"]` is relative to the project root
    report, status = _mypy()
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert errors == [], f"mypy found {len(errors)} error(s):\n{report}"
    assert status == 0, report
    # every module of the package was checked (not an empty or misconfigured file list)
    n_modules = len(list((ROOT / "geo").rglob("*.py")))
    m = re.search(r"no issues found in (\d+) source files", report)
    assert m is not None, report
    assert int(m.group(1)) == n_modules, report


def test_configuration_catches_errors(tmp_path: Path) -> None:
    """The strictness the package is held to: an unannotated function, a wrong return
    type, a needless ``type: ignore`` and a comparison that is always false all fail."""
    bad = tmp_path / "pvdgeo_typing_probe.py"
    bad.write_text(
        "def untyped(x):\n"
        "    return x\n"
        "\n"
        "def code(n: int) -> str:\n"
        "    return n\n"
        "\n"
        "def same(a: int, b: str) -> bool:\n"
        "    return a == b\n"
        "\n"
        "x: int = 1  # type: ignore[assignment]\n",
        encoding="utf-8",
    )
    report, status = _mypy(str(bad))
    assert status == 1, report
    codes = set(re.findall(r": error: .*\[([a-z-]+)\]$", report, flags=re.M))
    assert codes == {"no-untyped-def", "return-value", "comparison-overlap", "unused-ignore"}, (
        report
    )
