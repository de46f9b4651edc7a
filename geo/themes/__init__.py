"""The other Data Territoria themes: jobs, housing, commuting, higher education,
demography, energy.

One module per theme (source reader, converter into the mirror layout, table builder,
indicators), on the shared machinery of :mod:`geo.themes._base`:

=====================  ====================================================================
``emploi``             private-sector jobs and their change (Urssaf)
``logement``           housing prices per m² and their change (DVF, geo-dvf)
``mobilite``           commuting modes, residents working in their commune (INSEE MOBPRO)
``etudiants``          higher-education enrolments (ministère de l'Enseignement supérieur)
``demographie``        natural and migratory balance (INSEE séries historiques)
``energie_production`` renewable electricity production (ODRÉ registre des installations)
``energie_consommation`` electricity and gas consumption (Agence ORE)
=====================  ====================================================================

This module puts them in the outputs: the theme status (:func:`status`: downloaded or
missing, and the ``pvdgeo fetch`` command), the national statistics by typology
(:func:`typology_table`, :func:`write_typology_themes`), the town portrait's sections
(:func:`portrait_sections`, :func:`render_portrait_sections`) and the dashboard's
indicators (:data:`DASHBOARD_INDICATORS`, :func:`indicator_table`). A theme whose files
are not downloaded is reported as missing input everywhere, never as zero.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo import _report as report
from geo import _svg as svg
from geo import communes
from geo._io import atomic_path, write_text_atomic
from geo.errors import GeoError, UnknownDatasetError, did_you_mean
from geo.settings import Settings, get_settings
from geo.themes import (
    demographie,
    emploi,
    energie_consommation,
    energie_production,
    etudiants,
    logement,
    mobilite,
)
from geo.themes._base import (
    MissingInputError,
    Theme,
    ThemeIndicator,
    available_vintages,
    catalogue_datasets,
    commune_table,
    evaluate_group,
    fetch_command,
    table_path,
)

__all__ = [
    "DASHBOARD_INDICATORS",
    "DASHBOARD_THEMES",
    "THEMES",
    "MissingInputError",
    "Theme",
    "ThemeIndicator",
    "ThemeSection",
    "build_available",
    "commune_table",
    "dashboard_indicators",
    "dashboard_source",
    "dashboard_specs",
    "get_theme",
    "indicator_table",
    "national_inputs",
    "portrait_sections",
    "render_portrait_sections",
    "render_typology_section",
    "section_datasets",
    "status",
    "typology_table",
    "write_portrait_sections",
    "write_typology_themes",
]

log = logging.getLogger(__name__)

#: The themes, in report order.
THEMES: tuple[Theme, ...] = (
    emploi.THEME, logement.THEME, mobilite.THEME, etudiants.THEME, demographie.THEME,
    energie_production.THEME, energie_consommation.THEME,
)
_BY_KEY = {t.key: t for t in THEMES}
#: Group of the dashboard's indicator tree of each theme (French).
DASHBOARD_GROUPS = {
    "emploi": "Emploi", "logement": "Logement", "mobilite": "Mobilité",
    "etudiants": "Enseignement supérieur", "demographie": "Population",
    "energie_production": "Énergie", "energie_consommation": "Énergie",
}


def get_theme(key: str) -> Theme:
    """The theme ``key`` (:class:`geo.errors.UnknownDatasetError` with the closest keys
    otherwise)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise UnknownDatasetError(f"unknown theme {key!r}{did_you_mean(key, _BY_KEY)}; "
                                  f"themes: {', '.join(_BY_KEY)}") from None


def _period(ind: ThemeIndicator, meta: dict[str, Any]) -> str:
    debut, fin = str(meta.get("debut") or ""), str(meta.get("fin") or "")
    if ind.when == "debut":
        return debut
    if ind.when == "fin":
        return fin
    return f"{debut} → {fin}" if debut else ""


# --- status and tables -------------------------------------------------------------------


