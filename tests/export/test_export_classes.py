"""Legend classes drawn from the distribution they describe (geo.export.classes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geo.cli import main
from geo.errors import InputFileError
from geo.export.classes import (
    ClassRule,
    apply_classes,
    class_breaks,
    graduated_classes,
    round_significant,
)
from geo.export.views import STYLES_DIR


def test_round_significant() -> None:
    assert [round_significant(x) for x in (33.3, 106.5, 0.0123, 1.96, 0.0)] == [
        33, 110, 0.012, 2.0, 0.0]


def test_quantile_breaks_with_zero_apart() -> None:
    values = [0.0] * 60 + list(np.arange(1, 101, dtype=float)) + [np.nan, None]
    rule = ClassRule("x", n=4, zero_class=True, significant=2)
    assert class_breaks(values, rule) == (26.0, 50.0, 75.0)  # quartiles of 1..100
    # without the zero class, zeros would make equal breaks; equal rounded breaks merge
    assert class_breaks([0.0] * 90 + [1.0] * 10, ClassRule("x", zero_class=False)) == (0.0,)
    with pytest.raises(InputFileError, match="no value"):
        class_breaks([0.0, np.nan], rule)


def test_graduated_classes_and_style() -> None:
    classes = graduated_classes((33.0, 50.0), ["#a", "#b", "#c", "#d"], zero_class=True)
    assert [(c["min"], c["max"], c["label"]) for c in classes] == [
        (0, 1e-9, "aucun"), (1e-9, 33.0, "moins de 33"), (33.0, 50.0, "33 à 50"),
        (50.0, None, "50 ou plus")]
    with pytest.raises(InputFileError, match="need 4 colours"):
        graduated_classes((33.0, 50.0), ["#a"], zero_class=True)
    style = json.loads((STYLES_DIR / "commerces.json").read_text(encoding="utf-8"))
    new = apply_classes(style, "commerces-communes", classes, rule_text="règle")
    entry = next(e for e in new["metadata"]["pvdgeo:legend"] if e["layer"] == "commerces-communes")
    assert entry["classes"] == classes and entry["rule"] == "règle"
    layer = next(lyr for lyr in new["layers"] if lyr["id"] == "commerces-communes")
    step = layer["paint"]["fill-color"][2]
    assert step[:3] == ["step", ["get", "n_commerces_per_10k"], "#a"]
    assert step[3:] == [1e-9, "#b", 33.0, "#c", 50.0, "#d"]
    assert style != new  # a new style; the input is left as it was


@pytest.mark.shared_data
def test_tracked_styles_follow_their_rule(use_settings, capsys) -> None:
    """The classes in tiles/styles are what the documented rule gives on the national
    data (pvdgeo styles --check), and shops are no longer all in the top class."""
    assert main(["styles", "--check"]) == 0
    assert "0 style(s) differ" in capsys.readouterr().out
    style = json.loads((STYLES_DIR / "commerces.json").read_text(encoding="utf-8"))
    entry = next(e for e in style["metadata"]["pvdgeo:legend"] if e["kind"] == "graduated")
    assert entry["classes_rule"]["kind"] == "quantiles" and "quintiles" in entry["rule"]
    tops = [c["min"] for c in entry["classes"]]
    assert 41 < tops[-1] < 197  # national median 41, Redon 197: the top class is above both
    assert len(entry["classes"]) == 6
