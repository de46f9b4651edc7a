"""Town portrait: similar towns (peers), indicators compared with them and with France,
and national statistics by typology (the Data Territoria tables).

Peers
-----
A town's peers are the other current communes that share the attributes listed in a
:class:`PeerRule` with it, and whose legal population lies within a band around its own:

- ``criteria`` (default ``settings.peer_criteria`` = programme, centralite), each one of
  :data:`PEER_CRITERIA`: ``programme`` (PVD, ACV or neither), ``centralite`` (ANCT/INRAE
  level), ``densite`` (INSEE 7-level grid), ``typologie``, ``ruralite``, ``montagne``
  (massif or none), ``aav_categorie``, ``region``, ``departement``;
- ``population_ratio`` r (default ``settings.peer_population_ratio`` = 0.5): population
  between r x P and P / r (x0.5..x2) for a town of population P.

A criterion the town itself has no value for is not applied (and the report says so).
When fewer than ``settings.peer_min_count`` (5) communes follow the rule, the rule is
widened step by step, in this documented order, until enough peers are found:

1. the geographic criteria (``region``, ``departement``) are dropped;
2. the population band is widened from r to r² (x0.5..x2 becomes x0.25..x4);
3. the other criteria are dropped one at a time, the last listed first (so
   ``programme``, listed first by default, is kept longest);
4. the population band is widened again, from r² to r⁴ (x0.0625..x16);
5. the population band is dropped (all communes).

Every rule tried is kept with its count (:attr:`PeerSelection.steps`) and the report
states it.

Portrait
--------
Every indicator of :data:`INDICATORS` with the town's value, the median over its peers,
the town's percentile among its peers and the median over all communes ("France").
Values come from the national commune tables (``data/interim/``, see ARCHITECTURE.md)
first, then from the town runs (``data/out/<insee>/communes.parquet``: access times,
land cover, chain share), so the town and its peers are compared on the same sources.
Indicators that exist only where a town run was made (access times) are compared with
the peers and communes that have one; the counts are always given. A missing value stays
missing ("n.d." with the reason), never zero.

The percentile is the mid-rank percentile of the town among its peers with a value
(``scipy.stats.percentileofscore(kind="mean")``): the share of peers below the town plus
half the share equal to it, in 0..100; 50 means the town sits at the peers' median.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyproj
from scipy import stats

from geo import (
    __version__,
    communes,
    facilities,
    facility_trends,
    indicators,
    landcover,
    network,
    sources,
    themes,
)
from geo import _report as report
from geo import _svg as svg
from geo._io import atomic_path, write_parquet, write_text_atomic
from geo.errors import (
    GeoError,
    InputFileError,
    MissingColumnsError,
    SettingsError,
    UnknownDatasetError,
)
from geo.settings import Settings, get_settings

__all__ = [
    "INDICATORS",
    "PEER_CRITERIA",
    "Indicator",
    "PeerRule",
    "PeerSelection",
    "Portrait",
    "build_portrait",
    "find_peers",
    "indicator_table",
    "percentile_rank",
    "render_portrait_html",
    "render_typology_html",
    "town_values",
    "typology_tables",
    "write_portrait",
    "write_typology_stats",
]

log = logging.getLogger(__name__)

# --- indicators ----------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """One portrait indicator: field name, French label and unit, theme, display."""

    key: str
    label: str
    unit: str
    theme: str
    digits: int = 1
    #: Stored as a share 0..1 (or a change of share), shown in per cent.
    percent: bool = False
    signed: bool = False
    #: ``plus`` when a higher value is better for the residents, ``moins`` when lower is
    #: better, "" when neither (the synthesis leaves those out).
    sens: str = ""

    def format(self, value: object) -> str:
        """The value formatted for the report (French, unit added)."""
        if svg.is_missing(value):
            return "n.d."
        text = svg.format_fr(value, self.digits, percent=self.percent, signed=self.signed)
        if self.percent and self.unit.startswith("point"):
            text = text.replace("\u202f%", "\u202fpt")
        elif not self.percent and self.unit in {"min", "MW", "%"}:
            text += f"\u202f{self.unit}"
        return text


THEME_POPULATION = "Population"
THEME_APL = "Accès aux soins : accessibilité potentielle localisée (DREES, 2021)"
THEME_FACILITIES = "Équipements pour 10 000 habitants"
THEME_CULTURE = "Culture et énergie"
THEME_LANDCOVER = "Occupation des sols (CORINE Land Cover)"
THEME_ACCESS = "Temps d'accès médians (réseau de rues)"

#: Where each theme's values come from (shown under the theme and in the CSV).
THEME_SOURCES = {
    THEME_POPULATION: "INSEE, populations légales 2016 à 2023 (communes COG 2026)",
    THEME_APL: "DREES, accessibilité potentielle localisée 2021 (professionnels de 65 ans "
               "et moins ; médecins généralistes : aussi sans borne d'âge ; sages-femmes : "
               "toutes)",
    THEME_FACILITIES: "comptages nationaux par commune : BPE, Muséofile, CNC, festivals, "
                      "Géorisques (data/interim/facilities_communes.parquet) ; part des "
                      "chaînes : BPE géolocalisée ou OpenStreetMap de la commune",
    THEME_CULTURE: "Muséofile (ministère de la Culture), CNC, festivals (ministère de la "
                   "Culture), éoliennes terrestres (Géorisques)",
    THEME_LANDCOVER: "CORINE Land Cover (Copernicus), parts exactes par commune",
    THEME_ACCESS: "OpenStreetMap, réseau de rues de la commune : temps médian sur les "
                  "nœuds du réseau (exécution locale)",
}

_FACILITY_CATEGORIES = {
    "sante": "Santé",
    "commerces": "Commerces",
    "culture": "Culture",
    "education": "Éducation",
    "services": "Services",
}
#: Facility counts of the national statistics: the categories, then single registers.
_FACILITY_COUNTS = {**_FACILITY_CATEGORIES, "medecin_generaliste": "Médecins généralistes",
                    "dentiste": "Chirurgiens-dentistes", "cinema": "Cinémas",
                    "musee": "Musées", "festival": "Festivals", "eolienne": "Éoliennes"}
_CLC_LEVEL1 = landcover.LEVEL1_LABELS_INLINE_FR
_ACCESS_TARGETS = {
    "medecin_generaliste": "jusqu'au médecin généraliste le plus proche",
    "pharmacie": "jusqu'à la pharmacie la plus proche",
    "boulangerie": "jusqu'à la boulangerie la plus proche",
    "ecole": "jusqu'à l'école la plus proche",
}
_MODES = network.MODE_LABELS_FR

INDICATORS: tuple[Indicator, ...] = (
    Indicator("population", "Population légale 2023", "habitants", THEME_POPULATION, 0),
    Indicator("pop_croissance_2016_2023_pct", "Évolution de la population 2016-2023", "%",
              THEME_POPULATION, 1, signed=True, sens="plus"),
    *(Indicator(p.field, f"APL aux {p.label}", p.unit, THEME_APL,
                2 if p.field.startswith("apl_mg") else 1, sens="plus")
      for p in indicators.APL_PROFESSIONS),
    *(Indicator(f"n_{k}_per_10k", label, "pour 10 000 habitants", THEME_FACILITIES,
                sens="plus")
      for k, label in _FACILITY_CATEGORIES.items()),
    Indicator("commerces_chain_share", "Part des commerces appartenant à une chaîne",
              "part", THEME_FACILITIES, 0, percent=True),
    Indicator("n_cinema", "Cinémas", "nombre", THEME_CULTURE, 0, sens="plus"),
    Indicator("n_musee", "Musées de France", "nombre", THEME_CULTURE, 0, sens="plus"),
    Indicator("n_festival", "Festivals", "nombre", THEME_CULTURE, 0, sens="plus"),
    Indicator("n_eolienne", "Éoliennes en service", "nombre", THEME_CULTURE, 0),
    Indicator("eolienne_power_mw", "Puissance éolienne installée", "MW", THEME_CULTURE, 1),
    *(Indicator(f"clc_{k}_share", f"Part des {label}", "part", THEME_LANDCOVER, 1,
                percent=True)
      for k, label in _CLC_LEVEL1.items()),
    Indicator("clc_artificialise_change_2012_2018",
              "Évolution de la part artificialisée 2012-2018", "points de %",
              THEME_LANDCOVER, 2, percent=True, signed=True, sens="moins"),
    *(Indicator(f"{mode}_{target}_minutes_median",
                f"Temps {mode_label} {target_label}", "min", THEME_ACCESS, 1, sens="moins")
      for mode, mode_label in _MODES.items() for target, target_label in _ACCESS_TARGETS.items()),
)
_BY_KEY = {i.key: i for i in INDICATORS}

# --- peers -----------------------------------------------------------------------------

#: Criteria a peer rule can use: reference column and French description.
PEER_CRITERIA: dict[str, tuple[str, str]] = {
    "programme": ("programme", "même programme (PVD, ACV ou aucun)"),
    "centralite": ("centralite", "même niveau de centralité"),
    "densite": ("densite", "même niveau de densité"),
    "typologie": ("typologie", "même typologie (petite, moyenne ou grande ville)"),
    "ruralite": ("ruralite", "même typologie des ruralités"),
    "montagne": ("montagne", "même massif de montagne (ou hors montagne)"),
    "aav_categorie": ("aav_categorie_libelle", "même catégorie d'aire d'attraction"),
    "region": ("region_nom", "même région"),
    "departement": ("departement_nom", "même département"),
}
_GEOGRAPHIC = ("region", "departement")


def _programme(ref: pd.DataFrame) -> pd.Series:
    pvd, acv = ref["pvd"].astype(bool), ref["acv"].astype(bool)
    out = pd.Series("aucun", index=ref.index, dtype=object)
    out[pvd] = "PVD"
    out[acv] = "ACV"
    out[pvd & acv] = "PVD et ACV"
    return out


def _with_programme(ref: pd.DataFrame) -> pd.DataFrame:
    if "programme" in ref.columns:
        return ref
    out = ref.copy()
    out["programme"] = _programme(ref)
    # "hors montagne" is a level too: two non-mountain towns match
    out["montagne"] = out["montagne"].astype(object).where(out["montagne"].notna(),
                                                           "hors montagne")
    return out


@dataclass(frozen=True)
class PeerRule:
    """What a peer shares with the town: ``criteria`` and a population band.

    ``population_ratio`` r keeps communes of population r x P .. P / r (None: any size).
    """

    criteria: tuple[str, ...] = ("programme", "centralite")
    population_ratio: float | None = 0.5

    def __post_init__(self) -> None:
        unknown = [c for c in self.criteria if c not in PEER_CRITERIA]
        if unknown:
            raise SettingsError(
                f"unknown peer criterion {', '.join(map(repr, unknown))}: expected some of "
                + ", ".join(PEER_CRITERIA)
            )
        if len(set(self.criteria)) != len(self.criteria):
            raise SettingsError(f"peer criteria listed twice: {self.criteria!r}")
        r = self.population_ratio
        if r is not None and not 0 < r < 1:
            raise SettingsError(f"peer population ratio must be in (0, 1), got {r!r}")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PeerRule:
        """The rule of ``settings.peer_criteria`` and ``settings.peer_population_ratio``."""
        s = settings or get_settings()
        return cls(tuple(s.peer_criteria), s.peer_population_ratio)

    def population_band(self, population: float) -> tuple[float, float] | None:
        """Inclusive population bounds for a town of ``population`` (None: no band)."""
        if self.population_ratio is None:
            return None
        return population * self.population_ratio, population / self.population_ratio

    def mask(self, ref: pd.DataFrame, town: Mapping[str, Any]) -> pd.Series:
        """Communes of ``ref`` that follow the rule for ``town`` (the town included)."""
        ref = _with_programme(ref)
        ok = pd.Series(True, index=ref.index)
        for crit in self.criteria:
            col = PEER_CRITERIA[crit][0]
            ok &= (ref[col] == town[col]).fillna(False).astype(bool)
        if self.population_ratio is not None:
            lo, hi = self.population_band(float(town["population"]))  # type: ignore[misc]
            pop = ref["population"].astype(float)
            ok &= ((pop >= lo) & (pop <= hi)).fillna(False).astype(bool)
        return ok

    def describe(self, town: Mapping[str, Any] | None = None) -> str:
        """The rule in French, with the town's values when given."""
        parts = []
        for crit in self.criteria:
            col, text = PEER_CRITERIA[crit]
            if town is not None:
                text = f"{text} : {town[col]}"
            parts.append(text)
        if self.population_ratio is not None:
            r = self.population_ratio
            text = (f"population entre ×{f'{r:.4g}'.replace('.', ',')} et "
                    f"×{f'{1 / r:.4g}'.replace('.', ',')}")
            if town is not None:
                lo, hi = self.population_band(float(town["population"]))  # type: ignore[misc]
                text += (f" de celle de la commune ({svg.format_fr(math.ceil(lo))} à "
                         f"{svg.format_fr(math.floor(hi))} habitants)")
            parts.append(text)
        return "; ".join(parts) if parts else "toutes les communes"

    def widenings(self) -> list[PeerRule]:
        """This rule followed by its wider versions, in the documented order."""
        steps = [self]
        current = self
        if any(c in _GEOGRAPHIC for c in current.criteria):
            current = replace(current, criteria=tuple(c for c in current.criteria
                                                      if c not in _GEOGRAPHIC))
            steps.append(current)
        if current.population_ratio is not None:
            current = replace(current, population_ratio=current.population_ratio ** 2)
            steps.append(current)
        while current.criteria:
            current = replace(current, criteria=current.criteria[:-1])
            steps.append(current)
        if current.population_ratio is not None:
            current = replace(current, population_ratio=current.population_ratio ** 2)
            steps.append(current)
            current = replace(current, population_ratio=None)
            steps.append(current)
        return steps


