"""Run ``check_page.mjs`` (headless Chromium via playwright-core) from pytest.

``check_page(url, screenshot=..., count={...})`` returns the page report: title, console
messages, page errors, failed requests, element counts. Tests marked ``browser`` call it;
without node, the npm packages or Chromium they are skipped (they fail under CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from geo.settings import PROJECT_ROOT

SCRIPT = Path(__file__).with_name("check_page.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


def require_browser() -> None:
    """Skip (fail under CI) when node, playwright-core or Chromium is missing."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not (PROJECT_ROOT / "node_modules" / "playwright-core").is_dir():
        missing.append("node_modules/playwright-core (make install-web)")
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM}")
    if missing:
        msg = "browser test needs " + ", ".join(missing)
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(msg)
        pytest.skip(msg)


def check_page(url: str, **config: Any) -> dict[str, Any]:
    """Load ``url`` in headless Chromium; ``config`` as in check_page.mjs."""
    require_browser()
    if "screenshot" in config:
        Path(config["screenshot"]).parent.mkdir(parents=True, exist_ok=True)
        config["screenshot"] = str(config["screenshot"])
    proc = subprocess.run(
        ["node", str(SCRIPT), json.dumps({"url": url, **config})],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    if proc.returncode != 0:
        raise AssertionError(f"check_page.mjs failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def console_errors(report: dict[str, Any]) -> list[str]:
    """Console errors and uncaught page errors of a report."""
    return [m["text"] for m in report["console"] if m["type"] == "error"] + report["pageErrors"]
