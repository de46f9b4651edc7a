"""Headless Chromium checks shared by the browser tests (playwright-core + Debian chromium)."""
