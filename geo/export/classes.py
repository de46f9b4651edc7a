"""Legend classes drawn from the distribution they describe.

A graduated legend either has fixed thresholds with a meaning (APL 2.5: under-served;
5-minute steps of walking time), written in the style, or classes computed by a
documented rule from a distribution, here the national one. :func:`class_breaks` is
that rule; :func:`graduated_classes` turns breaks into legend classes (labels in
French) and :func:`apply_classes` writes them into a view style (the legend entry and
the layer's ``step`` expression, so the two cannot disagree). The national dashboard
classifies its indicators with the same functions.

The rule (``quantiles``)
    Quantiles (``n`` classes of equal counts, default quintiles) of the values of the
    universe, communes of France (mainland and DROM, the universe of
    ``pvdgeo typology-stats``) with a value. When ``zero_class`` is set, zero is a class
    of its own ("aucun") and the quantiles are taken over the non-zero values: otherwise
    a distribution where many communes have none (88 % of communes have no cultural
    venue) gives equal breaks. Breaks are rounded to ``significant`` significant digits
    (labels people read: 33, 50, 70, 110), and equal breaks after rounding merged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo.errors import InputFileError

__all__ = [
    "ClassRule",
    "apply_classes",
    "class_breaks",
    "graduated_classes",
    "round_significant",
]


@dataclass(frozen=True, slots=True)
class ClassRule:
    """How a legend's classes are computed (the ``classes_rule`` of a legend entry)."""

    #: The indicator (a field of ``data/interim/facilities_communes.parquet`` or of the
    #: portrait's indicator table).
    field: str
    n: int = 5
    zero_class: bool = True
    significant: int = 2

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ClassRule:
        """The rule of a style's ``classes_rule`` (``kind`` must be ``quantiles``)."""
        if raw.get("kind", "quantiles") != "quantiles":
            raise InputFileError(f"classes_rule kind {raw.get('kind')!r}: only 'quantiles'")
        return cls(field=str(raw["field"]), n=int(raw.get("n", 5)),
                   zero_class=bool(raw.get("zero_class", True)),
                   significant=int(raw.get("significant", 2)))

    def describe(self, universe: str, source: str) -> str:
        """The rule in French, for the legend."""
        name = {4: "quartiles", 5: "quintiles", 10: "déciles"}.get(self.n, f"{self.n}-quantiles")
        text = f"Classes : {name} des {universe}"
        if self.zero_class:
            text += " ayant une valeur non nulle, « aucun » à part"
        return f"{text} ({source}), arrondis à {self.significant} chiffres significatifs."


def round_significant(x: float, digits: int = 2) -> float:
    """``x`` rounded to ``digits`` significant digits (33.3 -> 33, 106.5 -> 110)."""
    if x == 0 or not math.isfinite(x):
        return x
    return float(round(x, digits - 1 - math.floor(math.log10(abs(x)))))


def class_breaks(values: Iterable[float], rule: ClassRule) -> tuple[float, ...]:
    """Inner breaks of ``rule`` over ``values`` (missing values left out), increasing.

    With ``zero_class``, the first break is 0 (the class "aucun" is ``[0, 0]``) and the
    others are quantiles of the positive values. Raises :class:`InputFileError` when no
    value is left.
    """
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if rule.zero_class:
        vals = vals[vals > 0]
    if not vals.size:
        raise InputFileError(f"{rule.field}: no value to compute legend classes from")
    qs = np.quantile(vals, [k / rule.n for k in range(1, rule.n)])
    breaks = sorted({round_significant(float(q), rule.significant) for q in qs})
    return tuple(breaks)


def _fr(x: float) -> str:
    text = f"{x:,.{0 if float(x).is_integer() else 1}f}"
    return text.replace(",", "\u202f").replace(".", ",")


def graduated_classes(breaks: Sequence[float], colours: Sequence[str], *,
                      zero_class: bool = True, fmt: Callable[[float], str] = _fr,
                      ) -> list[dict[str, Any]]:
    """Legend classes (``min``, ``max``, ``color``, ``label``) for ``breaks``.

    Classes are ``[min, max)`` as MapLibre's ``step`` draws them; with ``zero_class``
    the first one is exactly zero ("aucun", ``[0, tiny)``). ``colours`` needs one colour
    per class (``len(breaks) + 1``, plus one with ``zero_class``).
    """
    edges = [0.0, *breaks]
    n_classes = len(breaks) + 1 + (1 if zero_class else 0)
    if len(colours) < n_classes:
        raise InputFileError(f"{n_classes} classes need {n_classes} colours, got {len(colours)}")
    out: list[dict[str, Any]] = []
    i = 0
    if zero_class:
        out.append({"min": 0, "max": 1e-9, "color": colours[0], "label": "aucun"})
        i = 1
        edges = [1e-9, *breaks]
    for k, lo in enumerate(edges):
        hi = edges[k + 1] if k + 1 < len(edges) else None
        if hi is None:
            label = f"{fmt(lo)} ou plus"
        elif k == 0:
            label = f"moins de {fmt(hi)}"
        else:
            label = f"{fmt(lo)} à {fmt(hi)}"
        out.append({"min": 0 if (k == 0 and not zero_class) else lo, "max": hi,
                    "color": colours[i + k], "label": label})
    return out


def _step(field: str, classes: Sequence[dict[str, Any]], nodata: str) -> list[Any]:
    expr: list[Any] = ["step", ["get", field], classes[0]["color"]]
    for c in classes[1:]:
        expr += [c["min"], c["color"]]
    return ["case", ["has", field], expr, nodata]


def apply_classes(style: dict[str, Any], layer_id: str,
                  classes: Sequence[dict[str, Any]], *, rule_text: str) -> dict[str, Any]:
    """``style`` with the legend entry of ``layer_id`` and the colour of its style layers
    (the entry's layer and ``also_layers``) set to ``classes``; ``rule_text`` (French) is
    kept as the entry's ``rule``. Returns a new style."""
    out = {**style, "metadata": {**style["metadata"]}, "layers": [dict(x) for x in style["layers"]]}
    legend = [dict(e) for e in out["metadata"]["pvdgeo:legend"]]
    entry = next((e for e in legend if e["layer"] == layer_id), None)
    if entry is None or entry.get("kind") != "graduated":
        raise InputFileError(f"style {style.get('name')!r}: no graduated legend for {layer_id!r}")
    entry["classes"] = [dict(c) for c in classes]
    entry["rule"] = rule_text
    out["metadata"]["pvdgeo:legend"] = legend
    nodata = entry.get("nodata", {}).get("color", "#d9d9d9")
    ids = {layer_id, *entry.get("also_layers", [])}
    for lyr in out["layers"]:
        if lyr["id"] in ids:
            prop = {"fill": "fill-color", "line": "line-color",
                    "circle": "circle-color"}[lyr["type"]]
            lyr["paint"] = {**lyr.get("paint", {}), prop: _step(entry["field"], classes, nodata)}
    return out
