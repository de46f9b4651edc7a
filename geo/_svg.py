"""Small inline SVG charts for static HTML reports (no JavaScript, no network).

Each function returns one ``<svg>`` element as a string, sized by its ``viewBox`` so it
scales with the page, with a ``<title>`` for screen readers and ``<title>`` tooltips on
marks. Colours are the Okabe-Ito palette (readable by colour-blind readers). Missing
values (None or NaN) are drawn as "n.d.", never as zero. Numbers are formatted the French
way (:func:`format_fr`: ``1 234,5``, ``12,3 %``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape

__all__ = [
    "PALETTE",
    "bar_chart",
    "format_fr",
    "grouped_bar_chart",
    "is_missing",
    "line_chart",
    "nice_ticks",
    "strip_chart",
    "to_float",
]

#: Okabe-Ito colours, in the order series use them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
           "#F0E442")
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
_NNBSP = "\u202f"  # narrow no-break space: French thousands separator and before %

Formatter = Callable[[float], str]


def is_missing(value: object) -> bool:
    """True for None, NaN and pandas' NA."""
    if value is None:
        return True
    try:
        return bool(math.isnan(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value) in {"<NA>", "NaT"}


def to_float(value: object) -> float | None:
    """``value`` as a float, None when missing."""
    return None if is_missing(value) else float(value)  # type: ignore[arg-type]


def format_fr(value: object, digits: int = 0, *, percent: bool = False,
              signed: bool = False, missing: str = "n.d.") -> str:
    """French number: ``1 234,5``; ``percent=True`` multiplies by 100 and adds `` %``."""
    num = to_float(value)
    if num is None:
        return missing
    x = num * (100.0 if percent else 1.0)
    text = f"{x:{'+' if signed else ''},.{digits}f}"
    text = text.replace(",", _NNBSP).replace(".", ",")
    if text.lstrip("+-").strip("0,") == "" and signed:
        text = text.lstrip("+-")  # no "+0,0"
    return text + (f"{_NNBSP}%" if percent else "")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (1, 2, 2.5, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):  # equal bounds, or nearly
        hi = lo + (abs(lo) if abs(lo) > 1e-12 else 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while True:  # up to the first tick at or above hi: the axis covers the data
        ticks.append(round(t, 10))
        if t >= hi - step * 1e-9:
            return ticks
        t += step


def _svg(width: float, height: float, title: str, body: list[str], css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css_class)}" '
        f'viewBox="0 0 {width:g} {height:g}" width="{width:g}" height="{height:g}" '
        f'role="img" aria-label="{escape(title)}" style="max-width:100%;height:auto;{_FONT}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: float = 11,
          fill: str = "#333", weight: str = "normal", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" fill="{fill}" '
            f'text-anchor="{anchor}" font-weight="{weight}"{extra}>{escape(text)}</text>')


