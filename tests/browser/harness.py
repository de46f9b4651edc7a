"""Run the Node browser scripts of this folder (headless Chromium via playwright-core,
launched and watched by ``chromium.mjs``) from pytest.

``run_script(script, *args)`` returns the JSON report a script prints on its last line;
``check_page(url, screenshot=..., count={...})`` runs ``check_page.mjs``: title, console
messages, page errors, failed requests, element counts. Tests marked ``browser`` call them;
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


def run_script(script: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run a Node browser script with ``args``; its report (the JSON object it prints on
    its last line of output)."""
    require_browser()
    proc = subprocess.run(
        ["node", str(script), *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script.name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def check_page(url: str, **config: Any) -> dict[str, Any]:
    """Load ``url`` in headless Chromium; ``config`` as in check_page.mjs."""
    if "screenshot" in config:
        Path(config["screenshot"]).parent.mkdir(parents=True, exist_ok=True)
        config["screenshot"] = str(config["screenshot"])
    return run_script(SCRIPT, json.dumps({"url": url, **config}))


def console_errors(report: dict[str, Any]) -> list[str]:
    """Console errors and uncaught page errors of a report."""
    return [m["text"] for m in report["console"] if m["type"] == "error"] + report["pageErrors"]