@dataclass(frozen=True)
class PeerSelection:
    """The peers of a town and how they were chosen."""

    insee: str
    #: The rule asked for (criteria the town has no value for removed).
    rule: PeerRule
    #: The rule that gave the peers (``rule`` itself unless widened).
    applied: PeerRule
    #: Every rule tried, with the number of peers it gives.
    steps: tuple[tuple[PeerRule, int], ...]
    #: Peers: insee, nom, departement, region_nom, population, programme, centralite,
    #: densite; nearest population first.
    peers: pd.DataFrame
    min_count: int
    #: Criteria not applied because the town has no value for them.
    ignored: tuple[str, ...] = ()

    @property
    def widened(self) -> bool:
        """True when the rule asked for gave fewer than ``min_count`` peers."""
        return self.applied != self.rule

    def describe(self, town: Mapping[str, Any]) -> str:
        """One French paragraph: the rule, widening if any, and the count."""
        text = f"Règle : {self.rule.describe(town)}."
        if self.ignored:
            text += (" Critère(s) non appliqué(s), faute de valeur pour la commune : "
                     + ", ".join(self.ignored) + ".")
        if self.widened:
            n_first = self.steps[0][1]
            text += (f" Cette règle ne donne que {n_first} commune(s) comparable(s) "
                     f"(minimum {self.min_count}) : elle a été élargie à « "
                     f"{self.applied.describe(town)} ».")
        text += f" {len(self.peers)} commune(s) comparable(s)."
        return text


def find_peers(
    insee: str,
    rule: PeerRule | None = None,
    *,
    min_count: int | None = None,
    settings: Settings | None = None,
    reference: pd.DataFrame | None = None,
) -> PeerSelection:
    """The peers of a town under ``rule`` (default from settings), widened if needed.

    See the module doc for the rule and the widening order. The town is never its own
    peer. Raises :class:`UnknownCommuneError` for an unknown town. ``reference``: the
    commune reference (default :func:`geo.communes.load_reference`), to pass when
    choosing the peers of many towns.
    """
    s = settings or get_settings()
    rule = rule or PeerRule.from_settings(s)
    min_count = s.peer_min_count if min_count is None else int(min_count)
    if min_count < 1:
        raise SettingsError(f"min_count must be >= 1, got {min_count!r}")
    code = communes.resolve_insee(insee, s)
    ref = _with_programme(communes.load_reference(s) if reference is None else reference)
    town = ref.loc[ref["insee"] == code].iloc[0]
    ignored = tuple(c for c in rule.criteria if pd.isna(town[PEER_CRITERIA[c][0]]))
    if pd.isna(town["population"]):
        ignored += ("population",)
    effective = PeerRule(
        tuple(c for c in rule.criteria if c not in ignored),
        None if "population" in ignored else rule.population_ratio,
    )
    not_town = ref["insee"] != code
    steps: list[tuple[PeerRule, int]] = []
    chosen = effective
    mask = pd.Series(False, index=ref.index)
    for step in effective.widenings():
        mask = step.mask(ref, town) & not_town
        steps.append((step, int(mask.sum())))
        chosen = step
        if mask.sum() >= min_count:
            break
    if chosen != effective:
        log.warning("%s: %d peer(s) under the rule (%s); widened to: %s", code,
                    steps[0][1], effective.describe(), chosen.describe())
    peers = ref.loc[mask, ["insee", "nom", "departement", "region_nom", "population",
                           "programme", "centralite", "densite"]].copy()
    own = 1.0 if pd.isna(town["population"]) else max(float(town["population"]), 1.0)
    distance = np.abs(np.log(peers["population"].astype(float).clip(lower=1) / own))
    peers = peers.assign(_d=distance).sort_values(["_d", "insee"]).drop(columns="_d")
    return PeerSelection(code, effective, chosen, tuple(steps),
                         peers.reset_index(drop=True), min_count, ignored)