def status(settings: Settings | None = None) -> pd.DataFrame:
    """One row per theme: ``theme, titre, statut`` (``disponible``, ``partiel``: some
    vintages missing, ``manquant``), ``jeux`` (catalogue ids), ``telecharges``,
    ``manquants`` and ``commande`` (``pvdgeo fetch`` of the missing ones)."""
    s = settings or get_settings()
    rows = []
    for theme in THEMES:
        ids = [d.id for d in catalogue_datasets(theme, s)]
        have = [v.dataset for v in available_vintages(theme, s)]
        missing = [i for i in ids if i not in have]
        state = "manquant" if not have else "partiel" if missing else "disponible"
        rows.append({"theme": theme.key, "titre": theme.title, "statut": state,
                     "jeux": " ".join(ids), "telecharges": " ".join(have),
                     "manquants": " ".join(missing),
                     "commande": fetch_command(theme, s)})
    return pd.DataFrame(rows)


def build_available(settings: Settings | None = None,
                    keys: Sequence[str] | None = None) -> list[Path]:
    """Build (or check) the national table of every theme whose files are downloaded
    (or of ``keys``: a missing one raises :class:`MissingInputError`); returns the
    tables' paths. Run before a portrait's fingerprint: a portrait never depends on
    whether another command happened to build a table first."""
    s = settings or get_settings()
    chosen = [get_theme(k) for k in keys] if keys else list(THEMES)
    paths = []
    for theme in chosen:
        if not keys and not available_vintages(theme, s):
            continue
        commune_table(theme, s)
        paths.append(table_path(theme, s))
    return paths


def national_inputs(settings: Settings | None = None) -> list[Path]:
    """Every theme table (and side table) a portrait may read, present or not."""
    s = settings or get_settings()
    out = []
    for theme in THEMES:
        out.append(table_path(theme, s))
        out += [s.interim_dir / name for name in theme.side_tables]
    return out


def _table_or_none(theme: Theme, s: Settings) -> tuple[pd.DataFrame | None, str]:
    try:
        return commune_table(theme, s), ""
    except MissingInputError as exc:
        return None, str(exc)
    except GeoError as exc:  # an unreadable file: reported, the other themes go on
        log.warning("theme %s unavailable: %s", theme.key, exc)
        return None, str(exc)


def indicator_table(settings: Settings | None = None) -> pd.DataFrame:
    """Every theme indicator per current commune (index ``insee``; the columns of a
    theme without files are all missing), for the dashboard. ``attrs["status"]``: the
    :func:`status` table; ``attrs["periods"]``: each indicator's vintage text."""
    s = settings or get_settings()
    ref = communes.load_reference(s)
    out = pd.DataFrame(index=pd.Index(ref["insee"], name="insee"))
    periods = {}
    for theme in THEMES:
        table, _ = _table_or_none(theme, s)
        meta = table.attrs.get("meta", {}) if table is not None else {}
        for ind in theme.indicators:
            out[ind.key] = (table[ind.key].reindex(out.index).astype("float64")
                            if table is not None else np.nan)
            periods[ind.key] = _period(ind, meta)
    out.attrs["status"] = status(s)
    out.attrs["periods"] = periods
    return out


# --- national statistics by typology --------------------------------------------------------

TYPOLOGY_COLUMNS = ["groupe", "theme", "indicateur", "libelle", "unite", "millesime",
                    "calcul", "communes_groupe", "communes", "valeur", "mediane_communes"]


def _rule(ind: ThemeIndicator) -> str:
    if ind.pooled:
        return "médiane de toutes les ventes"
    if ind.of is not None:
        return "écart" if ind.op == "diff" else "évolution relative"
    if ind.years is not None:
        return "taux annuel moyen des sommes"
    return "somme" if ind.den is None else "rapport des sommes"


