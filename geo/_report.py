"""Static, self-contained HTML pages for reports (inline CSS, no script, no network).

:func:`page` wraps a body in a French HTML document with the shared style sheet;
:func:`table` and :func:`pivot` build tables whose cells are already-escaped HTML.
Numbers go through :func:`geo._svg.format_fr`; ``"n.d."`` cells are styled as missing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from html import escape

import pandas as pd

from geo import __version__
from geo import _svg as svg

__all__ = ["CSS", "fmt_count", "page", "pivot", "table"]

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222;
background:#fafafa;line-height:1.45}
main{max-width:1080px;margin:0 auto;padding:1.5rem}
h1{margin:.2rem 0;font-size:1.9rem}h2{margin-top:2.2rem;border-bottom:2px solid #0072B2;
padding-bottom:.2rem}h3{margin-top:1.4rem;color:#0072B2}
.sub{color:#555;margin:0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.6rem;
margin-top:1rem}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5rem .7rem}
.card b{display:block;font-size:1.05rem}.card span{color:#555;font-size:.85rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.3rem .45rem;text-align:left;
vertical-align:middle}
th{background:#f0f4f8;font-weight:600}table.fixed{table-layout:fixed}
td svg.strip{display:block;width:100%}td.num{text-align:right;white-space:nowrap}
td.nd{color:#888;font-style:italic}.note{color:#777;font-size:.8rem;white-space:normal}
td.num .note{display:block}
.warn{background:#fff4e0;border-left:4px solid #E69F00;padding:.5rem .8rem}
.legend{font-size:.85rem;color:#444}.legend i{display:inline-block;width:10px;height:10px;
margin:0 .25rem 0 .8rem;vertical-align:middle}
figure{margin:1rem 0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5rem}
footer{color:#666;font-size:.8rem;margin-top:2rem}
"""


def fmt_count(value: object) -> str:
    """A count the French way (``1 594``), ``n.d.`` when missing."""
    return svg.format_fr(value, 0)


def page(title: str, body: str, *, css: str = CSS) -> str:
    """A complete HTML document (``lang="fr"``, UTF-8) around ``body``."""
    return (
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"pvdgeo {escape(__version__)}\">\n"
        f"<title>{escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    num_cols: Collection[int] = (),
    widths: Sequence[int] | None = None,
    css_class: str = "",
) -> str:
    """An HTML table: ``header`` is plain text, ``rows`` hold HTML cells.

    ``num_cols`` are right-aligned; ``widths`` (per cent) fix the column widths (use with
    ``css_class="fixed"``); a cell equal to ``"n.d."`` is styled as missing.
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    cols = ""
    if widths:
        cols = "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in widths)
        cols += "</colgroup>"
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="nd"' if cell == "n.d." else ' class="num"' if i in num_cols else ""
            cells.append(f"<td{cls}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    klass = f' class="{escape(css_class)}"' if css_class else ""
    return (f"<table{klass}>{cols}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def pivot(df: pd.DataFrame, columns: str, values: str, fmt: svg.Formatter, *,
          index: str = "groupe", first: str = "Groupe") -> str:
    """A long table shown wide: ``index`` values as rows, ``columns`` values as columns
    (both in order of appearance), cells ``fmt(values)``."""
    wide = df.pivot(index=index, columns=columns, values=values)
    wide = wide.loc[list(dict.fromkeys(df[index])), list(dict.fromkeys(df[columns]))]
    rows = [[escape(str(g)), *(fmt(v) for v in wide.loc[g])] for g in wide.index]
    return table([first, *map(str, wide.columns)], rows,
                 num_cols=range(1, len(wide.columns) + 1))