# --- percentiles and indicator data -----------------------------------------------------


def percentile_rank(value: float | None, others: Iterable[float | None]) -> float | None:
    """Mid-rank percentile (0..100) of ``value`` among ``others`` (missing values left out).

    The share of ``others`` below ``value`` plus half the share equal to it, times 100
    (``scipy.stats.percentileofscore(kind="mean")``), except that a value equal to the
    others' median is at 50: 0 cinemas among peers whose median is 0 is the median, not
    "below" it (mid-rank would say 36 when 72 % of the peers have none). None when
    ``value`` is missing or no other value is present.
    """
    own = svg.to_float(value)
    if isinstance(others, np.ndarray) and others.dtype.kind == "f":  # fast path, same values
        vals = others[~np.isnan(others)]
    else:
        vals = np.array([v for v in map(svg.to_float, others) if v is not None], dtype=float)
    if own is None or vals.size == 0:
        return None
    if own == float(np.median(vals)):
        return 50.0
    return float(stats.percentileofscore(vals, own, kind="mean"))


def _read_table(path: Path, what: str) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError)
        raise InputFileError(f"cannot read {what} {path}: {exc}") from None
    if "insee" not in df.columns:
        raise MissingColumnsError(f"{what} {path}", ["insee"], list(df.columns))
    df = df.drop(columns=[c for c in df.columns if c == "geometry"])
    df["insee"] = df["insee"].astype(str)
    return df


_INSEE_DIR = re.compile(r"\d{5}|2[AB]\d{3}")


def _local_row(town_dir: Path, insee: str) -> pd.Series | None:
    """The town's own row of a town run (communes.parquet), with the chain share of its
    shops from facilities.parquet when the commune layer lacks it."""
    row: pd.Series | None = None
    layer = town_dir / "communes.parquet"
    if layer.exists():
        table = _read_table(layer, "commune layer")
        hit = table[table["insee"] == insee]
        if len(hit):
            row = hit.iloc[0]
    fac_path = town_dir / "facilities.parquet"
    if fac_path.exists() and (row is None or pd.isna(row.get("commerces_chain_share"))):
        try:
            fac = pd.read_parquet(fac_path, columns=["insee", "category", "chain"])
        except (OSError, ValueError, KeyError) as exc:
            raise InputFileError(
                f"cannot read facilities {fac_path} (expected columns insee, category, "
                f"chain): {exc}"
            ) from None
        share = facilities.chain_share(fac[fac["insee"].astype(str) == insee])
        if len(share):
            row = pd.Series({"insee": insee}) if row is None else row.copy()
            row["commerces_chain_share"] = float(share.iloc[0])
    return row


def local_rows(
    settings: Settings | None = None, *, strict: Collection[str] = ()
) -> pd.DataFrame:
    """The town's own row of every town run under ``settings.out_dir`` (see _local_row),
    indicator columns only.

    Rows are kept in ``data/interim/town_rows.parquet`` with the version (modification
    time and size) of the files they were read from, so a portrait re-reads only the town
    runs that changed since: a batch over all PVD towns reads each run once, not once per
    portrait. A run whose files cannot be read is reported and left out, except for the
    towns in ``strict``, for which :class:`InputFileError` is raised.
    """
    s = settings or get_settings()
    index_path = s.interim_dir / "town_rows.parquet"
    known = _read_rows_index(index_path)
    rows: list[pd.Series] = []
    changed = False
    if s.out_dir.is_dir():
        for town_dir in sorted(p for p in s.out_dir.iterdir()
                               if p.is_dir() and _INSEE_DIR.fullmatch(p.name)):
            version = _run_version(town_dir)
            if version is None:
                continue
            insee = town_dir.name
            if insee in known.index and known.at[insee, "_version"] == version:
                row = known.loc[insee]
                if not row.get("_empty", False):
                    rows.append(row.drop(labels=["_version", "_empty"]).rename(insee))
                continue
            try:
                row = _local_row(town_dir, insee)
            except InputFileError as exc:
                if insee in strict:
                    raise
                log.warning("town run %s left out of the comparison: %s", insee, exc)
                continue
            changed = True
            keep = pd.Series({"_version": version, "_empty": row is None})
            if row is not None:
                values = row.reindex([k for k in _BY_KEY if k in row.index])
                keep = pd.concat([keep, pd.to_numeric(values, errors="coerce")])
                rows.append(values.rename(insee))
            known = known.drop(index=insee, errors="ignore")
            known = pd.concat([known, keep.to_frame(insee).T])
    if changed:
        index = known.copy()
        index.index.name = "insee"
        numeric = [c for c in index.columns if c not in ("_version", "_empty")]
        index[numeric] = index[numeric].astype(float)
        write_parquet(index.reset_index().astype({"_empty": bool}), index_path)
    if not rows:
        return pd.DataFrame(columns=["insee"]).set_index("insee")
    out = pd.DataFrame(rows)
    out.index.name = "insee"
    return out


def _run_version(town_dir: Path) -> str | None:
    """Version of a town run's comparison inputs (None when it has neither file)."""
    parts = []
    for name in ("communes.parquet", "facilities.parquet"):
        path = town_dir / name
        if path.exists():
            st = path.stat()
            parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    return ";".join(parts) or None


def _read_rows_index(path: Path) -> pd.DataFrame:
    """The cached town rows (empty when absent or unreadable: it is rebuilt)."""
    if path.exists():
        try:
            return pd.read_parquet(path).set_index("insee")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("town rows cache %s unreadable, rebuilding it: %s", path, exc)
    return pd.DataFrame(columns=["_version", "_empty"], index=pd.Index([], name="insee"))


def indicator_table(
    settings: Settings | None = None, *, strict: Collection[str] = ()
) -> pd.DataFrame:
    """Every indicator of :data:`INDICATORS` per current commune (index ``insee``).

    National tables first (reference, APL, ``data/interim/facilities_communes.parquet``,
    ``data/interim/landcover_communes.parquet``), then the town runs' own rows fill what
    the national tables lack. Columns of an absent source are all missing. Unreadable
    town runs are left out with a warning, or raise for the towns in ``strict``.
    """
    s = settings or get_settings()
    ref = communes.load_reference(s).set_index("insee")
    table = pd.DataFrame(index=ref.index)
    table["population"] = ref["population"].astype(float)
    pop16, pop23 = ref["pop_2016"].astype(float), ref["pop_2023"].astype(float)
    table["pop_croissance_2016_2023_pct"] = (pop23 / pop16.where(pop16 > 0) - 1) * 100
    apl = indicators.apl_by_commune(s).set_index("insee")
    table = table.join(apl[[p.field for p in indicators.APL_PROFESSIONS]])
    fac, fac_error = _national_facilities(s)
    if fac is not None:
        table = table.join(fac[[c for c in fac.columns
                                if c in _BY_KEY and c not in table.columns]].astype(float))
    path = s.interim_dir / "landcover_communes.parquet"
    if path.exists():
        extra = _read_table(path, "national land-cover table").set_index("insee")
        table = table.join(extra[[c for c in extra.columns
                                  if c in _BY_KEY and c not in table.columns]].astype(float))
    else:
        log.info("national land-cover table %s absent: land cover only from town runs", path)
    local = local_rows(s, strict=strict)
    for ind in INDICATORS:
        if ind.key not in table.columns:
            table[ind.key] = np.nan
        if ind.key in local.columns:
            vals = pd.to_numeric(local[ind.key], errors="coerce").reindex(table.index)
            table[ind.key] = table[ind.key].astype(float).fillna(vals)
    out = table[[i.key for i in INDICATORS]].astype(float)
    out.attrs["facilities_error"] = fac_error
    return out