def typology_table(theme: Theme, settings: Settings | None = None, *,
                   table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The theme's indicators by group (petite ville, ville moyenne, grande ville, PVD,
    ACV, France: :func:`geo.communes.typology_groups`): the group's value (the rule of
    :func:`geo.themes._base.evaluate_group`, named in ``calcul``), the communes with a
    value and the median over them (columns :data:`TYPOLOGY_COLUMNS`)."""
    s = settings or get_settings()
    data = commune_table(theme, s) if table is None else table
    meta = data.attrs.get("meta", {})
    ref = communes.load_reference(s)
    data = data.reindex(ref["insee"])
    data.attrs = {}  # pandas deep-copies attrs on every operation
    values = {ind.key: data[ind.key].to_numpy(dtype="float64", na_value=np.nan)
              for ind in theme.indicators}
    rows = []
    for name, mask in communes.typology_groups(ref).items():
        m = mask.to_numpy()
        for ind in theme.indicators:
            value, n = evaluate_group(theme, ind, data, m, s)
            vals = values[ind.key][m]
            vals = vals[~np.isnan(vals)]
            rows.append({"groupe": name, "theme": theme.key, "indicateur": ind.key,
                         "libelle": ind.label, "unite": ind.unit,
                         "millesime": _period(ind, meta), "calcul": _rule(ind),
                         "communes_groupe": int(m.sum()), "communes": n, "valeur": value,
                         "mediane_communes": float(np.median(vals)) if vals.size else np.nan})
    return pd.DataFrame(rows, columns=TYPOLOGY_COLUMNS)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    return path


def _chart(theme: Theme, typo: pd.DataFrame) -> str:
    ind = theme.indicator(theme.headline)
    part = typo[typo["indicateur"] == ind.key]
    millesime = str(part["millesime"].iloc[0]) if len(part) else ""
    return svg.bar_chart(list(part["groupe"]), [svg.to_float(v) for v in part["valeur"]],
                         title=f"{ind.label} ({millesime})" if millesime else ind.label,
                         fmt=ind.format)


def _vintages_text(meta: dict[str, Any]) -> str:
    """The vintages of a theme table, as HTML text (``mutations 2021 ; mutations 2025``)."""
    return " ; ".join(escape(v.get("vintage") or v["label"]) for v in meta.get("vintages", []))


def _missing_html(theme: Theme, reason: str, command: str, *, tag: str = "section",
                  level: str = "h2") -> str:
    cmd = (f" Pour la calculer, télécharger les fichiers : <code>{escape(command)}</code>."
           if command else "")
    return (f'<{tag} id="theme-{theme.key}"><{level}>{escape(theme.title)}</{level}>'
            f'<p class="warn">Donnée manquante : les fichiers sources ({escape(theme.source)}) '
            f"ne sont pas disponibles ; aucun chiffre n'est calculé (ni remplacé par zéro)."
            f"{cmd}</p><p class=\"note\">{escape(reason)}</p></{tag}>")


def render_typology_section(theme: Theme, typo: pd.DataFrame, meta: dict[str, Any],
                            chart: str) -> str:
    """The theme's French HTML section of the typology page."""
    groups = list(dict.fromkeys(typo["groupe"]))
    header = ["Indicateur", "Millésime", *groups]
    rows = []
    for ind in theme.indicators:
        part = typo[typo["indicateur"] == ind.key].set_index("groupe")
        rows.append([f"{escape(ind.label)}<br><span class=\"note\">{escape(ind.unit)} · "
                     f"{escape(_rule(ind))}</span>",
                     escape(str(part["millesime"].iloc[0])),
                     *(ind.format(part.at[g, "valeur"]) for g in groups)])
    notes = "".join(f"<li>{escape(n)}</li>" for n in meta.get("notes", []))
    vint = _vintages_text(meta)
    return (f'<section id="theme-{theme.key}"><h2>{escape(theme.title)}</h2>'
            f"<figure>{chart}</figure>"
            + report.table(header, rows, num_cols=range(2, len(header)))
            + f'<p class="note">Source : {escape(theme.source)} ({vint}). Valeur d\'un groupe : '
            "calculée sur les sommes de ses communes (ou toutes ses ventes pour les prix) ; "
            f"médianes des communes et effectifs dans typologie_{theme.key}.csv.</p>"
            f'<ul class="note">{notes}</ul></section>')