def _legend(names: Sequence[str], x: float, y: float, width: float) -> tuple[list[str], float]:
    """Legend swatches laid out in rows from (x, y); returns elements and used height."""
    out, cx, cy = [], x, y
    for i, name in enumerate(names):
        w = 18 + 6.5 * len(name) + 14
        if cx + w > x + width and cx > x:
            cx, cy = x, cy + 16
        out.append(f'<rect x="{cx:.1f}" y="{cy - 9:.1f}" width="12" height="12" rx="2" '
                   f'fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(_text(cx + 16, cy + 1, name))
        cx += w
    return out, cy - y + 16


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def grouped_bar_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    fmt: Formatter = format_fr,
    width: int = 720,
    height: int = 320,
    css_class: str = "chart",
) -> str:
    """Vertical bars: one group per category, one bar per series (legend on top).

    Negative values hang below the zero line; missing values are marked "n.d.".
    """
    names = list(series)
    legend, legend_h = _legend(names, 56, 34, width - 70) if len(names) > 1 else ([], 0)
    top, bottom, left, right = 34 + legend_h + 6, 46, 56, 12
    values = [v for s in series.values() for v in map(to_float, s) if v is not None]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    y = _scale(lo, hi, height - bottom, top)
    body = [_text(8, 18, title, size=13, weight="bold"), *legend]
    for t in ticks:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                    f'stroke="{"#888" if t == 0 else "#e3e3e3"}" stroke-width="1"/>')
        body.append(_text(left - 4, y(t) + 4, fmt(t), anchor="end", size=10, fill="#555"))
    n_cat = max(len(categories), 1)
    group_w = (width - left - right) / n_cat
    bar_w = min(38.0, group_w * 0.8 / max(len(names), 1))
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + (group_w - bar_w * len(names)) / 2
        for si, name in enumerate(names):
            v = to_float(series[name][ci]) if ci < len(series[name]) else None
            x = gx + si * bar_w
            if v is None:
                body.append(_text(x + bar_w / 2, y(0) - 3, "n.d.", anchor="middle", size=9,
                                  fill="#777"))
                continue
            y0, y1 = sorted((y(0.0), y(v)))
            body.append(
                f'<rect x="{x + 1:.1f}" y="{y0:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{max(y1 - y0, 0.5):.1f}" fill="{PALETTE[si % len(PALETTE)]}">'
                f"<title>{escape(f'{cat} – {name} : {fmt(v)}')}</title></rect>"
            )
        body.append(_text(left + (ci + 0.5) * group_w, height - bottom + 16, cat,
                          anchor="middle", size=11))
    return _svg(width, height, title, body, css_class)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    fmt: Formatter = format_fr,
    width: int = 720,
    bar_height: int = 22,
    reference: float | None = None,
    reference_label: str = "",
    highlight: Sequence[bool] | None = None,
    domain: tuple[float, float] | None = None,
    css_class: str = "chart",
) -> str:
    """Horizontal bars with value labels; an optional vertical reference line.

    ``highlight`` colours some bars in the second palette colour (e.g. below a threshold);
    ``domain`` fixes the value axis (e.g. ``(0, 100)`` for percentiles).
    """
    label_w = min(300, 12 + 6.2 * max((len(s) for s in labels), default=0))
    left, right, top = label_w, 70, 30
    height = top + bar_height * len(labels) + 24
    present = [v for v in map(to_float, values) if v is not None]
    lo, hi = domain or (min([0.0, *present]), max([0.0, *present, reference or 0.0]))
    x = _scale(lo, hi, left, width - right)
    body = [_text(8, 18, title, size=13, weight="bold")]
    if domain is None:
        for t in nice_ticks(lo, hi, 4):
            if lo <= t <= hi:
                body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 4}" '
                            f'y2="{height - 22}" stroke="#eee"/>')
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        cy = top + i * bar_height
        body.append(_text(left - 6, cy + bar_height * 0.65, label, anchor="end"))
        fv = to_float(v)
        if fv is None:
            body.append(_text(x(max(lo, 0.0)) + 4, cy + bar_height * 0.65, "n.d.", fill="#777"))
            continue
        x0, x1 = sorted((x(max(lo, 0.0)), x(fv)))
        colour = PALETTE[1] if highlight is not None and highlight[i] else PALETTE[0]
        body.append(
            f'<rect x="{x0:.1f}" y="{cy + 3:.1f}" width="{max(x1 - x0, 0.5):.1f}" '
            f'height="{bar_height - 6}" fill="{colour}"><title>{escape(f"{label} : {fmt(fv)}")}'
            f"</title></rect>"
        )
        body.append(_text(x1 + 4, cy + bar_height * 0.65, fmt(fv), size=10, fill="#333"))
    ref = to_float(reference)
    if ref is not None:
        rx = x(ref)
        body.append(f'<line x1="{rx:.1f}" x2="{rx:.1f}" y1="{top - 6}" y2="{height - 20}" '
                    f'stroke="#000" stroke-dasharray="4 3"/>')
        body.append(_text(rx, height - 6, reference_label or fmt(ref),
                          anchor="middle", size=10))
    return _svg(width, height, title, body, css_class)