def _national_facilities(s: Settings) -> tuple[pd.DataFrame | None, str | None]:
    """National facility counts per commune (:func:`geo.facilities.facilities_by_commune`)
    indexed by ``insee``, or None and the reason when they cannot be built."""
    try:
        fac = facilities.facilities_by_commune(s)
    except GeoError as exc:
        log.warning("national facility counts unavailable, facility indicators missing: %s",
                    exc)
        return None, str(exc)
    return fac.set_index("insee"), None


# --- the portrait --------------------------------------------------------------------------


@dataclass
class Portrait:
    """A town's portrait: card, peers, indicator table and population history."""

    insee: str
    card: dict[str, Any]
    peers: PeerSelection
    #: One row per indicator: theme, indicateur, libelle, unite, valeur, mediane_pairs,
    #: n_pairs, percentile_pairs, mediane_france, n_france, note (why a value is
    #: missing), source.
    table: pd.DataFrame
    #: Peer values per indicator key (for the distribution charts).
    peer_values: dict[str, np.ndarray]
    #: annee, commune, pairs_mediane (index 2016 = 100), france (index), population.
    history: pd.DataFrame
    missing: list[str] = field(default_factory=list)
    built: str = ""
    vintages: dict[str, str] = field(default_factory=dict)
    #: The change of the town's offer between BPE vintages (None when unavailable).
    facility_trend: facility_trends.TownTrend | None = None
    #: One section per Data Territoria theme (jobs, housing...; missing ones say so).
    theme_sections: list[themes.ThemeSection] = field(default_factory=list)
    #: What distinguishes the town (:func:`distinguishing_indicators` of ``table``).
    distinctions: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The sources, in French: donnees, producteur, millesime, licence, lien.
    sources: list[dict[str, str]] = field(default_factory=list)


def _missing_reasons(code: str, values: pd.Series, s: Settings,
                     facilities_error: str | None = None) -> dict[str, str]:
    """Why each missing indicator of the town is missing (French)."""
    kinds = {d.kind for d in sources.datasets_for_town(code, settings=s)}
    has_network = any(k.startswith(("osm", "roads")) for k in kinds)
    has_landcover = any(k.startswith("landcover") for k in kinds)
    town_dir = s.town_dir(code)
    run = (town_dir / "communes.parquet").exists()
    subcategories = functools.cache(functools.partial(_subcategories, town_dir))
    reasons = {}
    for ind in INDICATORS:
        if not svg.is_missing(values.get(ind.key)):
            continue
        if ind.theme == THEME_APL:
            why = "pas de valeur APL publiée par la DREES pour cette commune"
        elif ind.theme == THEME_POPULATION:
            why = "population légale absente pour une des années"
        elif ind.key == "commerces_chain_share":
            if not any(k.startswith("osm") for k in kinds):
                why = ("ni extrait OpenStreetMap de la commune ni BPE géolocalisée : part "
                       "des chaînes non mesurée")
            elif (town_dir / "facilities.parquet").exists():
                why = "aucun commerce nommé dans les équipements OpenStreetMap de la commune"
            else:
                why = f"équipements de la commune non construits (make town INSEE={code})"
        elif ind.theme in (THEME_FACILITIES, THEME_CULTURE):
            why = (f"comptages nationaux d'équipements indisponibles : {facilities_error}"
                   if facilities_error else
                   "pas de source nationale pour cette commune (ex. BPE hors de "
                   "France métropolitaine et DROM)")
        elif ind.theme == THEME_LANDCOVER:
            if "change" in ind.key:
                why = ("aucune occupation des sols disponible pour cette commune"
                       if not has_landcover else
                       "un seul millésime CORINE disponible pour cette commune (pas d'évolution)")
            else:
                why = ("aucune occupation des sols disponible pour cette commune"
                       if not has_landcover else
                       f"occupation des sols non calculée (make town INSEE={code})")
        elif ind.theme == THEME_ACCESS:
            mode = ind.key.split("_", 1)[0]
            if (town_dir / f"access_{mode}_nodes.parquet").exists() and not run:
                why = (f"temps calculés sur le réseau (access_{mode}_nodes.parquet) mais pas "
                       "encore agrégés par commune (communes.parquet absent)")
            elif not has_network:
                why = "aucun réseau de rues disponible pour cette commune"
            elif not run:
                why = f"temps d'accès non calculés (make town INSEE={code})"
            elif (ind.key.split("_", 1)[1].removesuffix("_minutes_median")
                  not in subcategories()):
                why = ("aucun équipement de ce type localisé dans la zone d'étude "
                       "(OpenStreetMap et registres nationaux)")
            else:
                why = "temps non calculé pour ce mode (voir logs/aggregate.log)"
        else:
            why = "donnée absente"
        reasons[ind.key] = why
    return reasons