def write_typology_themes(out_dir: Path, *, settings: Settings | None = None
                          ) -> tuple[list[Path], list[str]]:
    """Write ``typologie_themes.csv`` (the status of every theme), and for each theme
    with files ``typologie_<key>.csv`` and its chart ``typologie_<key>.svg`` into
    ``out_dir``; returns the paths and the HTML sections of the typology page (a theme
    without files: a section saying so)."""
    s = settings or get_settings()
    out = Path(out_dir)
    states = status(s)
    paths = [_write_csv(states, out / "typologie_themes.csv")]
    html = []
    for theme, state in zip(THEMES, states.itertuples(), strict=True):
        table, reason = _table_or_none(theme, s)
        if table is None:
            html.append(_missing_html(theme, reason, str(state.commande)))
            continue
        typo = typology_table(theme, s, table=table)
        paths.append(_write_csv(typo, out / f"typologie_{theme.key}.csv"))
        chart = _chart(theme, typo)
        chart_path = out / f"typologie_{theme.key}.svg"
        write_text_atomic(chart_path, '<?xml version="1.0" encoding="utf-8"?>\n' + chart + "\n")
        paths.append(chart_path)
        html.append(render_typology_section(theme, typo, table.attrs.get("meta", {}), chart))
    return paths, html


# --- the town portrait -------------------------------------------------------------------------

SECTION_COLUMNS = ["theme", "indicateur", "libelle", "unite", "millesime", "valeur",
                   "mediane_pairs", "n_pairs", "percentile_pairs", "valeur_pairs",
                   "valeur_france", "mediane_france", "n_france", "note", "source"]


@dataclass
class ThemeSection:
    """A theme's section of a town portrait: the town, its peers and France."""

    theme: Theme
    #: ``disponible`` or ``manquant`` (no file of the theme downloaded).
    state: str
    #: One row per indicator (:data:`SECTION_COLUMNS`); empty when missing.
    table: pd.DataFrame
    peer_values: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: Why the theme is missing and the command that downloads its files.
    reason: str = ""
    command: str = ""


def _section(theme: Theme, insee: str, peers: Sequence[str], s: Settings,
             ref: pd.DataFrame, france: np.ndarray) -> ThemeSection:
    from geo.portrait import percentile_rank  # late: geo.portrait imports geo.themes

    table, reason = _table_or_none(theme, s)
    if table is None:
        return ThemeSection(theme, "manquant", pd.DataFrame(columns=SECTION_COLUMNS),
                            reason=reason, command=fetch_command(theme, s))
    meta = table.attrs.get("meta", {})
    data = table.reindex(ref["insee"])
    data.attrs = {}  # pandas deep-copies attrs on every operation
    peer_rows = data.index.isin([p for p in peers if p != insee])
    rows, peer_values = [], {}
    for ind in theme.indicators:
        value = svg.to_float(data.at[insee, ind.key]) if insee in data.index else None
        pv = data.loc[peer_rows, ind.key].dropna().to_numpy()
        nat = data.loc[france, ind.key].dropna()
        peer_values[ind.key] = pv
        agg_peers, _ = evaluate_group(theme, ind, data, peer_rows, s)
        agg_france, _ = evaluate_group(theme, ind, data, france, s)
        rows.append({
            "theme": theme.key, "indicateur": ind.key, "libelle": ind.label,
            "unite": ind.unit, "millesime": _period(ind, meta), "valeur": value,
            "mediane_pairs": float(np.median(pv)) if pv.size else np.nan,
            "n_pairs": int(pv.size), "percentile_pairs": percentile_rank(value, pv),
            "valeur_pairs": np.nan if ind.count else agg_peers,
            "valeur_france": agg_france,
            "mediane_france": float(nat.median()) if len(nat) else np.nan,
            "n_france": len(nat),
            "note": "" if value is not None else theme.missing_note,
            "source": theme.source,
        })
    out = pd.DataFrame(rows, columns=SECTION_COLUMNS)
    out["percentile_pairs"] = out["percentile_pairs"].astype(float)
    return ThemeSection(theme, "disponible", out, peer_values, meta)