def line_chart(
    x_values: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    fmt: Formatter = format_fr,
    width: int = 720,
    height: int = 300,
    css_class: str = "chart",
) -> str:
    """Lines with point markers over numeric x values (e.g. years); gaps at missing values."""
    names = list(series)
    legend, legend_h = _legend(names, 56, 34, width - 70)
    top, bottom, left, right = 34 + legend_h + 8, 30, 56, 16
    values = [v for s in series.values() for v in map(to_float, s) if v is not None]
    if not values:
        values = [0.0, 1.0]
    ticks = nice_ticks(min(values), max(values))
    lo, hi = ticks[0], ticks[-1]
    xs = [float(v) for v in x_values]
    fx = _scale(min(xs), max(xs), left + 10, width - right - 10)
    fy = _scale(lo, hi, height - bottom, top)
    body = [_text(8, 18, title, size=13, weight="bold"), *legend]
    for t in ticks:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{fy(t):.1f}" '
                    f'y2="{fy(t):.1f}" stroke="#e3e3e3"/>')
        body.append(_text(left - 4, fy(t) + 4, fmt(t), anchor="end", size=10, fill="#555"))
    for xv in xs:
        body.append(_text(fx(xv), height - bottom + 16, f"{xv:g}", anchor="middle", size=10))
    for si, name in enumerate(names):
        colour = PALETTE[si % len(PALETTE)]
        pts = [(xv, yv) for xv, yv in zip(xs, map(to_float, series[name]), strict=False)
               if yv is not None]
        if len(pts) > 1:
            path = " ".join(f"{fx(xv):.1f},{fy(yv):.1f}" for xv, yv in pts)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                        f'stroke-width="2"/>')
        for xv, yv in pts:
            body.append(f'<circle cx="{fx(xv):.1f}" cy="{fy(yv):.1f}" r="3" fill="{colour}">'
                        f"<title>{escape(f'{name}, {xv:g} : {fmt(yv)}')}</title></circle>")
    return _svg(width, height, title, body, css_class)


def strip_chart(
    values: Iterable[object],
    *,
    town: float | None,
    peer_median: float | None = None,
    national_median: float | None = None,
    title: str = "",
    fmt: Formatter = format_fr,
    width: int = 200,
    height: int = 26,
    css_class: str = "strip",
) -> str:
    """One-line distribution: peers as grey ticks, the peer median (orange bar), the
    national median (dashed line) and the town (blue dot) on a common axis."""
    pts = [v for v in map(to_float, values) if v is not None]
    own, peer_mid, nat_mid = to_float(town), to_float(peer_median), to_float(national_median)
    marks = [*pts, *(v for v in (own, peer_mid, nat_mid) if v is not None)]
    if not marks:
        return _svg(width, height, title or "n.d.",
                    [_text(width / 2, height / 2 + 4, "n.d.", anchor="middle", fill="#777")],
                    css_class)
    lo, hi = min(marks), max(marks)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    x = _scale(lo, hi, 6, width - 6)
    mid = height / 2
    body = [f'<line x1="6" x2="{width - 6}" y1="{mid}" y2="{mid}" stroke="#ccc"/>']
    body += [f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{mid - 5}" y2="{mid + 5}" '
             f'stroke="#999" stroke-opacity="0.6"/>' for v in pts]
    if nat_mid is not None:
        tip = escape(f"médiane des communes : {fmt(nat_mid)}")
        body.append(f'<line x1="{x(nat_mid):.1f}" x2="{x(nat_mid):.1f}" y1="2" '
                    f'y2="{height - 2}" stroke="#000" stroke-dasharray="3 2">'
                    f"<title>{tip}</title></line>")
    if peer_mid is not None:
        tip = escape(f"médiane des pairs : {fmt(peer_mid)}")
        body.append(f'<rect x="{x(peer_mid) - 1.5:.1f}" y="3" width="3" '
                    f'height="{height - 6}" fill="{PALETTE[1]}"><title>{tip}</title></rect>')
    if own is not None:
        tip = escape(f"commune : {fmt(own)}")
        body.append(f'<circle cx="{x(own):.1f}" cy="{mid}" r="5" fill="{PALETTE[0]}" '
                    f'stroke="#fff" stroke-width="1.5"><title>{tip}</title></circle>')
    return _svg(width, height, title or "distribution", body, css_class)
