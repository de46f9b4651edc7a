"""The national dashboard table: one row per commune, the site's indicators by theme.

Registry
--------
Everything the dashboard shows is declared once, here:

- :data:`THEMES`: the themes of the indicator tree, in order (key, French label, what
  the theme covers);
- :data:`SOURCE_TABLES`: the national commune tables the indicators come from, each a
  reader ``settings -> SourceData`` (a frame indexed by ``insee`` and the catalogue
  datasets of its columns); :func:`interim_table` makes one for a table of
  ``data/interim/``. A table that cannot be read (not built, no source) leaves
  its indicators missing, never zero, and the reason is kept (:attr:`Dashboard.missing`);
- :data:`INDICATORS`: one :class:`DashboardIndicator` per indicator: key (the column
  name of the table, the CSV and the site), French label and unit, theme, the source
  tables to read it from (in order: the first with a value wins, as the portrait fills
  the national tables with the towns' own runs), the catalogue datasets (default: those
  the source table reports for the column), whether higher is better (``sens``), display
  (digits, per cent), ``headline`` (shown first in the town panel) and the H3 cell field
  drawn at street scale.

Adding an indicator is adding a :class:`DashboardIndicator` to :data:`INDICATORS` (and,
for a new national table, a reader to :data:`SOURCE_TABLES`; for a new theme, a
:class:`Theme` to :data:`THEMES`); the site, the CSV, the classes and the peer
comparison pick it up.

Universe and comparisons
------------------------
"France" is the universe of ``pvdgeo typology-stats``: mainland France and the DROM
(:func:`geo.communes.typology_groups`). National medians and legend classes
(:func:`indicator_classes`, the quantile rule of :mod:`geo.export.classes`) are computed
over its communes with a value. A town's peers are :func:`geo.portrait.find_peers`'s;
its percentile among them :func:`geo.portrait.percentile_rank`, given only when at least
``settings.peer_min_count`` peers have a value; "what distinguishes the town" is
:func:`geo.portrait.distinguishing_indicators` of that comparison
(:func:`compare_towns`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from geo import (
    communes,
    facilities,
    facility_trends,
    indicators,
    national,
    portrait,
    themes,
    vocab,
)
from geo._categories import load_categories
from geo._io import read_parquet_metadata
from geo.errors import GeoError, InputFileError, MissingColumnsError, SettingsError
from geo.export.classes import ClassRule, class_breaks, graduated_classes
from geo.portrait import Indicator, PeerSelection
from geo.settings import Settings, get_settings

__all__ = [
    "CARD_COLUMNS",
    "INDICATORS",
    "SOURCE_TABLES",
    "THEMES",
    "Dashboard",
    "DashboardIndicator",
    "IndicatorClasses",
    "SourceData",
    "SourceTable",
    "Theme",
    "TownComparison",
    "build_dashboard",
    "compare_towns",
    "dashboard_table",
    "indicator_classes",
    "interim_table",
    "national_medians",
    "read_source_tables",
    "universe_mask",
]

log = logging.getLogger(__name__)


# --- registry: themes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Theme:
    """A branch of the indicator tree."""

    key: str
    label: str
    #: What the theme covers and where its figures come from (French, one sentence).
    description: str = ""


THEMES: tuple[Theme, ...] = (
    Theme("population", "Population",
          "Populations légales INSEE 2016 à 2023, communes du COG 2026."),
    Theme("sante", "Santé et accès aux soins",
          "Accessibilité potentielle localisée (DREES) et équipements de santé (BPE)."),
    Theme("commerces", "Commerces",
          "Commerces pour 10 000 habitants (BPE) et part des commerces appartenant à une "
          "chaîne (BPE géolocalisée, ou OpenStreetMap pour les communes traitées)."),
    Theme("culture", "Culture",
          "Lieux et événements culturels (« vivant » : cinémas, théâtres, musées, "
          "festivals) et patrimoine (OpenStreetMap des communes traitées seulement)."),
    Theme("education", "Éducation", "Établissements scolaires et crèches (BPE)."),
    Theme("services", "Services et France services",
          "Services publics et aux particuliers (BPE), France services labellisées (ANCT)."),
    Theme("energie", "Énergie", "Éoliennes terrestres en service (Géorisques)."),
    Theme("occupation_sols", "Occupation des sols",
          "Parts CORINE Land Cover, là où l'occupation des sols a été calculée."),
    Theme("acces_pied", "Accès à pied",
          "Réseau de rues des communes traitées (pvdgeo) : part de la population à moins "
          "de 10 minutes à pied et temps médian."),
    Theme("acces_velo", "Accès à vélo",
          "Réseau de rues des communes traitées (pvdgeo) : part de la population à moins "
          "de 15 minutes à vélo et temps médian."),
    Theme("evolution_equipements", "Évolution des équipements",
          "Évolution du nombre d'équipements pour 10 000 habitants entre le premier et le "
          "dernier millésime de la BPE disponibles, sur un champ constant de types."),
    # the Data Territoria themes of geo.themes (emploi, logement, mobilité...)
    *(Theme(key, label, description) for key, label, description in themes.DASHBOARD_THEMES),
)
_THEME_KEYS = {t.key for t in THEMES}


# --- registry: source tables ----------------------------------------------------------------


@dataclass(frozen=True)
class SourceData:
    """A national commune table as read for the dashboard."""

    #: One row per commune, index ``insee``.
    frame: pd.DataFrame
    #: Catalogue datasets of the whole table.
    datasets: tuple[str, ...] = ()
    #: Catalogue datasets of particular columns (override ``datasets``).
    column_datasets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: French notes on particular columns (vintages compared, partial coverage).
    notes: Mapping[str, str] = field(default_factory=dict)

    def datasets_of(self, column: str) -> tuple[str, ...]:
        """The catalogue datasets ``column`` comes from."""
        return tuple(self.column_datasets.get(column, self.datasets))


@dataclass(frozen=True)
class SourceTable:
    """A national commune table the dashboard reads."""

    key: str
    #: What it is and how to build it (English, for logs and missing-input messages).
    description: str
    read: Callable[[Settings], SourceData]


def _per_10k(n: pd.Series, population: pd.Series) -> pd.Series:
    """Per 10,000 inhabitants, as the national facility counts compute it (empty without
    a population)."""
    pop = pd.to_numeric(population, errors="coerce").astype("float64")
    return (pd.to_numeric(n, errors="coerce").astype("float64") * (10_000 / pop.where(pop > 0))
            ).round(3)


def _with_groups(frame: pd.DataFrame, settings: Settings,
                 datasets: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """``frame`` with ``n_<category>_<group>`` and ``_per_10k`` added: the sum of the
    group's subcategories that have a value (as category totals leave out subcategories
    no source measures), empty when none of them has one."""
    cats = load_categories(settings)
    extra: dict[str, pd.Series] = {}
    for cat, groups in cats.groups.items():
        for group in groups:
            cols = [f"n_{k}" for k, sub in cats.subcategories.items()
                    if sub.category == cat and sub.group == group and f"n_{k}" in frame]
            if not cols:
                continue
            values = frame[cols].apply(pd.to_numeric, errors="coerce").astype("float64")
            key = f"n_{cat}_{group}"
            extra[key] = values.sum(axis=1, min_count=1)
            if "population" in frame:
                extra[f"{key}_per_10k"] = _per_10k(extra[key], frame["population"])
            if datasets is not None:
                ids = tuple(dict.fromkeys(d for c in cols for d in datasets.get(c, ())))
                datasets[key] = datasets[f"{key}_per_10k"] = ids
    return frame.join(pd.DataFrame(extra, index=frame.index)) if extra else frame


def _read_population(s: Settings) -> SourceData:
    ref = communes.load_reference(s).set_index("insee")
    pop16, pop23 = ref["pop_2016"].astype(float), ref["pop_2023"].astype(float)
    frame = pd.DataFrame({
        "population": ref["population"].astype(float),
        # the portrait's growth rule (geo.portrait.indicator_table)
        "pop_croissance_2016_2023_pct": (pop23 / pop16.where(pop16 > 0) - 1) * 100,
    }, index=ref.index)
    return SourceData(frame, datasets=("populations",))


def _read_apl(s: Settings) -> SourceData:
    frame = indicators.apl_by_commune(s).set_index("insee")
    return SourceData(frame, column_datasets={p.field: (p.dataset,)
                                              for p in vocab.APL_PROFESSIONS})


def _read_facilities(s: Settings) -> SourceData:
    table = facilities.facilities_by_commune(s)
    # the cached table carries its metadata in the Parquet file, not in attrs
    meta = dict(table.attrs.get("meta") or
                read_parquet_metadata(s.interim_dir / facilities.COUNTS_FILE))
    frame = table.set_index("insee").drop(columns=["nom"])
    frame.attrs = {}
    cats = load_categories(s)
    by_sub: dict[str, tuple[str, ...]] = {
        k: (str(v),) for k, v in meta.get("sources_by_subcategory", {}).items()}
    datasets: dict[str, tuple[str, ...]] = {}
    for key, sub_ids in by_sub.items():
        datasets[f"n_{key}"] = datasets[f"n_{key}_per_10k"] = sub_ids
    for cat in cats.category_labels:
        ids = tuple(dict.fromkeys(d for k in cats.subcategory_keys(cat) for d in
                                  by_sub.get(k, ())))
        datasets[f"n_{cat}"] = datasets[f"n_{cat}_per_10k"] = ids
    datasets["eolienne_power_mw"] = by_sub.get("eolienne", ("eoliennes",))
    datasets["commerces_chain_share"] = ("bpe_xy",)
    frame = _with_groups(frame, s, datasets)
    return SourceData(frame, datasets=(str(meta.get("bpe", "bpe_2013_counts")),),
                      column_datasets=datasets)


def interim_table(key: str, filename: str, description: str, *,
                  datasets: tuple[str, ...] = (), datasets_metadata: str = "") -> SourceTable:
    """A source table read from ``data/interim/<filename>`` (a national commune table
    with an ``insee`` column): the simplest way to add a theme's table to
    :data:`SOURCE_TABLES`. ``datasets``: its catalogue datasets, or ``datasets_metadata``:
    the key of its Parquet metadata (``pvdgeo``) that lists them."""

    def read(s: Settings) -> SourceData:
        path = s.interim_dir / filename
        if not path.is_file():
            raise InputFileError(f"{path} does not exist ({description})")
        frame = pd.read_parquet(path)
        if "insee" not in frame.columns:
            raise MissingColumnsError(str(path), ["insee"], list(frame.columns))
        frame = frame.set_index(frame["insee"].astype(str)).drop(
            columns=[c for c in ("insee", "nom", "departement", "geometry") if c in frame])
        ids: Any = datasets
        if datasets_metadata:
            ids = read_parquet_metadata(path).get(datasets_metadata) or datasets
            if isinstance(ids, str):  # a list stored as its text
                ids = [x.strip(" '\"") for x in ids.strip("[]").split(",") if x.strip()]
        return SourceData(frame, datasets=tuple(str(i) for i in ids))

    return SourceTable(key, description, read)


def _read_trends(s: Settings) -> SourceData:
    table = facility_trends.facility_trends_by_commune(s)
    meta = dict(table.attrs.get("meta", {}))
    pairs = list(meta.get("pairs", []))
    if not pairs:
        raise InputFileError("facility trends: fewer than two BPE vintages, no change to show")
    pair = str(pairs[-1])  # first -> last when more than two (facility_trends.trend_pairs)
    a, b = pair.split("_")
    suffix = f"_per_10k_change_{pair}"
    frame = table.set_index("insee")
    cols = {c: c.removesuffix(f"_change_{pair}") + "_change" for c in frame.columns
            if c.endswith(suffix)}
    out = frame[list(cols)].rename(columns=cols).astype("float64")
    statuses = meta.get("statuses", {}).get(pair, {})
    notes = {}
    for col in out.columns:
        key = col.removeprefix("n_").removesuffix("_per_10k_change")
        status = facility_trends.STATUS_LABELS.get(statuses.get(key, ""), "")
        notes[col] = (f"BPE {a} → BPE {b}" + (f", types {status}" if status else "")
                      + " ; population légale 2016 pour les deux millésimes"
                      if meta.get("population_years", {}).get(a) ==
                      meta.get("population_years", {}).get(b) else f"BPE {a} → BPE {b}")
    datasets = tuple(str(v["dataset"]) for v in meta.get("vintages", []) if "dataset" in v)
    return SourceData(out, datasets=datasets, notes=notes)


def _read_towns(s: Settings) -> SourceData:
    table = national.read_towns_table(s)
    frame = pd.DataFrame(table.drop(columns=table.geometry.name))
    frame["insee"] = frame["insee"].astype(str)
    frame = frame.set_index("insee")
    keep = [c for c in frame.columns if c not in national.CARD_FIELDS or c == "population"]
    return SourceData(frame[keep], datasets=("osm",))


def _read_town_runs(s: Settings) -> SourceData:
    # the portrait's town rows: the chain share of the town's shops from its facility
    # points when its commune layer lacks it (geo.portrait.local_rows)
    frame = portrait.local_rows(s)
    if frame.empty:
        raise InputFileError(f"no town run under {s.out_dir}")
    frame.index = frame.index.astype(str)
    return SourceData(frame.apply(pd.to_numeric, errors="coerce"), datasets=("osm",))


def _read_town_facilities(s: Settings) -> SourceData:
    """Facility points of each built town in its own commune, counted per group of
    subcategories (``n_<category>_<group>`` and ``_per_10k``): what the national counts
    cannot give (heritage: OpenStreetMap only)."""
    cats = load_categories(s)
    group_of = {k: f"n_{sub.category}_{sub.group}" for k, sub in cats.subcategories.items()}
    ref = communes.load_reference(s).set_index("insee")
    rows = {}
    folders = sorted(p for p in s.out_dir.iterdir() if (p / "facilities.parquet").is_file()) \
        if s.out_dir.is_dir() else []
    for folder in folders:
        try:
            fac = pd.read_parquet(folder / "facilities.parquet", columns=["insee", "subcategory"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("dashboard: %s/facilities.parquet unreadable, left out: %s", folder, exc)
            continue
        own = fac[fac["insee"].astype(str) == folder.name]
        counts = own["subcategory"].map(group_of).value_counts()
        rows[folder.name] = {g: float(counts.get(g, 0)) for g in dict.fromkeys(group_of.values())}
    if not rows:
        raise InputFileError(f"no town facilities under {s.out_dir}")
    frame = pd.DataFrame.from_dict(rows, orient="index")
    pop = ref["population"].reindex(frame.index)
    for col in list(frame.columns):
        frame[f"{col}_per_10k"] = _per_10k(frame[col], pop)
    return SourceData(frame, datasets=("osm",))


def _theme_reader(key: str) -> Callable[[Settings], SourceData]:
    """The reader of a theme's commune table (:func:`geo.themes.dashboard_source`; a
    theme whose files are not downloaded raises its missing-input error)."""
    def read(settings: Settings) -> SourceData:
        frame, datasets, notes = themes.dashboard_source(key, settings)
        return SourceData(frame, datasets=datasets, notes=notes)
    return read


SOURCE_TABLES: dict[str, SourceTable] = {t.key: t for t in (
    SourceTable("population", "legal populations of the commune reference "
                "(data/interim/communes.parquet)", _read_population),
    SourceTable("apl", "APL per commune (data/interim/apl_communes.parquet)", _read_apl),
    SourceTable("facilities", "national facility counts per commune "
                "(data/interim/facilities_communes.parquet, make facility-counts)",
                _read_facilities),
    interim_table("landcover", "landcover_communes.parquet",
                  "CORINE shares per commune: make landcover-communes",
                  datasets=("clc2018_lot",), datasets_metadata="clc_sources"),
    SourceTable("trends", "BPE vintages compared per commune "
                "(data/interim/facility_trends_communes.parquet, make facility-trends)",
                _read_trends),
    SourceTable("towns", "indicators of the built towns (data/national/towns.parquet, "
                "pvdgeo batch)", _read_towns),
    SourceTable("town_runs", "the town runs' own commune rows (geo.portrait.local_rows)",
                _read_town_runs),
    SourceTable("town_facilities", "facility points of the built towns in their commune "
                "(data/out/<insee>/facilities.parquet)", _read_town_facilities),
    *(SourceTable(f"theme_{t.key}", f"theme {t.key}: pvdgeo themes --build {t.key}",
                  _theme_reader(t.key)) for t in themes.THEMES),
)}


# --- registry: indicators -------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardIndicator(Indicator):
    """One dashboard indicator (:class:`geo.portrait.Indicator` plus where it comes from).

    ``theme`` is a key of :data:`THEMES`; ``sens`` is ``plus`` when a higher value is
    better for the residents, ``moins`` when lower is better, "" when neither.
    """

    #: Source tables (keys of :data:`SOURCE_TABLES`), in order: the first with a value
    #: for a commune gives it.
    tables: tuple[str, ...] = ("facilities",)
    #: Column of the source tables (default ``key``).
    column: str = ""
    #: Catalogue datasets (default: those the source table reports for the column).
    sources: tuple[str, ...] = ()
    #: Shown first in the town panel (8 to 12 of them).
    headline: bool = False
    #: Field of the built towns' H3 cells drawn at street scale for this indicator.
    cell_field: str = ""
    #: Zero as a class of its own (None: when at least a fifth of the communes have 0).
    zero_class: bool | None = None

    @property
    def higher_is_better(self) -> bool | None:
        """True when a higher value is better, False when lower is, None when neither."""
        return {"plus": True, "moins": False}.get(self.sens)

    @property
    def source_column(self) -> str:
        """The column read from the source tables."""
        return self.column or self.key


PER_10K = "pour 10 000 habitants"
COUNT = "nombre"
_TARGETS = {
    "sante": "un équipement de santé",
    "medecin_generaliste": "un médecin généraliste",
    "pharmacie": "une pharmacie",
    "commerces": "un commerce",
    "boulangerie": "une boulangerie",
    "ecole": "une école",
    "france_services": "une France services",
}
_TRENDS = {"sante": "santé", "commerces": "commerces",
           "commerces_alimentaire": "commerces alimentaires", "culture": "culture",
           "education": "éducation", "services": "services"}


def _facility(key: str, label: str, theme: str, *, count: bool = False, digits: int = 1,
              sens: str = "plus", tables: tuple[str, ...] = ("facilities",),
              headline: bool = False) -> DashboardIndicator:
    return DashboardIndicator(
        key=f"n_{key}" if count else f"n_{key}_per_10k", label=label,
        unit=COUNT if count else PER_10K, theme=theme, digits=0 if count else digits,
        sens=sens, tables=tables, headline=headline)


def _access(mode: str, target: str, what: str) -> tuple[DashboardIndicator, ...]:
    minutes = 10 if mode == "walk" else 15
    theme = "acces_pied" if mode == "walk" else "acces_velo"
    mode_fr = vocab.MODE_LABELS_FR[mode]
    cell = f"{mode}_{target}_minutes_median"
    return (
        DashboardIndicator(
            key=f"{mode}_{target}_pop_share_{minutes}min",
            label=f"Part de la population à moins de {minutes} min {mode_fr} d'{what}",
            unit="%", theme=theme, digits=0, percent=True, sens="plus", tables=("towns",),
            headline=(mode, target) == ("walk", "sante"), cell_field=cell),
        DashboardIndicator(
            key=cell, label=f"Temps médian {mode_fr} jusqu'{_nearest(what)}", unit="min",
            theme=theme, digits=1, sens="moins", tables=("towns",), cell_field=cell),
    )


def _nearest(what: str) -> str:
    """``un médecin généraliste`` -> ``au médecin généraliste le plus proche``."""
    article, _, noun = what.partition(" ")
    adjective = "la plus proche" if article == "une" else "le plus proche"
    if noun[0] in "aeéèêiouy":
        return f"à l'{noun} {adjective}"
    return f"à la {noun} {adjective}" if article == "une" else f"au {noun} {adjective}"


INDICATORS: tuple[DashboardIndicator, ...] = (
    # population
    DashboardIndicator(key="population", label="Population légale 2023", unit="habitants",
                       theme="population", digits=0, tables=("population",), headline=True),
    DashboardIndicator(key="pop_croissance_2016_2023_pct",
                       label="Évolution de la population 2016-2023", unit="%",
                       theme="population", digits=1, signed=True, sens="plus",
                       tables=("population",), headline=True),
    # santé
    *(DashboardIndicator(key=p.field, label=f"APL aux {p.label}", unit=p.unit, theme="sante",
                         digits=2 if p.field.startswith("apl_mg") else 1, sens="plus",
                         tables=("apl",), headline=p.field == "apl_mg")
      for p in vocab.APL_PROFESSIONS),
    _facility("sante", "Équipements de santé", "sante"),
    _facility("medecin_generaliste", "Médecins généralistes", "sante"),
    _facility("pharmacie", "Pharmacies", "sante"),
    _facility("dentiste", "Chirurgiens-dentistes", "sante"),
    _facility("infirmier", "Infirmiers", "sante"),
    _facility("maison_de_sante", "Maisons de santé pluriprofessionnelles", "sante",
              count=True),
    _facility("urgences", "Services d'urgences", "sante", count=True),
    _facility("ehpad", "Établissements pour personnes âgées (EHPAD)", "sante"),
    # commerces
    _facility("commerces", "Commerces", "commerces", headline=True),
    _facility("commerces_alimentaire", "Commerces alimentaires", "commerces"),
    _facility("boulangerie", "Boulangeries, pâtisseries", "commerces"),
    _facility("epicerie", "Épiceries, supérettes", "commerces"),
    _facility("supermarche", "Supermarchés", "commerces"),
    _facility("restaurant", "Restaurants", "commerces"),
    DashboardIndicator(key="commerces_chain_share",
                       label="Part des commerces appartenant à une chaîne", unit="%",
                       theme="commerces", digits=0, percent=True,
                       tables=("facilities", "town_runs"), headline=True),
    # culture
    _facility("culture", "Équipements culturels", "culture", headline=True),
    _facility("culture_vivant", "Lieux et événements culturels (culture vivante)", "culture"),
    _facility("culture_patrimoine", "Patrimoine (monuments, châteaux, sites)", "culture",
              tables=("facilities", "town_facilities")),
    _facility("cinema", "Cinémas", "culture", count=True),
    _facility("theatre", "Théâtres", "culture", count=True),
    _facility("musee", "Musées de France", "culture", count=True),
    _facility("festival", "Festivals", "culture", count=True),
    # éducation
    _facility("education", "Équipements d'éducation", "education"),
    _facility("creche", "Crèches", "education"),
    _facility("ecole", "Écoles", "education", count=True),
    _facility("college", "Collèges", "education", count=True),
    _facility("lycee", "Lycées", "education", count=True),
    # services
    _facility("services", "Services publics et aux particuliers", "services", headline=True),
    _facility("france_services", "France services", "services", count=True, headline=True),
    _facility("bureau_poste", "Bureaux de poste", "services", count=True),
    _facility("agence_postale", "Agences postales communales et relais poste", "services",
              count=True),
    _facility("gendarmerie_police", "Gendarmeries et commissariats", "services", count=True),
    _facility("banque", "Banques", "services"),
    # énergie
    _facility("eolienne", "Éoliennes en service", "energie", count=True, sens=""),
    DashboardIndicator(key="eolienne_power_mw", label="Puissance éolienne installée",
                       unit="MW", theme="energie", digits=1, headline=True),
    # occupation des sols
    *(DashboardIndicator(key=f"clc_{k}_share", label=f"Part des {label}", unit="%",
                         theme="occupation_sols", digits=1, percent=True,
                         tables=("landcover", "towns"),
                         headline=k == "artificialise")
      for k, label in vocab.LEVEL1_LABELS_INLINE_FR.items()),
    DashboardIndicator(key="clc_artificialise_change_2012_2018",
                       label="Évolution de la part artificialisée 2012-2018",
                       unit="points de %", theme="occupation_sols", digits=2, percent=True,
                       signed=True, sens="moins", tables=("landcover", "towns")),
    # accès
    *(ind for mode in ("walk", "bike") for target, what in _TARGETS.items()
      for ind in _access(mode, target, what)),
    # évolution des équipements
    *(DashboardIndicator(key=f"n_{k}_per_10k_change",
                         label=f"Évolution des équipements : {label}", unit=PER_10K,
                         theme="evolution_equipements", digits=1, signed=True, sens="plus",
                         tables=("trends",), headline=k == "commerces")
      for k, label in _TRENDS.items()),
    # the Data Territoria themes: declared by geo.themes, missing until downloaded
    *(DashboardIndicator(**spec) for spec in themes.dashboard_specs()),
)


def _check_registry(items: Sequence[DashboardIndicator]) -> None:
    keys = [i.key for i in items]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    problems = [f"keys listed twice: {twice}"] if twice else []
    for ind in items:
        if ind.theme not in _THEME_KEYS:
            problems.append(f"{ind.key}: unknown theme {ind.theme!r}")
        unknown = [t for t in ind.tables if t not in SOURCE_TABLES]
        if unknown:
            problems.append(f"{ind.key}: unknown source tables {unknown}")
        if ind.sens not in {"", "plus", "moins"}:
            problems.append(f"{ind.key}: sens {ind.sens!r} is not 'plus', 'moins' or ''")
    if problems:
        raise SettingsError("dashboard indicators: " + "; ".join(problems))


_check_registry(INDICATORS)

#: Card columns of the dashboard table, before the indicators.
CARD_COLUMNS = ("insee", "nom", "departement", "departement_nom", "region", "region_nom",
                "zone", "epci_nom", "typologie", "programme", "pvd", "acv", "centralite",
                "densite", "commune_traitee")


# --- the table --------------------------------------------------------------------------------


@dataclass
class Dashboard:
    """The national dashboard table and what it was made from."""

    #: One row per commune of the reference: :data:`CARD_COLUMNS`, then one column per
    #: indicator (its key), sorted by ``insee``.
    table: pd.DataFrame
    indicators: tuple[DashboardIndicator, ...]
    #: Source table -> why it could not be read.
    missing: dict[str, str] = field(default_factory=dict)
    #: Indicator key -> catalogue datasets of its values.
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Indicator key -> French note (vintages compared...).
    notes: dict[str, str] = field(default_factory=dict)
    #: Indicator key -> source tables that gave at least one value.
    tables_used: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cog_year: int | None = None

    def indicator(self, key: str) -> DashboardIndicator:
        """The indicator of ``key``."""
        for ind in self.indicators:
            if ind.key == key:
                return ind
        raise KeyError(key)


def read_source_tables(settings: Settings | None = None, *,
                       names: Iterable[str] | None = None
                       ) -> tuple[dict[str, SourceData], dict[str, str]]:
    """Read the source tables (default every one of :data:`SOURCE_TABLES`): the tables
    read and, for each one that could not be, the reason."""
    s = settings or get_settings()
    tables: dict[str, SourceData] = {}
    missing: dict[str, str] = {}
    for name in names if names is not None else SOURCE_TABLES:
        source = SOURCE_TABLES[name]
        t0 = time.perf_counter()
        try:
            data = source.read(s)
        except GeoError as exc:
            missing[name] = str(exc)
            log.warning("dashboard: %s unavailable, its indicators are missing: %s",
                        source.description, exc)
            continue
        data.frame.index = data.frame.index.astype(str)
        tables[name] = data
        log.debug("dashboard: read %s (%d rows) in %.1f s", name, len(data.frame),
                  time.perf_counter() - t0)
    return tables, missing


def dashboard_table(reference: pd.DataFrame, tables: Mapping[str, SourceData], *,
                    indicators: Sequence[DashboardIndicator] = INDICATORS,
                    built: Collection[str] = (), missing: Mapping[str, str] | None = None,
                    ) -> Dashboard:
    """The national dashboard table from the commune reference and the source tables.

    Parameters
    ----------
    reference
        The commune reference (:func:`geo.communes.load_reference`).
    tables
        Source tables by key (:func:`read_source_tables`); a table absent here leaves its
        indicators missing.
    built
        INSEE codes of the built towns (``commune_traitee``).
    missing
        Why absent tables are absent (kept in the result).
    """
    ref = reference.set_index(reference["insee"].astype(str))
    card = pd.DataFrame(index=ref.index)
    for col in CARD_COLUMNS:
        if col == "insee":
            card[col] = ref.index
        elif col == "programme":
            card[col] = portrait._programme(ref)
        elif col == "commune_traitee":
            card[col] = ref.index.isin(list(built))
        else:
            card[col] = ref[col]
    values: dict[str, pd.Series] = {}
    sources: dict[str, tuple[str, ...]] = {}
    notes: dict[str, str] = {}
    used: dict[str, tuple[str, ...]] = {}
    for ind in indicators:
        col = ind.source_column
        series = pd.Series(np.nan, index=ref.index, dtype="float64")
        ids: list[str] = []
        contributed: list[str] = []
        for name in ind.tables:
            data = tables.get(name)
            if data is None or col not in data.frame.columns:
                continue
            extra = pd.to_numeric(data.frame[col], errors="coerce").astype("float64")
            extra = extra[~extra.index.duplicated()].reindex(ref.index)
            fills = series.isna() & extra.notna()
            if fills.any():
                contributed.append(name)
                ids += data.datasets_of(col)
                if col in data.notes:
                    notes[ind.key] = data.notes[col]
            series = series.fillna(extra)
        values[ind.key] = series
        sources[ind.key] = ind.sources or tuple(dict.fromkeys(ids))
        used[ind.key] = tuple(contributed)
    table = pd.concat([card, pd.DataFrame(values, index=ref.index)], axis=1)
    table = table.sort_index().reset_index(drop=True)
    for col in ("pvd", "acv", "commune_traitee"):
        table[col] = table[col].fillna(False).astype(bool)
    cog = reference["cog_year"].dropna() if "cog_year" in reference else pd.Series([])
    return Dashboard(table=table, indicators=tuple(indicators), missing=dict(missing or {}),
                     sources=sources, notes=notes, tables_used=used,
                     cog_year=int(cog.iloc[0]) if len(cog) else None)


def build_dashboard(settings: Settings | None = None, *,
                    indicators: Sequence[DashboardIndicator] = INDICATORS) -> Dashboard:
    """:func:`dashboard_table` of the national tables under ``settings`` and the built
    towns (``data/national/towns.parquet``)."""
    s = settings or get_settings()
    needed = list(dict.fromkeys(t for ind in indicators for t in ind.tables))
    if "towns" not in needed:
        needed.append("towns")
    tables, missing = read_source_tables(s, names=needed)
    built = tables["towns"].frame.index if "towns" in tables else ()
    return dashboard_table(communes.load_reference(s), tables, indicators=indicators,
                           built=list(built), missing=missing)


# --- France, medians and classes ---------------------------------------------------------------


def universe_mask(table: pd.DataFrame) -> np.ndarray:
    """Communes of the dashboard table in "France" (mainland and DROM, the universe of
    ``pvdgeo typology-stats``)."""
    return np.asarray(table["zone"].isin(communes.NATIONAL_ZONES).fillna(False), dtype=bool)


def national_medians(dashboard: Dashboard) -> pd.DataFrame:
    """Per indicator (index ``key``): ``mediane_france`` and ``n_france``, over the
    communes of France with a value."""
    france = dashboard.table.loc[universe_mask(dashboard.table)]
    rows = {}
    for ind in dashboard.indicators:
        vals = france[ind.key].dropna()
        rows[ind.key] = {"mediane_france": float(vals.median()) if len(vals) else np.nan,
                         "n_france": len(vals)}
    return pd.DataFrame.from_dict(rows, orient="index")


#: Colours of the classes (ColorBrewer YlGnBu, colour-blind safe), lightest first; with a
#: zero class, the lightest is "aucun".
CLASS_COLOURS = ("#ffffcc", "#c7e9b4", "#7fcdbb", "#41b6c4", "#2c7fb8", "#253494")
#: "donnée non disponible".
NODATA_COLOUR = "#c8c8c8"
#: Share of zeros from which zero is a class of its own (the automatic rule).
ZERO_CLASS_SHARE = 0.2
#: Quantile classes per indicator.
N_CLASSES = 5


@dataclass(frozen=True)
class IndicatorClasses:
    """Legend classes of one indicator over France."""

    key: str
    #: ``min``, ``max`` (None: open), ``color``, ``label`` (French), lowest first.
    classes: tuple[dict[str, Any], ...]
    breaks: tuple[float, ...]
    zero_class: bool
    #: The rule in French, for the legend.
    rule: str
    n_values: int


def indicator_classes(dashboard: Dashboard, *, n: int = N_CLASSES
                      ) -> dict[str, IndicatorClasses | None]:
    """Legend classes of every indicator from its distribution over France
    (:func:`geo.export.classes.class_breaks`: quantiles, rounded to 2 significant
    digits); zero is a class of its own when the indicator says so or, by default, when
    at least :data:`ZERO_CLASS_SHARE` of the values are 0 and none is negative. None for
    an indicator without any value."""
    france = dashboard.table.loc[universe_mask(dashboard.table)]
    out: dict[str, IndicatorClasses | None] = {}
    for ind in dashboard.indicators:
        vals = france[ind.key].dropna().to_numpy(float)
        if not vals.size:
            out[ind.key] = None
            continue
        zero = ind.zero_class
        if zero is None:
            zero = bool(vals.min() >= 0 and (vals == 0).mean() >= ZERO_CLASS_SHARE)
        rule = ClassRule(field=ind.key, n=n, zero_class=zero, significant=2)
        try:
            breaks = class_breaks(vals, rule)
        except InputFileError:  # only zeros: one class "aucun"
            breaks = ()
        colours = CLASS_COLOURS if zero else CLASS_COLOURS[1:]
        classes = _non_empty(
            graduated_classes(breaks, colours, zero_class=zero, fmt=ind.format)
            if breaks else [{"min": 0, "max": 1e-9, "color": colours[0], "label": "aucun"},
                            {"min": 1e-9, "max": None, "color": colours[1],
                             "label": f"plus de {ind.format(0)}"}]
            if zero else [{"min": 0, "max": None, "color": colours[0],
                           "label": ind.format(vals[0])}], vals, colours)
        text = rule.describe("communes de France (métropole et DROM)",
                             f"{len(vals):,} communes avec une valeur".replace(",", "\u202f"))
        out[ind.key] = IndicatorClasses(ind.key, tuple(classes), tuple(breaks), zero, text,
                                        int(vals.size))
    return out


def _non_empty(classes: Sequence[dict[str, Any]], values: np.ndarray,
               colours: Sequence[str]) -> list[dict[str, Any]]:
    """``classes`` without those no value falls in (e.g. "moins de 1" for counts whose
    first quantile is 1), coloured again lightest first; the lowest class starts at the
    smallest value (``step`` draws everything below the second class's ``min`` in the
    first class's colour)."""
    kept: list[dict[str, Any]] = []
    for c in classes:
        lo = c["min"] if kept else -np.inf
        hi = np.inf if c["max"] is None else c["max"]
        if ((values >= lo) & (values < hi)).any():
            kept.append(dict(c))
    if not kept:
        kept = [dict(classes[-1])]
    for c, colour in zip(kept, colours, strict=False):
        c["color"] = colour
    return kept


# --- comparison with the peers --------------------------------------------------------------


@dataclass
class TownComparison:
    """A town against its peers and France, for every indicator."""

    insee: str
    peers: PeerSelection
    #: One row per indicator: the columns of :data:`geo.portrait.DISTINCTION_COLUMNS`
    #: plus ``valeur_texte``, ``mediane_pairs_texte``, ``mediane_france``, ``n_france``.
    table: pd.DataFrame
    #: :func:`geo.portrait.distinguishing_indicators` of ``table``.
    distinctions: pd.DataFrame


def compare_towns(dashboard: Dashboard, codes: Iterable[str], *,
                  settings: Settings | None = None,
                  medians: pd.DataFrame | None = None) -> dict[str, TownComparison]:
    """Each town of ``codes`` against its peers (:func:`geo.portrait.find_peers`) on every
    indicator of ``dashboard``: its value, the peers' median and count, its percentile
    among them (:func:`geo.portrait.percentile_rank`, only with at least
    ``settings.peer_min_count`` peers with a value) and the shares of peers below and
    above it, France's median; and what distinguishes it."""
    s = settings or get_settings()
    table = dashboard.table
    keys = [i.key for i in dashboard.indicators]
    position = pd.Index(table["insee"])
    values = table[keys].to_numpy(dtype=float)
    medians = national_medians(dashboard) if medians is None else medians
    med = medians.reindex(keys)
    france_median = med["mediane_france"].to_numpy(dtype=float)
    france_n = med["n_france"].fillna(0).astype(int).to_numpy()
    reference = portrait._with_programme(communes.load_reference(s))
    min_peers = s.peer_min_count
    out: dict[str, TownComparison] = {}
    codes = list(dict.fromkeys(codes))
    t0 = time.perf_counter()
    with _widening_summary(len(codes)):
        for i, code in enumerate(codes, start=1):
            comp = _compare_one(code, dashboard, values, position, reference, france_median,
                                france_n, min_peers, s)
            out[comp.insee] = comp
            if i % 200 == 0:
                log.info("dashboard: %d/%d towns compared with their peers (%.0f s)", i,
                         len(codes), time.perf_counter() - t0)
    return out


class _WideningCounter(logging.Filter):
    """Counts (and keeps out of the log) find_peers' per-town "widened" warnings."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "widened to" in record.getMessage():
            self.count += 1
            return False
        return True


@contextlib.contextmanager
def _widening_summary(n_towns: int) -> Iterator[None]:
    """One summary line instead of one warning per town whose peer rule was widened (each
    panel says it)."""
    counter = _WideningCounter()
    peers_log = logging.getLogger(portrait.__name__)
    peers_log.addFilter(counter)
    try:
        yield
    finally:
        peers_log.removeFilter(counter)
        if counter.count:
            log.info("dashboard: the peer rule was widened for %d of %d towns (fewer than "
                     "settings.peer_min_count peers; their panel says so)", counter.count,
                     n_towns)


def _compare_one(code: str, dashboard: Dashboard, values: np.ndarray, position: pd.Index,
                 reference: pd.DataFrame, france_median: np.ndarray, france_n: np.ndarray,
                 min_peers: int, s: Settings) -> TownComparison:
    """:func:`compare_towns` of one town."""
    selection = portrait.find_peers(code, settings=s, reference=reference)
    own = values[position.get_loc(selection.insee)]
    peer_rows = position.get_indexer(selection.peers["insee"])
    peer_values = values[peer_rows[peer_rows >= 0]]
    rows = []
    for j, ind in enumerate(dashboard.indicators):
        v = own[j]
        pv = peer_values[:, j]
        pv = pv[~np.isnan(pv)]
        enough = pv.size >= min_peers and not np.isnan(v)
        median = float(np.median(pv)) if pv.size else np.nan
        rows.append({
            "indicateur": ind.key, "libelle": ind.label, "unite": ind.unit,
            "sens": ind.sens, "valeur": v, "valeur_texte": ind.format(v),
            "mediane_pairs": median,
            "mediane_pairs_texte": ind.format(median),
            "n_pairs": int(pv.size),
            "percentile_pairs": portrait.percentile_rank(v, pv) if enough else np.nan,
            "part_pairs_inferieurs": float((pv < v).mean()) if enough else np.nan,
            "part_pairs_superieurs": float((pv > v).mean()) if enough else np.nan,
            "mediane_france": france_median[j],
            "n_france": int(france_n[j]),
        })
    frame = pd.DataFrame(rows)
    frame["percentile_pairs"] = frame["percentile_pairs"].astype(float)
    return TownComparison(selection.insee, selection, frame,
                          portrait.distinguishing_indicators(frame, min_peers=min_peers))
