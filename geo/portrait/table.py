"""The portrait's indicators and their data: :class:`Indicator` and :data:`INDICATORS`
(key, French label, unit, theme), the mid-rank percentile (:func:`percentile_rank`), the
own rows of the town runs (:func:`local_rows`) and one table of every indicator per commune
from the national tables and the town runs (:func:`indicator_table`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from geo import _svg as svg
from geo import communes, facilities, indicators, vocab
from geo._io import write_parquet
from geo.errors import GeoError, InputFileError, MissingColumnsError
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.portrait: log lines keep their logger name


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
_CLC_LEVEL1 = vocab.LEVEL1_LABELS_INLINE_FR
_ACCESS_TARGETS = {
    "medecin_generaliste": "jusqu'au médecin généraliste le plus proche",
    "pharmacie": "jusqu'à la pharmacie la plus proche",
    "boulangerie": "jusqu'à la boulangerie la plus proche",
    "ecole": "jusqu'à l'école la plus proche",
}
_MODES = vocab.MODE_LABELS_FR

INDICATORS: tuple[Indicator, ...] = (
    Indicator("population", "Population légale 2023", "habitants", THEME_POPULATION, 0),
    Indicator("pop_croissance_2016_2023_pct", "Évolution de la population 2016-2023", "%",
              THEME_POPULATION, 1, signed=True, sens="plus"),
    *(Indicator(p.field, f"APL aux {p.label}", p.unit, THEME_APL,
                2 if p.field.startswith("apl_mg") else 1, sens="plus")
      for p in vocab.APL_PROFESSIONS),
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
    order: list[str] = []  # towns compared, in folder order
    fresh: dict[str, pd.Series] = {}  # rows read again (changed runs)
    new_index: list[pd.Series] = []  # their cache entries
    if s.out_dir.is_dir():
        versions = known["_version"].to_dict() if len(known) else {}
        for town_dir in sorted(p for p in s.out_dir.iterdir()
                               if p.is_dir() and _INSEE_DIR.fullmatch(p.name)):
            version = _run_version(town_dir)
            if version is None:
                continue
            insee = town_dir.name
            if versions.get(insee) == version:
                order.append(insee)
                continue
            try:
                row = _local_row(town_dir, insee)
            except InputFileError as exc:
                if insee in strict:
                    raise
                log.warning("town run %s left out of the comparison: %s", insee, exc)
                continue
            keep = pd.Series({"_version": version, "_empty": row is None})
            if row is not None:
                values = row.reindex([k for k in _BY_KEY if k in row.index])
                keep = pd.concat([keep, pd.to_numeric(values, errors="coerce")])
                fresh[insee] = values.rename(insee)
                order.append(insee)
            new_index.append(keep.rename(insee))
    if new_index:  # one concatenation, not one per town: a batch builds 1,645 rows at once
        changed = [k.name for k in new_index]
        known = pd.concat([known.drop(index=changed, errors="ignore"),
                           pd.DataFrame(new_index)])
        index = known.copy()
        index.index.name = "insee"
        numeric = [c for c in index.columns if c not in ("_version", "_empty")]
        index[numeric] = index[numeric].astype(float)
        write_parquet(index.reset_index().astype({"_empty": bool}), index_path)
    cached = [c for c in order if c not in fresh]
    if cached:
        empty = known.loc[cached, "_empty"].astype(bool)
        cached = [c for c in cached if not empty.at[c]]
        kept = set(cached)
        order = [c for c in order if c in fresh or c in kept]
    if not order:
        return pd.DataFrame(columns=["insee"]).set_index("insee")
    columns = [c for c in known.columns if c not in ("_version", "_empty")]
    parts = [known.loc[cached, columns]] if cached else []
    if fresh:
        parts.append(pd.DataFrame(list(fresh.values())))
    out = (pd.concat(parts) if len(parts) > 1 else parts[0]).loc[order].infer_objects()
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
    table = table.join(apl[[p.field for p in vocab.APL_PROFESSIONS]])
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