def portrait_sections(insee: str, peers: Iterable[str], *,
                      settings: Settings | None = None) -> list[ThemeSection]:
    """The town's section of every theme (missing themes included, marked so)."""
    s = settings or get_settings()
    ref = communes.load_reference(s)
    france = communes.typology_groups(ref)["France"].to_numpy()
    peer_list = list(peers)
    return [_section(t, insee, peer_list, s, ref, france) for t in THEMES]


def section_datasets(sections: Iterable[ThemeSection]) -> list[str]:
    """The catalogue ids of the files the available sections were built from (for the
    portrait's table of sources and licences)."""
    return list(dict.fromkeys(str(v["dataset"]) for sec in sections
                              if sec.state == "disponible"
                              for v in sec.meta.get("vintages", [])))


def _render_section(sec: ThemeSection) -> str:
    theme = sec.theme
    if sec.state != "disponible":
        return _missing_html(theme, sec.reason, sec.command)
    rows = []
    missing = False
    for r in sec.table.itertuples():
        ind = theme.indicator(str(r.indicateur))
        strip = svg.strip_chart(sec.peer_values[ind.key], town=r.valeur,
                                peer_median=r.mediane_pairs,
                                national_median=r.mediane_france, title=ind.label,
                                fmt=ind.format)
        value = ind.format(r.valeur)
        if r.note:
            value = f'n.d.<sup title="{escape(str(r.note))}">*</sup>'
            missing = True
        pct = "n.d." if svg.is_missing(r.percentile_pairs) else svg.format_fr(
            r.percentile_pairs, 0)
        rows.append([
            f"{escape(ind.label)}<br><span class=\"note\">{escape(ind.unit)} · "
            f"{escape(str(r.millesime))}</span>",
            value,
            f"{ind.format(r.mediane_pairs)}<br><span class=\"note\">n = {r.n_pairs}</span>",
            pct,
            "–" if ind.count else ind.format(r.valeur_pairs),
            f"{'total ' if ind.count else ''}{ind.format(r.valeur_france)}<br>"
            f"<span class=\"note\">médiane {ind.format(r.mediane_france)}</span>",
            strip,
        ])
    vint = _vintages_text(sec.meta)
    notes = " ".join(escape(n) for n in sec.meta.get("notes", []))
    return (f'<section id="theme-{theme.key}"><h2>{escape(theme.title)}</h2>'
            f'<p class="note">Source : {escape(theme.source)} ({vint}).</p>'
            + report.table(["Indicateur", "Commune", "Médiane des pairs",
                            "Percentile parmi les pairs", "Ensemble des pairs", "France",
                            "Distribution"], rows, num_cols=[1, 2, 3, 4, 5],
                           widths=[26, 13, 12, 9, 11, 13, 16], css_class="fixed")
            + (f'<p class="note">* n.d. : {escape(theme.missing_note)} ; jamais remplacé par '
               "zéro.</p>" if missing else "")
            + f'<p class="note">Ensemble des pairs et France : valeur calculée sur les '
            f"sommes de leurs communes (prix : toutes leurs ventes) ; France : métropole et "
            f"DROM. {notes}</p></section>")


def render_portrait_sections(sections: Sequence[ThemeSection]) -> str:
    """The portrait's French HTML sections, one per theme (missing themes say so)."""
    return "\n".join(_render_section(sec) for sec in sections)