def _subcategories(town_dir: Path) -> frozenset[str]:
    """Subcategory keys of the town run's facilities (empty without facilities.parquet)."""
    path = town_dir / "facilities.parquet"
    if not path.exists():
        return frozenset()
    try:
        fac = pd.read_parquet(path, columns=["subcategory"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"cannot read facilities {path}: {exc}") from None
    return frozenset(fac["subcategory"].dropna().astype(str))


def town_values(insee: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The town's reference row with its ``programme``: what the peer rule reads."""
    card = communes.get_commune(insee, settings).to_dict()
    card["programme"] = _programme(pd.DataFrame([card])).iloc[0]
    return card


def build_portrait(
    insee: str,
    *,
    rule: PeerRule | None = None,
    settings: Settings | None = None,
) -> Portrait:
    """The portrait of one town (code or name): peers, indicators and comparisons."""
    s = settings or get_settings()
    selection = find_peers(insee, rule, settings=s)
    code = selection.insee
    card = town_values(code, settings=s)
    table = indicator_table(s, strict=(code,))
    values = table.loc[code]
    peer_table = table.reindex(selection.peers["insee"])
    reasons = _missing_reasons(code, values, s, table.attrs.get("facilities_error"))
    ref = communes.load_reference(s).set_index("insee")
    france = table.loc[communes.typology_groups(ref.reset_index())["France"].to_numpy()]
    weights = ref["pop_2023"].astype(float).reindex(france.index)
    growth_france = communes.typology_stats(2023, settings=s).set_index("groupe").at[
        "France", "croissance_depuis_2016"] * 100
    rows, peer_values = [], {}
    for ind in INDICATORS:
        v = values[ind.key]
        pv = peer_table[ind.key].dropna().to_numpy()
        nat = france[ind.key].dropna()
        peer_values[ind.key] = pv
        enough = pv.size >= selection.min_count
        nat_value, nat_kind = _france_reference(ind, nat, weights, growth_france)
        note = reasons.get(ind.key, "")
        if not enough and pv.size and not svg.is_missing(v):
            note = (f"{pv.size} pair(s) seulement avec une valeur (minimum "
                    f"{selection.min_count}) : percentile non calculé")
        rows.append({
            "theme": ind.theme,
            "indicateur": ind.key,
            "libelle": ind.label,
            "unite": ind.unit,
            "sens": ind.sens,
            "valeur": v,
            "valeur_texte": ind.format(v),
            "mediane_pairs": float(np.median(pv)) if pv.size else np.nan,
            "mediane_pairs_texte": ind.format(float(np.median(pv))) if pv.size else "n.d.",
            "n_pairs": int(pv.size),
            "percentile_pairs": percentile_rank(v, pv) if enough else None,
            "part_pairs_inferieurs": float((pv < v).mean()) if pv.size and enough else np.nan,
            "part_pairs_superieurs": float((pv > v).mean()) if pv.size and enough else np.nan,
            "mediane_france": float(nat.median()) if len(nat) else np.nan,
            "valeur_france": nat_value,
            "reference_france": nat_kind,
            "n_france": len(nat),
            "note": note,
            "source": THEME_SOURCES[ind.theme],
        })
    out = pd.DataFrame(rows)
    out["percentile_pairs"] = out["percentile_pairs"].astype(float)

    years = list(communes.POPULATION_YEARS)
    pops = ref[[f"pop_{y}" for y in years]].astype(float)
    index = pops.div(pops["pop_2016"].where(pops["pop_2016"] > 0), axis=0) * 100
    peer_index = index.reindex(selection.peers["insee"])
    # France as in typology-stats: mainland + DROM, communes with both populations
    national = pd.concat([communes.typology_stats(y, settings=s) for y in years])
    national = national[national["groupe"] == "France"].set_index("annee")
    history = pd.DataFrame({
        "annee": years,
        "population": pops.loc[code].to_numpy(),
        "commune": index.loc[code].to_numpy(),
        "pairs_mediane": peer_index.median().to_numpy(),
        "france": ((1 + national["croissance_depuis_2016"].reindex(years)) * 100).to_numpy(),
    })
    missing = [f"{_BY_KEY[k].label} : {why}" for k, why in reasons.items()]
    theme_sections = themes.portrait_sections(code, selection.peers["insee"], settings=s)
    return Portrait(
        insee=code, card=card, peers=selection, table=out, peer_values=peer_values,
        history=history, missing=missing,
        built=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        vintages=_vintages(s),
        facility_trend=facility_trends.town_trend(code, selection.peers["insee"], settings=s),
        theme_sections=theme_sections,
        distinctions=distinguishing_indicators(out, min_peers=selection.min_count),
        sources=_sources_fr(s, themes.section_datasets(theme_sections)),
    )


def _france_reference(ind: Indicator, values: pd.Series, weights: pd.Series,
                      growth_pct: float) -> tuple[float, str]:
    """The France value of an indicator and what it is (French): the national ratio
    (population-weighted mean) for APL and per-10,000 counts, the overall growth for the
    population growth, else the median of the communes with a value."""
    if ind.key == "pop_croissance_2016_2023_pct":
        return float(growth_pct), "évolution d'ensemble"
    if ind.theme == THEME_APL or ind.key.endswith("_per_10k"):
        w = weights.reindex(values.index).fillna(0)
        if w.sum() > 0:
            return float(np.average(values, weights=w)), "moyenne pondérée par la population"
    return (float(values.median()) if len(values) else np.nan), "médiane des communes"


#: French wording of the catalogue's producer notes (the catalogue is in English).
_PRODUCER_FR = ((", packaged by ", ", mis en forme par "), (" packaged by ", " mis en forme par "),
                ("per-commune files by", "fichiers par commune :"),
                ("OpenStreetMap contributors", "contributeurs OpenStreetMap"),
                ("Geofabrik extract", "extrait Geofabrik"))


def _french(text: str) -> str:
    for en, fr in _PRODUCER_FR:
        text = text.replace(en, fr)
    return text


def _sources_fr(s: Settings, extra: Iterable[str] = ()) -> list[dict[str, str]]:
    """The national sources of the portrait, in French (data, producer, vintage,
    licence, link); ``extra``: more dataset ids (the themes' downloaded files)."""
    out = []
    for ds_id in ("communes_cog", "populations", "apl_mg", "pvd", "acv", "centralite",
                  "densite", "bpe_2013_counts", "museofile", "cinemas", "festivals",
                  "eoliennes", "landcover_communes", *extra):
        try:
            ds = sources.get_dataset(ds_id, s)
        except UnknownDatasetError:  # a trimmed catalogue: leave the line out
            continue
        out.append({"donnees": _french(ds.title), "producteur": _french(ds.producer),
                    "millesime": _french(ds.vintage), "licence": ds.licence,
                    "lien": ds.homepage or ""})
    return out


def _vintages(s: Settings) -> dict[str, str]:
    out = {}
    for ds_id, label in (("communes_cog", "Communes"), ("populations", "Populations légales"),
                         ("apl_mg", "APL"), ("pvd", "Petites villes de demain"),
                         ("acv", "Action Cœur de Ville"), ("centralite", "Centralités"),
                         ("densite", "Densité")):
        try:
            ds = sources.get_dataset(ds_id, s)
        except UnknownDatasetError:  # a trimmed catalogue: leave the line out
            continue
        out[label] = f"{ds.producer}, {ds.vintage}"
    return out


# --- what distinguishes the town ----------------------------------------------------------

#: Columns :func:`distinguishing_indicators` reads from a portrait-like table.
DISTINCTION_COLUMNS = ("indicateur", "libelle", "unite", "sens", "valeur", "mediane_pairs",
                       "n_pairs", "percentile_pairs", "part_pairs_inferieurs",
                       "part_pairs_superieurs")


def _text(value: object, unit: str) -> str:
    if svg.is_missing(value):
        return "n.d."
    v = float(value)  # type: ignore[arg-type]
    digits = 0 if abs(v) >= 100 or float(v).is_integer() else 1 if abs(v) >= 10 else 2
    text = svg.format_fr(v, digits)
    return f"{text}\u202f{unit}" if unit in {"min", "MW", "%"} else text


def distinguishing_indicators(table: pd.DataFrame, *, n: int = 3,
                              min_peers: int = 5) -> pd.DataFrame:
    """What distinguishes a town from its peers: its ``n`` strongest and ``n`` weakest
    indicators, ranked by the gap to the peers, with one plain-French sentence each.

    Parameters
    ----------
    table
        One row per indicator with :data:`DISTINCTION_COLUMNS` (the portrait's table):
        ``sens`` is ``plus`` when a higher value is better (APL, facilities), ``moins``
        when lower is better (access times), empty for indicators that are neither
        (population, land-cover shares: left out); ``percentile_pairs`` in 0..100;
        ``part_pairs_inferieurs`` / ``_superieurs`` the shares (0..1) of peers strictly
        below / above the town. Optional ``valeur_texte`` and ``mediane_pairs_texte``
        columns give the values as they should read.
    n
        Indicators per side.
    min_peers
        Only indicators compared with at least this many peers (fewer is not a
        distribution).

    Returns
    -------
    DataFrame
        ``cote`` (``fort`` / ``faible``), ``rang`` (1 = largest gap), ``indicateur``,
        ``libelle``, ``ecart`` (the percentile's distance from 50, positive when the town
        does better than its median peer), ``n_pairs``, ``phrase``; strengths first.
        Ties at the median are no gap (the percentile is 50).
    """
    missing = [c for c in DISTINCTION_COLUMNS if c not in table.columns]
    if missing:
        raise MissingColumnsError("portrait table", missing, list(table.columns))
    t = table[(table["n_pairs"] >= min_peers) & table["valeur"].notna()
              & table["percentile_pairs"].notna() & table["sens"].isin(["plus", "moins"])]
    t = t.assign(ecart=(t["percentile_pairs"].astype(float) - 50)
                 * np.where(t["sens"] == "plus", 1.0, -1.0))
    rel = ((t["valeur"].astype(float) - t["mediane_pairs"].astype(float)).abs()
           / t["mediane_pairs"].astype(float).abs().clip(lower=1e-9))
    t = t.assign(_rel=rel.fillna(0))
    rows = []
    for side, part in (("fort", t[t["ecart"] > 0].sort_values(["ecart", "_rel"],
                                                                ascending=False)),
                       ("faible", t[t["ecart"] < 0].sort_values(["ecart", "_rel"],
                                                                  ascending=[True, False]))):
        for rank, r in enumerate(part.head(n).to_dict("records"), start=1):
            rows.append({"cote": side, "rang": rank, "indicateur": r["indicateur"],
                         "libelle": r["libelle"], "ecart": float(r["ecart"]),
                         "n_pairs": int(r["n_pairs"]), "phrase": _sentence(r)})
    return pd.DataFrame(rows, columns=["cote", "rang", "indicateur", "libelle", "ecart",
                                       "n_pairs", "phrase"])


def _sentence(r: Mapping[str, Any]) -> str:
    """``Libellé : valeur, plus élevé que pour 82 % des 120 communes comparables
    (médiane : 2,4).``"""
    unit = str(r.get("unite") or "")
    value = r.get("valeur_texte") or _text(r["valeur"], unit)
    median = r.get("mediane_pairs_texte") or _text(r["mediane_pairs"], unit)
    higher = float(r["valeur"]) > float(r["mediane_pairs"])
    share = float(r["part_pairs_inferieurs"] if higher else r["part_pairs_superieurs"])
    if unit == "min":
        word = "plus long" if higher else "plus court"
    else:
        word = "plus élevé" if higher else "plus bas"
    label = str(r["libelle"])
    if unit and unit not in {"min", "%", "MW", "nombre", "part", "habitants"}:
        label += f" ({unit})"
    return (f"{label} : {value}, {word} que pour "
            f"{svg.format_fr(share * 100, 0)}\u202f% des {report.fmt_count(r['n_pairs'])} "
            f"communes comparables (médiane : {median}).")


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


# --- national statistics by typology ----------------------------------------------------------

#: Periods of the population growth table (first and last legal population year).
PERIODS: tuple[tuple[int, int], ...] = ((2016, 2019), (2019, 2020), (2020, 2022),
                                        (2022, 2023), (2016, 2023))


def typology_tables(settings: Settings | None = None) -> dict[str, pd.DataFrame]:
    """The national statistics by typology (Data Territoria tables).

    Groups: petite ville, ville moyenne, grande ville, PVD and ACV towns, France
    (:func:`geo.communes.typology_groups`: current communes, mainland France and DROM).
    The choices, each labelled in the outputs:

    - a year's figures classify communes by **that year's** legal population
      (``typologie_annee``); the same figures on today's typology (2023) are given
      beside them (``*_typologie_2023``);
    - growth over a period is given two ways: on today's typology (``croissance``, the
      same communes at both ends) and for the **start-year cohort** (communes classified
      by their population at the start of the period, ``croissance_cohorte``);
    - APL of general practitioners: both DREES columns, practitioners aged 65 or less
      (``apl_mg``, the headline one) and without age bound (``apl_mg_tous_ages``).

    Tables:

    ``population``   per group and year: communes, population, share of the national
                     population (0..1) and growth since 2016, on the year's typology,
                     and the communes, population and share on the 2023 typology;
    ``croissance``   per group and period: populations at both ends (communes with both),
                     growth and average annual growth (0.01 = +1 %/year) on the 2023
                     typology, then the same for the start-year cohort;
    ``apl``          per group and profession: communes with a value, median over
                     communes, mean weighted by the 2023 population and, for general
                     practitioners, the shares of communes and of population (2023) with
                     ``apl_mg < settings.apl_threshold``;
    ``equipements``  per group and facility category, when the national counts exist:
                     facilities, population, facilities per 10,000 inhabitants (total /
                     population) and the median over communes;
    ``occupation_sols`` per group, where the national land-cover table exists
                     (``data/interim/landcover_communes.parquet``): communes covered and
                     their area, and the share of each CORINE level-1 class of the
                     covered area (area-weighted);
    ``synthese``     one row per group with the headline figures.
    """
    s = settings or get_settings()
    ref = communes.load_reference(s).set_index("insee")
    groups = {k: v.to_numpy() for k, v in communes.typology_groups(ref.reset_index()).items()}
    cols = ["groupe", "annee", "typologie_annee", "communes", "population",
            "part_population_nationale", "croissance_depuis_2016"]
    per_year = pd.concat([communes.typology_stats(y, settings=s)
                          for y in communes.POPULATION_YEARS], ignore_index=True)[cols]
    fixed = pd.concat([communes.typology_stats(y, settings=s, typology_year=2023)
                       for y in communes.POPULATION_YEARS], ignore_index=True)
    fixed = fixed[["groupe", "annee", "communes", "population", "part_population_nationale"]]
    population = per_year.merge(fixed.rename(columns={
        "communes": "communes_typologie_2023", "population": "population_typologie_2023",
        "part_population_nationale": "part_population_nationale_typologie_2023"}),
        on=["groupe", "annee"], how="left")

    def growth(part: pd.DataFrame, a: int, b: int) -> tuple[int, float, float]:
        both = part[f"pop_{a}"].notna() & part[f"pop_{b}"].notna()
        return (int(both.sum()), float(part.loc[both, f"pop_{a}"].sum()),
                float(part.loc[both, f"pop_{b}"].sum()))

    cohorts = {a: communes.typology_groups(ref.reset_index(), year=a) for a, _ in PERIODS}
    rows = []
    for name, mask in groups.items():
        for a, b in PERIODS:
            n, pa, pb = growth(ref[mask], a, b)
            g = pb / pa - 1 if pa else np.nan
            nc, ca, cb = growth(ref[cohorts[a][name].to_numpy()], a, b)
            gc = cb / ca - 1 if ca else np.nan
            rows.append({"groupe": name, "periode": f"{a}-{b}", "debut": a, "fin": b,
                         "communes": n, "population_debut": int(pa),
                         "population_fin": int(pb), "croissance": g,
                         "croissance_annuelle": (1 + g) ** (1 / (b - a)) - 1,
                         "communes_cohorte": nc, "population_debut_cohorte": int(ca),
                         "population_fin_cohorte": int(cb), "croissance_cohorte": gc,
                         "croissance_annuelle_cohorte": (1 + gc) ** (1 / (b - a)) - 1})
    croissance = pd.DataFrame(rows)

    apl = indicators.apl_by_commune(s).set_index("insee").reindex(ref.index)
    pop23 = ref["pop_2023"].astype(float)
    rows = []
    for name, mask in groups.items():
        for prof in indicators.APL_PROFESSIONS:
            vals = apl.loc[mask, prof.field]
            ok = vals.notna()
            w = pop23[mask][ok]
            row = {"groupe": name, "indicateur": prof.field, "profession": prof.label,
                   "unite": prof.unit, "communes": int(mask.sum()),
                   "communes_avec_apl": int(ok.sum()),
                   "mediane": float(vals[ok].median()) if ok.any() else np.nan,
                   "moyenne_ponderee_population": float(np.average(vals[ok], weights=w))
                   if ok.any() and w.sum() > 0 else np.nan,
                   "seuil": np.nan, "part_communes_sous_seuil": np.nan,
                   "part_population_sous_seuil": np.nan}
            if prof.field == "apl_mg":
                below = vals[ok] < s.apl_threshold
                row["seuil"] = s.apl_threshold
                row["part_communes_sous_seuil"] = float(below.mean()) if ok.any() else np.nan
                row["part_population_sous_seuil"] = (float(w[below].sum() / w.sum())
                                                     if w.sum() > 0 else np.nan)
            rows.append(row)
    apl_table = pd.DataFrame(rows)

    tables = {"population": population, "croissance": croissance, "apl": apl_table}
    fac, fac_error = _national_facilities(s)
    if fac is not None:
        fac = fac.reindex(ref.index)
        rows = []
        for name, mask in groups.items():
            for cat, label in _FACILITY_COUNTS.items():
                col = f"n_{cat}"
                if col not in fac.columns:
                    continue
                n = pd.to_numeric(fac.loc[mask, col], errors="coerce").astype(float)
                pop = pop23[mask]
                ok = n.notna() & pop.notna() & (pop > 0)
                per10k = n[ok] / pop[ok] * 10_000
                rows.append({"groupe": name, "categorie": cat, "libelle": label,
                             "communes": int(ok.sum()),
                             "equipements": float(n[ok].sum()),
                             "population": float(pop[ok].sum()),
                             "pour_10k": float(n[ok].sum() / pop[ok].sum() * 10_000)
                             if ok.any() else np.nan,
                             "mediane_communes_pour_10k": float(per10k.median())
                             if ok.any() else np.nan})
        tables["equipements"] = pd.DataFrame(rows)
    else:
        log.warning("no facility statistics by typology: %s", fac_error)
    landcover_table = _landcover_by_group(ref, groups, s)
    if landcover_table is not None:
        tables["occupation_sols"] = landcover_table

    synth = population[population["annee"] == 2023].set_index("groupe")[
        ["communes", "population", "part_population_nationale"]].copy()
    g = croissance[croissance["periode"] == "2016-2023"].set_index("groupe")
    synth["croissance_2016_2023"] = g["croissance"]
    synth["croissance_cohorte_2016_2023"] = g["croissance_cohorte"]
    synth["croissance_annuelle_2016_2023"] = g["croissance_annuelle"]
    mg = apl_table[apl_table["indicateur"] == "apl_mg"].set_index("groupe")
    synth["apl_mg_mediane"] = mg["mediane"]
    synth["apl_mg_tous_ages_mediane"] = apl_table[
        apl_table["indicateur"] == "apl_mg_tous_ages"].set_index("groupe")["mediane"]
    synth["apl_mg_part_communes_sous_seuil"] = mg["part_communes_sous_seuil"]
    synth["apl_mg_part_population_sous_seuil"] = mg["part_population_sous_seuil"]
    if "equipements" in tables:
        wide = tables["equipements"].pivot(index="groupe", columns="categorie",
                                           values="pour_10k")
        for cat in _FACILITY_COUNTS:
            if cat in wide.columns:
                synth[f"n_{cat}_per_10k"] = wide[cat]
    tables["synthese"] = synth.reset_index()
    return tables


def _landcover_by_group(ref: pd.DataFrame, groups: Mapping[str, np.ndarray],
                        s: Settings) -> pd.DataFrame | None:
    """Area-weighted CORINE level-1 shares per group over the communes the national
    land-cover table covers (None without the table)."""
    path = s.interim_dir / "landcover_communes.parquet"
    if not path.exists():
        log.info("no land cover by typology: %s absent (make landcover-communes)", path)
        return None
    lc = _read_table(path, "national land-cover table").set_index("insee")
    lc = lc[lc.index.isin(ref.index)]
    if lc.empty:
        return None
    polys = communes.commune_polygons(list(lc.index), crs="EPSG:4326", settings=s)
    geod = pyproj.Geod(ellps="WGS84")
    area = pd.Series([abs(geod.geometry_area_perimeter(g)[0]) for g in polys.geometry],
                     index=polys["insee"].astype(str)).reindex(lc.index)
    covered = area * (1 - lc["clc_nodata_share"].fillna(0).clip(0, 1))
    rows = []
    for name, mask in groups.items():
        codes = ref.index[mask]
        part = lc.index.isin(codes) & covered.notna().to_numpy()
        w = covered[part]
        row: dict[str, Any] = {"groupe": name, "communes": int(mask.sum()),
                               "communes_couvertes": int(part.sum()),
                               "surface_couverte_km2": float(w.sum() / 1e6)}
        for key in _CLC_LEVEL1:
            col = f"clc_{key}_share"
            row[col] = (float((lc.loc[part, col].fillna(0) * area[part]).sum() / w.sum())
                        if w.sum() > 0 else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


_TABLE_FILES = {
    "synthese": "typologie_synthese.csv",
    "population": "typologie_population.csv",
    "croissance": "typologie_croissance.csv",
    "apl": "typologie_apl.csv",
    "equipements": "typologie_equipements.csv",
    "occupation_sols": "typologie_occupation_sols.csv",
}


def _typology_charts(tables: Mapping[str, pd.DataFrame], threshold: float) -> dict[str, str]:
    pct = lambda v: svg.format_fr(v, 0 if abs(v) >= 10 else 1, percent=True)  # noqa: E731
    charts = {}
    pop = tables["population"]
    groups = [g for g in pop["groupe"].unique() if g != "France"]
    charts["part_population"] = svg.grouped_bar_chart(
        groups,
        {str(y): [float(pop[(pop.groupe == g) & (pop.annee == y)]
                        ["part_population_nationale"].iloc[0]) for g in groups]
         for y in communes.POPULATION_YEARS},
        title="Part de la population nationale par groupe et par année", fmt=pct,
    )
    cr = tables["croissance"]
    all_groups = list(cr["groupe"].unique())
    charts["croissance"] = svg.grouped_bar_chart(
        all_groups,
        {f"{a}-{b}": [float(cr[(cr.groupe == g) & (cr.periode == f"{a}-{b}")]
                            ["croissance_annuelle"].iloc[0]) for g in all_groups]
         for a, b in PERIODS},
        title="Croissance annuelle moyenne de la population par période",
        fmt=lambda v: svg.format_fr(v, 2, percent=True),
    )
    mg = tables["apl"][tables["apl"]["indicateur"] == "apl_mg"]
    charts["apl_mg_mediane"] = svg.bar_chart(
        list(mg["groupe"]), list(mg["mediane"]),
        title="APL aux médecins généralistes : médiane des communes (consultations/hab./an)",
        fmt=lambda v: svg.format_fr(v, 2), reference=threshold,
        reference_label=f"seuil {svg.format_fr(threshold, 1)}",
        highlight=[bool(v < threshold) for v in mg["mediane"]],
    )
    charts["apl_mg_sous_seuil"] = svg.grouped_bar_chart(
        list(mg["groupe"]),
        {"communes": list(mg["part_communes_sous_seuil"]),
         "population": list(mg["part_population_sous_seuil"])},
        title=f"Part des communes et de la population avec une APL généralistes "
              f"< {svg.format_fr(threshold, 1)}", fmt=pct,
    )
    if "equipements" in tables:
        eq = tables["equipements"]
        for name, keys, title, digits in (
            ("equipements", _FACILITY_CATEGORIES, "Équipements pour 10 000 habitants par "
             "catégorie", 0),
            ("culture_energie", ("cinema", "musee", "festival", "eolienne"),
             "Cinémas, musées, festivals et éoliennes pour 10 000 habitants", 2),
        ):
            part = eq[eq["categorie"].isin(list(keys))]
            if part.empty:
                continue
            cats = list(dict.fromkeys(part["libelle"]))
            charts[name] = svg.grouped_bar_chart(
                cats,
                {g: [float(part[(part.groupe == g) & (part.libelle == c)]["pour_10k"].iloc[0])
                     for c in cats] for g in part["groupe"].unique()},
                title=title, fmt=functools.partial(svg.format_fr, digits=digits),
            )
    return charts


_COLUMN_LABELS = {
    "groupe": "Groupe", "annee": "Année", "communes": "Communes", "population": "Population",
    "part_population_nationale": "Part de la population nationale",
    "croissance_depuis_2016": "Évolution depuis 2016", "periode": "Période",
    "population_debut": "Population début", "population_fin": "Population fin",
    "croissance": "Évolution", "croissance_annuelle": "Évolution annuelle moyenne",
    "profession": "Profession", "unite": "Unité", "communes_avec_apl": "Communes avec APL",
    "mediane": "Médiane", "moyenne_ponderee_population": "Moyenne pondérée (population)",
    "part_communes_sous_seuil": "Part des communes sous le seuil",
    "part_population_sous_seuil": "Part de la population sous le seuil",
    "libelle": "Catégorie", "equipements": "Équipements", "pour_10k": "Pour 10 000 hab.",
    "mediane_communes_pour_10k": "Médiane des communes pour 10 000 hab.",
    "croissance_2016_2023": "Évolution 2016-2023 (typologie 2023)",
    "croissance_cohorte_2016_2023": "Évolution 2016-2023 (cohorte, typologie 2016)",
    "croissance_annuelle_2016_2023": "Évolution annuelle 2016-2023 (typologie 2023)",
    "apl_mg_mediane": "APL généralistes de 65 ans et moins, médiane",
    "apl_mg_tous_ages_mediane": "APL généralistes tous âges, médiane",
    "communes_couvertes": "Communes couvertes", "surface_couverte_km2": "Surface couverte (km²)",
    "apl_mg_part_communes_sous_seuil": "APL généralistes < seuil, part des communes",
    "apl_mg_part_population_sous_seuil": "APL généralistes < seuil, part de la population",
}
_SHARE_COLUMNS = {"part_population_nationale", "croissance_depuis_2016", "croissance",
                  "croissance_cohorte_2016_2023", *(f"clc_{k}_share" for k in _CLC_LEVEL1),
                  "croissance_annuelle", "part_communes_sous_seuil",
                  "part_population_sous_seuil", "croissance_2016_2023",
                  "croissance_annuelle_2016_2023", "apl_mg_part_communes_sous_seuil",
                  "apl_mg_part_population_sous_seuil"}
_HIDDEN_COLUMNS = {"debut", "fin", "indicateur", "categorie", "seuil"}


def _df_html(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if c not in _HIDDEN_COLUMNS]
    header = [_COLUMN_LABELS.get(c, c.replace("_", " ")) for c in cols]
    rows, nums = [], set()
    for r in df[cols].itertuples(index=False):
        cells = []
        for i, (col, v) in enumerate(zip(cols, r, strict=True)):
            if isinstance(v, str):
                cells.append(escape(v))
                continue
            nums.add(i)
            if col in _SHARE_COLUMNS:
                cells.append(svg.format_fr(v, 2 if "annuelle" in col else 1, percent=True))
            elif col in {"communes", "population", "population_debut", "population_fin",
                         "communes_avec_apl", "equipements", "annee"}:
                cells.append(str(int(v)) if col == "annee" else report.fmt_count(v))
            else:
                cells.append(svg.format_fr(v, 2))
        rows.append(cells)
    return report.table(header, rows, num_cols=sorted(nums))


def render_typology_html(tables: Mapping[str, pd.DataFrame], *, threshold: float,
                         cog_year: int, charts: Mapping[str, str] | None = None,
                         extra_sections: Iterable[str] = ()) -> str:
    """The national statistics as one self-contained French HTML page (the CSV files hold
    the same figures in long format). ``charts``: the SVG charts when already drawn;
    ``extra_sections``: HTML sections appended before the footer (facility trends)."""
    charts = _typology_charts(tables, threshold) if charts is None else charts
    pct1 = lambda v: svg.format_fr(v, 1, percent=True)  # noqa: E731
    pct2 = lambda v: svg.format_fr(v, 2, percent=True)  # noqa: E731
    apl = tables["apl"].assign(
        colonne=lambda d: d["profession"] + " (" + d["unite"] + ")")
    mg = apl[apl["indicateur"] == "apl_mg"]
    mg_rows = [[escape(r.groupe), svg.format_fr(r.mediane, 2),
                pct1(r.part_communes_sous_seuil), pct1(r.part_population_sous_seuil),
                report.fmt_count(r.communes_avec_apl)] for r in mg.itertuples()]
    parts = [
        "<header><h1>Statistiques nationales par typologie</h1>"
        f"<p class=\"sub\">Petites villes (&lt; 10 000 hab.), villes moyennes (10 000 à "
        f"100 000), grandes villes (&gt; 100 000), communes Petites villes de demain et "
        f"Action Cœur de Ville. Communes COG {cog_year} de France (métropole et DROM, comme "
        f"les portraits des villes).</p>"
        "<p class=\"note\"><b>Choix de calcul.</b> Pour une année donnée, les communes sont "
        "classées selon leur population légale <i>de cette année</i> (typologie de l'année) ; "
        "la même année sur la typologie 2023 est donnée à côté. L'évolution sur une période "
        "est calculée de deux façons : sur la typologie 2023 (mêmes communes aux deux dates) "
        "et pour la <i>cohorte</i> de l'année de début (communes classées selon leur "
        "population en début de période). PVD, ACV et France ne dépendent pas de la "
        "population : les deux calculs y coïncident.</p></header>",
        "<h2>Synthèse</h2>", _df_html(tables["synthese"]),
        "<h2>Population</h2>", f"<figure>{charts['part_population']}</figure>",
        "<h3>Population légale</h3>",
        report.pivot(tables["population"], "annee", "population", report.fmt_count),
        "<h3>Part de la population nationale (typologie de l'année)</h3>",
        report.pivot(tables["population"], "annee", "part_population_nationale", pct1),
        "<h3>Part de la population nationale (typologie 2023 pour toutes les années)</h3>",
        report.pivot(tables["population"], "annee", "part_population_nationale_typologie_2023",
                     pct1),
        "<h2>Évolution de la population par période</h2>",
        f"<figure>{charts['croissance']}</figure>",
        "<h3>Évolution annuelle moyenne</h3>",
        report.pivot(tables["croissance"], "periode", "croissance_annuelle", pct2),
        "<h3>Évolution sur la période (typologie 2023)</h3>",
        report.pivot(tables["croissance"], "periode", "croissance", pct1),
        "<h3>Évolution sur la période (cohorte : typologie de l'année de début)</h3>",
        report.pivot(tables["croissance"], "periode", "croissance_cohorte", pct1),
        "<h2>Accès aux soins (APL, DREES 2021)</h2>",
        f"<figure>{charts['apl_mg_mediane']}</figure>",
        f"<figure>{charts['apl_mg_sous_seuil']}</figure>",
        "<h3>Médecins généralistes de 65 ans et moins</h3>",
        report.table(["Groupe", "APL médiane", f"Communes sous {svg.format_fr(threshold, 1)}",
                     f"Population sous {svg.format_fr(threshold, 1)}", "Communes avec APL"],
                    mg_rows, num_cols=[1, 2, 3, 4]),
        "<h3>APL médiane des communes, par profession (les deux colonnes DREES des "
        "généralistes)</h3>",
        report.pivot(apl, "colonne", "mediane", lambda v: svg.format_fr(v, 2)),
        f"<p class=\"note\">Seuil de sous-dotation en médecins généralistes : "
        f"{svg.format_fr(threshold, 1)} consultations par habitant et par an (généralistes de "
        f"65 ans et moins). Part de la population : population légale 2023 des communes sous "
        f"le seuil, rapportée à celle des communes du groupe ayant une APL.</p>",
    ]
    if "equipements" in tables:
        parts += ["<h2>Équipements pour 10 000 habitants</h2>",
                  *(f"<figure>{charts[k]}</figure>" for k in ("equipements", "culture_energie")
                    if k in charts),
                  report.pivot(tables["equipements"], "libelle", "pour_10k",
                               lambda v: svg.format_fr(v, 1)),
                  "<p class=\"note\">Total des équipements du groupe rapporté à sa "
                  "population légale 2023, sur les communes couvertes par les sources "
                  "nationales (BPE par commune, Muséofile, CNC, festivals, Géorisques : voir "
                  "data/interim/facilities_communes.parquet).</p>"]
    else:
        parts.append("<h2>Équipements</h2><p class=\"warn\">Comptages nationaux d'équipements "
                     "indisponibles (voir le journal).</p>")
    if "occupation_sols" in tables:
        lc = tables["occupation_sols"]
        lc_rows = [[escape(r["groupe"]), report.fmt_count(r["communes_couvertes"]),
                    report.fmt_count(r["communes"]),
                    *(pct1(r[f"clc_{k}_share"]) for k in _CLC_LEVEL1)]
                   for r in lc.to_dict("records")]
        parts += ["<h2>Occupation des sols (CORINE Land Cover)</h2>",
                  report.table(["Groupe", "Communes couvertes", "Communes du groupe",
                                *(f"Part des {label}" for label in _CLC_LEVEL1.values())],
                               lc_rows, num_cols=range(1, 3 + len(_CLC_LEVEL1))),
                  "<p class=\"note\">Seulement là où la table nationale d'occupation des sols "
                  "existe (data/interim/landcover_communes.parquet : les communes couvertes par "
                  "un jeu CORINE catalogué, pas toute la France) ; parts de la surface couverte, "
                  "pondérées par la surface des communes.</p>"]
    parts.extend(extra_sections)
    parts.append(f"<footer>Généré par pvdgeo {escape(__version__)} le "
                 f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</footer>")
    return report.page("Statistiques nationales par typologie", "\n".join(parts))


def write_typology_stats(
    out_dir: Path,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    settings: Settings | None = None,
) -> list[Path]:
    """Write the national statistics by typology into ``out_dir``: one CSV per table
    (``typologie_<table>.csv``), SVG charts (``typologie_<chart>.svg``) and ``index.html``,
    with the facility trends over BPE vintages (:mod:`geo.facility_trends`) and the Data
    Territoria themes (:func:`geo.themes.write_typology_themes`: one table per theme, or
    the theme reported as missing input).

    ``tables`` defaults to :func:`typology_tables`. Returns the paths written.
    """
    s = settings or get_settings()
    out = Path(out_dir)
    tables = typology_tables(s) if tables is None else tables
    paths = [_write_csv(df, out / _TABLE_FILES[name]) for name, df in tables.items()]
    charts = _typology_charts(tables, s.apl_threshold)
    for name, chart in charts.items():
        path = out / f"typologie_{name}.svg"
        write_text_atomic(path, '<?xml version="1.0" encoding="utf-8"?>\n' + chart + "\n")
        paths.append(path)
    trend_paths, trend_html = facility_trends.write_typology_trends(out, settings=s)  # issue 16
    theme_paths, theme_html = themes.write_typology_themes(out, settings=s)  # issue 15
    paths += trend_paths + theme_paths
    index = out / "index.html"
    write_text_atomic(index, render_typology_html(
        tables, threshold=s.apl_threshold, cog_year=s.cog_year, charts=charts,
        extra_sections=[*([trend_html] if trend_html else []), *theme_html]))
    paths.append(index)
    log.info("wrote %d files to %s", len(paths), out)
    return paths
