"""The portrait written: the self-contained HTML page (:data:`PORTRAIT_SECTIONS`, one
renderer per section, A4 print stylesheet, :func:`render_portrait_html`) and the CSV files
(:func:`write_portrait`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from html import escape
from pathlib import Path

import pandas as pd

from geo import __version__, facility_trends, themes
from geo import _report as report
from geo import _svg as svg
from geo._io import atomic_path, write_text_atomic
from geo.portrait.build import Portrait
from geo.portrait.table import _BY_KEY, THEME_SOURCES
from geo.settings import Settings, get_settings

# --- writing the portrait -----------------------------------------------------------------

#: Extra style of the portrait: A4 print (one column, tables not cut, links spelled out).
PRINT_CSS = """
.synthese li{margin:.35rem 0}.synthese h3{margin-bottom:.3rem}
.fort h3{color:#009E73}.faible h3{color:#D55E00}
.downloads a{margin-right:1rem}
@page{size:A4;margin:14mm 12mm 16mm}
@media print{
body{background:#fff;font-size:10pt}main{max-width:none;padding:0}
h2{break-after:avoid;margin-top:1.2rem}h3{break-after:avoid}
table,figure,.card,li{break-inside:avoid}tr{break-inside:avoid}
figure{border:none;padding:0}.cards{grid-template-columns:repeat(3,1fr)}
details>summary{display:none}details{display:block}details>*{display:block}
.downloads a::after,.sources a::after{content:" (" attr(href) ")";font-size:8pt;color:#555}
a{color:#000;text-decoration:none}
}
"""


def _section_header(p: Portrait) -> str:
    c = p.card
    t = p.table.set_index("indicateur")
    growth = t.at["pop_croissance_2016_2023_pct", "valeur"]
    programme = {"aucun": "ni PVD ni ACV"}.get(c["programme"], c["programme"])
    facts = [
        ("Population 2023", report.fmt_count(c["population"]) + " hab."),
        ("Évolution 2016-2023", svg.format_fr(growth, 1, signed=True) + "\u202f%"
         if not svg.is_missing(growth) else "n.d."),
        ("Typologie", c.get("typologie") or "n.d."),
        ("Programme", programme),
        ("Centralité", c.get("centralite") or "n.d."),
        ("Densité", c.get("densite") or "n.d."),
    ]
    cards = "".join(f'<div class="card"><span>{escape(k)}</span><b>{escape(str(v))}</b></div>'
                    for k, v in facts)
    return (f"<header><h1>{escape(c['nom'])}</h1>"
            f"<p class=\"sub\">Commune {escape(p.insee)} · {escape(str(c['departement_nom']))} "
            f"({escape(str(c['departement']))}) · {escape(str(c['region_nom']))} · "
            f"{escape(str(c.get('epci_nom') or ''))}</p>"
            '<p class="downloads">Télécharger : <a href="portrait.csv">les indicateurs '
            '(CSV)</a><a href="portrait_pairs.csv">les communes comparables (CSV)</a></p>'
            f'</header><section class="cards">{cards}</section>')


def _section_synthesis(p: Portrait) -> str:
    dist = p.distinctions
    n_min = p.peers.min_count
    head = ('<section id="synthese" class="synthese"><h2>Ce qui distingue la commune</h2>'
            f"<p class=\"note\">Les indicateurs où la commune s'écarte le plus de ses "
            f"{report.fmt_count(len(p.peers.peers))} communes comparables, classés par l'écart "
            f"de son rang (percentile) à la médiane des pairs ; seulement ceux mesurés pour au "
            f"moins {n_min} pairs et dont le sens est clair (une APL plus haute ou un temps "
            "d'accès plus court est favorable ; population et occupation des sols ne sont ni "
            "forces ni faiblesses).</p>")
    if dist.empty:
        return head + ('<p class="nd">Aucun indicateur ne s\'écarte de la médiane des pairs '
                       f"(ou moins de {n_min} pairs ont une valeur).</p></section>")
    blocks = []
    for side, title in (("fort", "Points forts"), ("faible", "Points faibles")):
        items = dist[dist["cote"] == side]
        body = ("".join(f"<li>{escape(r)}</li>" for r in items["phrase"])
                or "<li class=\"nd\">aucun</li>")
        blocks.append(f'<div class="{side}"><h3>{title}</h3><ol>{body}</ol></div>')
    return head + "".join(blocks) + "</section>"


def _section_peers(p: Portrait) -> str:
    c, sel = p.card, p.peers
    klass = "warn" if sel.widened or sel.ignored else ""
    parts = [f'<section id="pairs"><h2>Communes comparables (pairs)</h2>'
             f'<p class="{klass}">{escape(sel.describe(c))}</p>']
    if sel.widened:
        tried = "".join(f"<li>{escape(r.describe(c))} : {n} commune(s)</li>"
                        for r, n in sel.steps)
        parts.append(f"<p>Règles essayées, dans l'ordre d'élargissement documenté :</p>"
                     f"<ol>{tried}</ol>")
    peer_rows = [
        (escape(r.nom), escape(r.insee), escape(f"{r.departement}"),
         report.fmt_count(r.population), escape(str(r.programme)), escape(str(r.centralite)),
         escape(str(r.densite)))
        for r in sel.peers.itertuples()
    ]
    peer_table = report.table(["Commune", "Code", "Dép.", "Population", "Programme",
                              "Centralité", "Densité"], peer_rows, num_cols=[3])
    if len(peer_rows) > 25:
        peer_table = (f"<details><summary>Voir les {len(peer_rows)} pairs (population la "
                      f"plus proche en premier)</summary>{peer_table}</details>")
    return "".join(parts) + peer_table + "</section>"


def _section_profile(p: Portrait) -> str:
    with_pct = p.table.dropna(subset=["percentile_pairs"])
    if not len(with_pct):
        return ""
    chart = svg.bar_chart(
        list(with_pct["libelle"]), list(with_pct["percentile_pairs"]),
        title="Rang de la commune parmi ses pairs (percentile, 50 = médiane des pairs)",
        fmt=lambda v: svg.format_fr(v, 0), domain=(0, 100), reference=50,
        reference_label="médiane des pairs",
    )
    return (f'<section id="profil"><h2>Profil</h2><figure>{chart}</figure>'
            "<p class=\"note\">Percentile : part des pairs ayant une valeur inférieure à celle "
            "de la commune, plus la moitié des ex æquo ; une commune à égalité avec la médiane "
            f"des pairs est à 50. Seulement les indicateurs mesurés pour au moins "
            f"{p.peers.min_count} pairs. Un rang élevé ne signifie pas toujours une situation "
            "favorable (ex. temps d'accès).</p></section>")


def _section_population(p: Portrait) -> str:
    c, h = p.card, p.history
    line = svg.line_chart(
        list(h["annee"]),
        {c["nom"]: list(h["commune"]), "Médiane des pairs": list(h["pairs_mediane"]),
         "France": list(h["france"])},
        title="Population légale, indice base 100 en 2016", fmt=lambda v: svg.format_fr(v, 0),
    )
    pop_rows = [(str(int(r.annee)), report.fmt_count(r.population), svg.format_fr(r.commune, 1),
                 svg.format_fr(r.pairs_mediane, 1), svg.format_fr(r.france, 1))
                for r in h.itertuples()]
    return (f'<section id="population"><h2>Population</h2><figure>{line}</figure>'
            + report.table(["Année", "Population", "Indice commune", "Indice médian des pairs",
                           "Indice France"], pop_rows, num_cols=[1, 2, 3, 4])
            + "<p class=\"note\">France : communes de métropole et des DROM ayant une "
              "population aux deux dates, comme les statistiques nationales par "
              "typologie.</p></section>")


def _section_indicators(p: Portrait) -> str:
    legend = ('<p class="legend">Distribution : <i style="background:#999"></i>pairs '
              f'<i style="background:{svg.PALETTE[1]}"></i>médiane des pairs '
              '<i style="background:#000"></i>France (pointillés) '
              f'<i style="background:{svg.PALETTE[0]};border-radius:50%"></i>commune</p>')
    parts = ['<section id="indicateurs"><h2>Indicateurs</h2>' + legend]
    notes = _notes(p)
    for theme, group in p.table.groupby("theme", sort=False):
        parts.append(f"<h3>{escape(str(theme))}</h3><p class=\"note\">Source : "
                     f"{escape(THEME_SOURCES[str(theme)])}</p>")
        if (group["valeur"].isna().all() and (group["n_pairs"] == 0).all()
                and (group["n_france"] == 0).all()):
            reasons = dict.fromkeys(group["note"])
            parts.append(f'<p class="nd">Aucune donnée pour ces {len(group)} indicateurs '
                         f"({escape(', '.join(group['libelle'].str.lower()))}) : "
                         f"{escape(' ; '.join(reasons))}.</p>")
            continue
        rows = []
        for r in group.itertuples():
            ind = _BY_KEY[r.indicateur]
            strip = svg.strip_chart(p.peer_values[r.indicateur], town=r.valeur,
                                    peer_median=r.mediane_pairs,
                                    national_median=r.valeur_france,
                                    title=ind.label, fmt=ind.format)
            value = ind.format(r.valeur)
            if r.note and svg.is_missing(r.valeur):
                n = notes[r.indicateur]
                value = (f'n.d.<sup><a href="#manque-{n}" title="{escape(r.note)}">{n}</a>'
                         "</sup>")
            if svg.is_missing(r.percentile_pairs):
                pct = (f'n.d.<br><span class="note">moins de {p.peers.min_count} pairs</span>'
                       if 0 < r.n_pairs < p.peers.min_count else "n.d.")
            else:
                pct = svg.format_fr(r.percentile_pairs, 0)
            rows.append((
                f"{escape(ind.label)}<br><span class=\"note\">{escape(ind.unit)}</span>",
                value,
                f"{ind.format(r.mediane_pairs)}<br><span class=\"note\">n = {r.n_pairs}</span>",
                pct,
                f"{ind.format(r.valeur_france)}<br><span class=\"note\">"
                f"{escape(r.reference_france)}, n = {report.fmt_count(r.n_france)}</span>",
                strip,
            ))
        parts.append(report.table(
            ["Indicateur", "Commune", "Médiane des pairs", "Percentile parmi les pairs",
             "France", "Distribution"], rows, num_cols=[1, 2, 3, 4],
            widths=[27, 14, 12, 10, 14, 23], css_class="fixed"))
    return "".join(parts) + "</section>"


def _section_facility_trend(p: Portrait) -> str:
    """The change of the town's offer between BPE vintages (issue 16), when available."""
    if p.facility_trend is None:
        return ""
    return facility_trends.render_portrait_section(p.facility_trend)


def _notes(p: Portrait) -> dict[str, int]:
    missing = p.table[(p.table["note"] != "") & p.table["valeur"].isna()]
    return {r.indicateur: i for i, r in enumerate(missing.itertuples(), start=1)}


def _section_missing(p: Portrait) -> str:
    notes = _notes(p)
    if not notes:
        return ""
    table = p.table.set_index("indicateur")
    items = "".join(f'<li id="manque-{n}">{escape(_BY_KEY[key].label)} : '
                    f"{escape(table.at[key, 'note'])}</li>" for key, n in notes.items())
    return (f'<section id="manquants"><h2>Données manquantes</h2><p>Ces indicateurs sont '
            f"absents pour la commune (jamais remplacés par zéro) :</p><ol>{items}</ol>"
            "</section>")


def _section_method(p: Portrait) -> str:
    c, sel = p.card, p.peers
    rows = [(escape(s["donnees"]), escape(s["producteur"]), escape(s["millesime"]),
             escape(s["licence"]),
             f'<a href="{escape(s["lien"])}">{escape(s["lien"])}</a>' if s["lien"] else "")
            for s in p.sources]
    sources = report.table(["Données", "Producteur", "Millésime", "Licence", "Lien"], rows)
    return (
        '<section id="methode"><h2>Méthode et sources</h2>'
        "<p>Pairs : communes partageant avec la commune les critères de la règle et dont la "
        "population légale 2023 est dans la fourchette indiquée. Si la règle donne moins de "
        f"{sel.min_count} communes, elle est élargie dans cet ordre : critères géographiques "
        "(région, département) retirés ; fourchette de population élargie (×0,5–×2 devient "
        "×0,25–×4) ; autres critères retirés un à un, du dernier au premier ; fourchette de "
        "population élargie à nouveau (×0,0625–×16) ; fourchette retirée.</p>"
        "<p>France : les communes de métropole et des DROM (le champ des statistiques "
        "nationales par typologie). Pour les indicateurs rapportés à la population (APL, "
        "équipements pour 10 000 habitants), la valeur France est la moyenne pondérée par la "
        "population légale 2023, c'est-à-dire le ratio national ; pour l'évolution de la "
        "population, l'évolution d'ensemble ; pour les autres, la médiane des communes ayant "
        "une valeur. Les indicateurs calculés sur le réseau de rues ou l'occupation des sols "
        "n'existent que pour les communes traitées : leurs références portent sur ces seules "
        "communes.</p>"
        f'<h3>Sources et licences</h3><div class="sources">{sources}</div>'
        "<p class=\"note\">Licence Ouverte 2.0 (Etalab) : réutilisation libre, y compris "
        "commerciale, en citant la source. ODbL 1.0 (OpenStreetMap) : citer « © les "
        "contributeurs OpenStreetMap » et partager à l'identique les bases dérivées.</p>"
        "</section>"
        f"<footer>Généré par pvdgeo {escape(__version__)} le {escape(p.built)} · "
        f"COG {escape(str(c.get('cog_year', '')))}</footer>"
    )


def _section_themes(p: Portrait) -> str:
    """The Data Territoria themes (:mod:`geo.themes`), one section each; a theme whose
    files are not downloaded says so."""
    return themes.render_portrait_sections(p.theme_sections)


#: The portrait's sections, in page order: ``(id, render)``. Add a section by inserting
#: a pair here (or pass ``sections`` to :func:`render_portrait_html`).
PORTRAIT_SECTIONS: tuple[tuple[str, Callable[[Portrait], str]], ...] = (
    ("entete", _section_header),
    ("synthese", _section_synthesis),
    ("pairs", _section_peers),
    ("profil", _section_profile),
    ("population", _section_population),
    ("indicateurs", _section_indicators),
    ("evolution_equipements", _section_facility_trend),
    ("themes", _section_themes),  # issue 15: one section per Data Territoria theme
    ("manquants", _section_missing),
    ("methode", _section_method),
)


def render_portrait_html(
    p: Portrait, *,
    sections: Iterable[tuple[str, Callable[[Portrait], str]]] = PORTRAIT_SECTIONS,
) -> str:
    """The portrait as one self-contained French HTML page (inline CSS and SVG), printable
    on A4; ``sections`` in order (default :data:`PORTRAIT_SECTIONS`)."""
    body = "\n".join(part for _, render in sections if (part := render(p)))
    title = f"Portrait de {p.card['nom']} ({p.insee})"
    return report.page(title, body, css=report.CSS + PRINT_CSS)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    return path


def write_portrait(p: Portrait, out_dir: Path | None = None, *,
                   settings: Settings | None = None) -> list[Path]:
    """Write ``portrait.html``, ``portrait.csv``, ``portrait_pairs.csv``, with the
    facility trends ``portrait_evolution_equipements.csv`` and with the Data Territoria
    themes ``portrait_themes.csv`` (:mod:`geo.themes`).

    Default folder: ``data/out/<insee>/``. Returns the paths written.
    """
    s = settings or get_settings()
    folder = Path(out_dir) if out_dir is not None else s.town_dir(p.insee)
    html = folder / "portrait.html"
    write_text_atomic(html, render_portrait_html(p))
    table = p.table.copy()
    table.insert(0, "insee", p.insee)
    paths = [html, _write_csv(table, folder / "portrait.csv")]
    peers = p.peers.peers.copy()
    peers.insert(0, "insee_commune", p.insee)
    peers["regle"] = p.peers.applied.describe()
    paths.append(_write_csv(peers, folder / "portrait_pairs.csv"))
    if p.facility_trend is not None:
        paths.append(facility_trends.write_town_trend(
            p.facility_trend, folder / "portrait_evolution_equipements.csv"))
    if p.theme_sections:
        paths.append(themes.write_portrait_sections(p.theme_sections,
                                                    folder / "portrait_themes.csv", p.insee))
    return paths
