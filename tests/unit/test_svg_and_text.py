"""French number formatting, ticks, SVG charts and name normalisation (no data needed)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo import _svg as svg
from geo._categories import normalize_text

NNBSP = "\u202f"


@pytest.mark.parametrize(("value", "kwargs", "text"), [
    (1234.56, {"digits": 1}, f"1{NNBSP}234,6"),
    (0.1234, {"digits": 1, "percent": True}, f"12,3{NNBSP}%"),
    (-0.0001, {"digits": 1, "signed": True}, "0,0"),
    (0.042, {"digits": 1, "percent": True, "signed": True}, f"+4,2{NNBSP}%"),
    (None, {}, "n.d."),
    (float("nan"), {"missing": "—"}, "—"),
])
def test_french_numbers(value, kwargs, text):
    assert svg.format_fr(value, **kwargs) == text


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_ticks_cover_the_range_with_round_steps(lo, hi):
    ticks = svg.nice_ticks(lo, hi)
    # covered up to a billionth of a step (hypothesis found lo=1e-05, hi=-25000: the
    # last tick 0 is 1e-5 below hi on a 10,000 step, invisible on any axis)
    tol = 1e-9 * (ticks[1] - ticks[0]) if len(ticks) > 1 else 1e-9
    assert ticks[0] <= min(lo, hi) + tol and ticks[-1] >= max(lo, hi) - tol
    steps = {round(b - a, 6) for a, b in itertools.pairwise(ticks)}
    assert len(steps) <= 2  # one step (float rounding may show two close values)


def test_charts_are_valid_svg_with_escaped_text():
    chart = svg.grouped_bar_chart(["Petites & moyennes", "b"], {"x<": [1.0, None],
                                                                 "y": [-2.0, 3.0]}, title="t<")
    root = ET.fromstring(chart)
    assert root.tag.endswith("svg")
    texts = "".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "Petites & moyennes" in texts and "x<" in texts
    line = svg.line_chart([2016, 2019, 2023], {"commune": [100.0, 101.5, None]}, title="T")
    assert ET.fromstring(line).tag.endswith("svg")


@pytest.mark.parametrize(("raw", "key"), [
    ("Intermarché Super", "intermarche super"),
    ("L'Écho", "lecho"),
    ("Bœuf & Cie", "boeuf cie"),
    ("  SAINT-GERMAIN-EN-LAYE ", "saint germain en laye"),
    (None, ""),
    (float("nan"), ""),
])
def test_normalized_names(raw, key):
    assert normalize_text(raw) == key