def write_portrait_sections(sections: Sequence[ThemeSection], path: Path,
                            insee: str) -> Path:
    """Every theme's rows as CSV (``portrait_themes.csv``); a missing theme is one row
    with ``statut`` manquant and the command that downloads its files."""
    frames = []
    for sec in sections:
        if sec.state == "disponible":
            frames.append(sec.table.assign(statut="disponible", commande=""))
        else:
            frames.append(pd.DataFrame([{
                "theme": sec.theme.key, "libelle": sec.theme.title, "note": sec.reason,
                "source": sec.theme.source, "statut": "manquant", "commande": sec.command}]))
    table = pd.concat(frames, ignore_index=True).reindex(
        columns=[*SECTION_COLUMNS, "statut", "commande"])
    table.insert(0, "insee", insee)
    return _write_csv(table, path)


# --- the dashboard -------------------------------------------------------------------------------


def dashboard_indicators() -> list[tuple[str, str, str, str, str, bool | None]]:
    """``(key, French label, unit, theme, source dataset id, higher_is_better)`` of every
    theme indicator, for the dashboard's indicator tree (theme: the tree's group, see
    :data:`DASHBOARD_GROUPS`; dataset: the latest vintage's catalogue id)."""
    out = []
    for theme in THEMES:
        dataset = theme.dataset_ids[-1]
        group = f"{DASHBOARD_GROUPS[theme.key]} › {theme.title}"
        for ind in theme.indicators:
            ds = theme.dataset_ids[0] if ind.when == "debut" else dataset
            out.append((ind.key, ind.label, ind.unit, group, ds, ind.higher_is_better))
    return out


#: :func:`dashboard_indicators`, computed once.
DASHBOARD_INDICATORS = dashboard_indicators()
#: The dashboard tree's branches of the themes: ``(key, French label, description)``.
DASHBOARD_THEMES: tuple[tuple[str, str, str], ...] = tuple(
    (t.key, t.title, f"{t.source}.") for t in THEMES)


def dashboard_specs() -> list[dict[str, Any]]:
    """Keyword arguments of the dashboard's indicator declaration for every theme
    indicator: ``key, label, unit, theme`` (the theme key, a branch of
    :data:`DASHBOARD_THEMES`), ``digits, percent, signed``, ``sens`` (``plus`` when
    higher is better, ``moins`` when lower is, ""), ``tables`` (the source table
    ``theme_<key>`` read by :func:`dashboard_source`) and ``sources`` (dataset ids)."""
    out = []
    for theme in THEMES:
        for ind in theme.indicators:
            better = ind.higher_is_better
            sens = "" if better is None else "plus" if better else "moins"
            out.append({"key": ind.key, "label": ind.label, "unit": ind.unit,
                        "theme": theme.key, "digits": ind.digits, "percent": ind.percent,
                        "signed": ind.signed, "sens": sens, "tables": (f"theme_{theme.key}",),
                        "sources": tuple(theme.dataset_ids)})
    return out


def dashboard_source(key: str, settings: Settings | None = None
                     ) -> tuple[pd.DataFrame, tuple[str, ...], dict[str, str]]:
    """A theme's table for the dashboard: its indicators (index ``insee``), the datasets
    it was built from and each indicator's vintage text (``2014 → 2024``). Raises
    :class:`MissingInputError` when the theme's files are not downloaded (the dashboard
    then shows its indicators as missing)."""
    s = settings or get_settings()
    theme = get_theme(key)
    table = commune_table(theme, s)
    meta = table.attrs.get("meta", {})
    frame = table[[i.key for i in theme.indicators]].astype("float64")
    frame.attrs = {}
    datasets = tuple(str(v["dataset"]) for v in meta.get("vintages", []))
    notes = {i.key: _period(i, meta) for i in theme.indicators}
    return frame, datasets, notes
