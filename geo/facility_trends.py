"""Facility trends: the change of a commune's offer between BPE vintages.

Vintages
--------
Every catalogue dataset with a ``bpe_year`` is a BPE vintage (:func:`available_vintages`):
the per-commune counts of BPE 2009 and 2013 (mirror) and, in production, the geolocated
files of BPE 2018-2021 and 2023 once downloaded (``pvdgeo fetch bpe_xy_2021``...). Each is
read as equipments per commune code and TYPEQU code (:func:`read_vintage`); old commune
codes are re-keyed to the current COG with :func:`geo.communes.aggregate_to_current`
(counts summed over merged communes). A département that a vintage does not cover
(Mayotte before BPE 2013) has no count for it: empty, never zero.

One nomenclature
----------------
TYPEQU codes map to the subcategories of ``data/categories.toml`` (its ``bpe_2013`` and
``bpe_2021`` codes; a code never maps to two subcategories). The table de passage
``data/bpe_passage.toml`` (``settings.bpe_passage_file``, :func:`load_passage`) documents
how those codes changed: a code observed in two consecutive vintages is one type;
renumbered, split, merged and regrouped codes are joined into one *harmonised type*
(:func:`harmonise`, connected components of the codes over the vintages); redefined,
created and removed codes are types of their own vintages. A type therefore spans a range
of consecutive vintages. Between two vintages ``a < b`` a key (subcategory, group of
subcategories or category) is compared on the types present in both (*champ constant*):

- ``comparable``: every type of the key present in ``a`` or ``b`` is present in both;
- ``partiel``: some types are present in one vintage only; they are left out of the change
  and reported (``hors_champ_debut``, ``hors_champ_fin``);
- ``non comparable``: no type in both; no change is computed.

A type present in one vintage only is thus never counted as facilities created or closed.

Populations
-----------
Per 10,000 inhabitants uses, for each vintage, the legal population of the nearest year
the commune reference has (:data:`geo.communes.POPULATION_YEARS`, 2016-2023; ties go to
the earlier year): BPE 2009 and 2013 use the 2016 legal population (the earliest in the
reference; no older legal population is in the mirror, nor in the BPE count files), BPE
2018 uses 2019, 2021 uses 2020, 2023 uses 2023. With one population for both 2009 and
2013, their per-10k change is the absolute change over that population.

Outputs
-------
- :func:`commune_trends` / :func:`facility_trends_by_commune`: the national commune table
  ``data/interim/facility_trends_communes.parquet`` (fields in ARCHITECTURE.md);
- :func:`typology_trends`, :func:`write_typology_trends`: the trend by petites / moyennes /
  grandes villes, PVD, ACV and France for ``pvdgeo typology-stats --out DIR``;
- :func:`town_trend`, :func:`render_portrait_section`: the town's section of its portrait
  (town, peers, France, a chart over vintages).

The chain / independent split of shops stays a snapshot (OpenStreetMap names and brands,
or the latest geolocated BPE): its trend needs establishments with creation and closure
dates (SIRENE), see :data:`SNAPSHOT_NOTE`.
"""

from __future__ import annotations

import csv
import itertools
import logging
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from geo import _report as report
from geo import _svg as svg
from geo import communes, sources
from geo._categories import CATEGORY_KEYS, Categories, load_categories
from geo._insee import departement_of
from geo._io import (
    atomic_path,
    is_stale,
    read_parquet_cached,
    read_parquet_metadata,
    write_parquet,
    write_text_atomic,
)
from geo._io import head_text as _head_text
from geo._io import read_delimited as _read_csv
from geo.errors import DataSourceError, GeoError, InputFileError
from geo.settings import Settings, get_settings

__all__ = [
    "KEY_SUBCATEGORIES",
    "SNAPSHOT_NOTE",
    "TRENDS_FILE",
    "HarmonisedType",
    "Link",
    "Passage",
    "TownTrend",
    "TrendKey",
    "Vintage",
    "available_vintages",
    "bpe_code_subcategories",
    "commune_trends",
    "facility_trends_by_commune",
    "harmonise",
    "load_passage",
    "population_year_for",
    "read_vintage",
    "render_portrait_section",
    "render_typology_section",
    "town_trend",
    "trend_keys",
    "trend_pairs",
    "typology_trends",
    "write_commune_trends",
    "write_town_trend",
    "write_typology_trends",
]

log = logging.getLogger(__name__)

#: File name of the national commune table in ``settings.interim_dir``.
TRENDS_FILE = "facility_trends_communes.parquet"

#: Subcategories shown in the typology chart and the portrait table (with the categories
#: and the food shops group).
KEY_SUBCATEGORIES = ("boulangerie", "epicerie", "supermarche", "boucherie", "pharmacie",
                     "medecin_generaliste", "bureau_poste", "banque")
#: Keys drawn over the vintages in the portrait (a group of food shops, primary care).
PORTRAIT_CHART_KEYS = ("commerces_alimentaire", "sante_premier_recours")

#: What users are told about the chain / independent split (French, shown in the portrait
#: and the typology page).
SNAPSHOT_NOTE = (
    "La part des commerces appartenant à une chaîne reste une photographie : elle vient des "
    "noms et enseignes d'OpenStreetMap (ou de la BPE géolocalisée la plus récente), dont "
    "l'historique n'est pas exploité ici. Suivre son évolution demanderait les "
    "établissements du répertoire SIRENE (INSEE) avec leurs dates de création et de "
    "fermeture et leur enseigne, ou l'historique complet d'OpenStreetMap."
)

Status = Literal["comparable", "partiel", "non comparable"]
STATUS_LABELS = {"comparable": "comparable", "partiel": "partiel (champ commun)",
                 "non comparable": "un seul millésime"}

# --- the table de passage --------------------------------------------------------------------

#: Link kinds that join old and new codes into one type, and those that join nothing.
CONNECTING_KINDS = ("renumbered", "split", "merged", "regrouped")
SEPARATE_KINDS = ("redefined", "created", "removed")
_KIND_REASONS = {"redefined": "redéfini", "created": "créé", "removed": "supprimé"}


@dataclass(frozen=True, slots=True)
class Link:
    """One documented change of TYPEQU codes between two nomenclatures."""

    kind: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    label: str
    source: str
    since: int | None = None

    @property
    def connects(self) -> bool:
        """Whether the old and new codes are one type (same scope)."""
        return self.kind in CONNECTING_KINDS


@dataclass(frozen=True)
class Passage:
    """Parsed ``bpe_passage.toml``."""

    path: Path
    version: int
    links: tuple[Link, ...]

    def links_of(self, code: str) -> list[Link]:
        """Links naming ``code`` (old or new side)."""
        return [k for k in self.links if code in k.old or code in k.new]


def load_passage(settings: Settings | None = None, *, path: Path | None = None,
                 categories: Categories | None = None) -> Passage:
    """Read and check the table de passage (default ``settings.bpe_passage_file``).

    Every code must be a TYPEQU code that the categories map to a subcategory, and the
    codes a connecting link joins must map to one subcategory; a problem raises
    :class:`InputFileError` naming the link.
    """
    s = settings or get_settings()
    target = Path(path or s.bpe_passage_file)
    cats = categories or load_categories(s)
    try:
        stat = target.stat()
    except FileNotFoundError:
        raise InputFileError(f"table de passage {target} does not exist") from None
    passage = _read_passage(str(target), stat.st_mtime_ns, stat.st_size)
    code_sub = bpe_code_subcategories(cats)
    problems = []
    for i, link in enumerate(passage.links, start=1):
        where = f"{target} link {i} ({link.kind} {list(link.old)} -> {list(link.new)})"
        unmapped = [c for c in (*link.old, *link.new) if not code_sub.get(c)]
        if unmapped:
            problems.append(f"{where}: code(s) {', '.join(unmapped)} map to no subcategory "
                            "of the categories file")
        elif link.connects and len({code_sub[c] for c in (*link.old, *link.new)}) > 1:
            subs = sorted({code_sub[c] for c in (*link.old, *link.new)})
            problems.append(f"{where}: joins codes of several subcategories ({', '.join(subs)})")
    if problems:
        raise InputFileError("; ".join(problems))
    return passage


@lru_cache(maxsize=4)
def _read_passage(path: str, mtime_ns: int, size: int) -> Passage:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(f"table de passage {path}: cannot read it ({exc})") from None
    links, problems = [], []
    for i, entry in enumerate(doc.get("link", []), start=1):
        where = f"{path} link {i}"
        kind = entry.get("kind")
        old, new = tuple(entry.get("old", [])), tuple(entry.get("new", []))
        if kind not in (*CONNECTING_KINDS, *SEPARATE_KINDS):
            problems.append(f"{where}: kind {kind!r} is not one of "
                            + ", ".join((*CONNECTING_KINDS, *SEPARATE_KINDS)))
            continue
        if not all(isinstance(c, str) and len(c) == 4 for c in (*old, *new)):
            problems.append(f"{where}: old and new must be lists of 4-character TYPEQU codes")
            continue
        shape = {"renumbered": len(old) == 1 and len(new) == 1,
                 "split": len(old) == 1 and len(new) > 1,
                 "merged": len(old) > 1 and len(new) == 1,
                 "regrouped": len(old) > 1 and len(new) > 1,
                 "redefined": bool(old) and bool(new),
                 "created": not old and bool(new),
                 "removed": bool(old) and not new}[kind]
        if not shape:
            problems.append(f"{where}: a {kind} link cannot have {len(old)} old and "
                            f"{len(new)} new code(s)")
            continue
        if not entry.get("source"):
            problems.append(f"{where}: source is required")
            continue
        since = entry.get("since")
        links.append(Link(kind=kind, old=old, new=new, label=str(entry.get("label", "")),
                          source=str(entry["source"]),
                          since=int(since) if since is not None else None))
    if problems:
        raise InputFileError("; ".join(problems))
    return Passage(path=Path(path), version=int(doc.get("version", 1)), links=tuple(links))


def bpe_code_subcategories(categories: Categories) -> dict[str, str]:
    """TYPEQU code -> subcategory over both nomenclatures of the categories file
    (``bpe_2013`` and ``bpe_2021``); a code mapped to two subcategories raises."""
    out: dict[str, str] = {}
    for nom in ("2013", "2021"):
        for code, sub in categories.bpe_codes[nom].items():
            if out.setdefault(code, sub) != sub:
                raise InputFileError(
                    f"{categories.path}: BPE code {code} maps to {out[code]} (2013) and to "
                    f"{sub} (2021): the trends need one subcategory per code")
    return out


# --- vintages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vintage:
    """One BPE vintage: its year and the catalogue dataset holding it."""

    year: int
    dataset: str
    path: Path
    label: str


def available_vintages(settings: Settings | None = None) -> list[Vintage]:
    """The BPE vintages to compare, by year: every catalogue dataset with ``bpe_year``
    that is national (fetched when needed) or a production file already downloaded."""
    s = settings or get_settings()
    found: dict[int, Vintage] = {}
    for ds in sources.load_catalogue(s).values():
        year = ds.extra.get("bpe_year")
        if year is None:
            continue
        if ds.scope == "national":
            path = sources.ensure(ds.id, s)
        else:
            path = sources.dataset_path(ds.id, s)
            if not path.is_file():
                log.debug("BPE %s (%s) not downloaded: left out of the trends", year, ds.id)
                continue
        if int(year) in found:
            raise DataSourceError(f"two catalogue datasets hold BPE {year}: "
                                  f"{found[int(year)].dataset} and {ds.id}")
        found[int(year)] = Vintage(int(year), ds.id, path, f"{ds.producer}, {ds.vintage}")
    return [found[y] for y in sorted(found)]


def read_vintage(path: str | Path, *, label: str = "BPE") -> pd.DataFrame:
    """Equipments per commune code and TYPEQU code of one BPE file.

    Reads the per-commune count layout (``depcom``, ``typequ``, ``nb_equip``: the mirror's
    BPE 2009 and 2013) or the geolocated layout (one row per equipment: ``TYPEQU`` and
    ``DEPCOM``, or ``DCIRIS`` whose first five characters are the commune), plain,
    compressed or zipped. Returns ``depcom, typequ, n`` (int64), one row per pair.
    """
    path = Path(path)
    header = _head_text(path).splitlines()[0].upper() if path.is_file() else ""
    counts = "NB_EQUIP" in header
    if counts:
        df = _read_csv(path, label=label, required=["DEPCOM", "TYPEQU", "NB_EQUIP"],
                       upper=True)
        n = pd.to_numeric(df["NB_EQUIP"].str.replace(",", ".", regex=False), errors="coerce")
        if n.isna().any():
            bad = df.loc[n.isna(), "NB_EQUIP"].head(3).tolist()
            raise InputFileError(f"{label} ({path}): {int(n.isna().sum())} row(s) with an "
                                 f"unreadable nb_equip (e.g. {bad}); expected counts")
        depcom = df["DEPCOM"]
    else:
        df = _read_csv(path, label=label, required=["TYPEQU"], optional=["DEPCOM", "DCIRIS"],
                       upper=True)
        if "DEPCOM" in df.columns:
            depcom = df["DEPCOM"]
        elif "DCIRIS" in df.columns:
            depcom = df["DCIRIS"].str[:5]
        else:
            raise InputFileError(f"{label} ({path}): no DEPCOM nor DCIRIS column; expected "
                                 "the commune of each equipment")
        n = pd.Series(1, index=df.index)
    out = pd.DataFrame({"depcom": depcom.str.strip().str.zfill(5),
                        "typequ": df["TYPEQU"].str.strip().str.upper(),
                        "n": n.astype("int64")})
    out = out[out["depcom"].notna() & out["typequ"].notna()]
    return out.groupby(["depcom", "typequ"], as_index=False)["n"].sum()


def population_year_for(year: int, available: Iterable[int]) -> int:
    """The legal population year used for BPE ``year``: the nearest available one, the
    earlier on a tie (2009 -> 2016 with 2016-2023 available; 2021 -> 2020)."""
    years = sorted(set(available))
    if not years:
        raise DataSourceError("no legal population year available")
    return min(years, key=lambda y: (abs(y - year), y))


def trend_pairs(years: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs of vintages compared: consecutive ones, then first -> last when they differ."""
    ys = sorted(years)
    pairs = list(itertools.pairwise(ys))
    if len(ys) > 2:
        pairs.append((ys[0], ys[-1]))
    return pairs


# --- harmonised types ------------------------------------------------------------------------


@dataclass(frozen=True)
class HarmonisedType:
    """Codes of consecutive vintages that are one equipment type."""

    subcategory: str
    #: vintage year -> TYPEQU codes observed that year, for the years the type spans
    codes: dict[int, tuple[str, ...]]
    #: why the type starts after the first vintage / ends before the last (French)
    starts: str = ""
    ends: str = ""

    @property
    def first(self) -> int:
        """First vintage of the type."""
        return min(self.codes)

    @property
    def last(self) -> int:
        """Last vintage of the type."""
        return max(self.codes)

    @property
    def key(self) -> str:
        """Readable id: codes in order of the vintages, ``A201>A206``."""
        seen: list[str] = []
        for year in sorted(self.codes):
            part = "+".join(self.codes[year])
            if not seen or seen[-1] != part:
                seen.append(part)
        return ">".join(seen)

    def present(self, year: int) -> bool:
        """Whether the type exists in vintage ``year``."""
        return self.first <= year <= self.last

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for metadata and the types table)."""
        return {"type": self.key, "subcategory": self.subcategory,
                "codes": {str(y): list(c) for y, c in sorted(self.codes.items())},
                "first": self.first, "last": self.last, "starts": self.starts,
                "ends": self.ends}


def harmonise(
    observed: Mapping[int, Iterable[str]],
    passage: Passage,
    code_subcategory: Mapping[str, str],
) -> tuple[list[HarmonisedType], list[str]]:
    """Join the codes observed in each vintage into harmonised types.

    Parameters
    ----------
    observed
        Vintage year -> TYPEQU codes with at least one equipment in that vintage (codes
        the categories do not map are ignored).
    passage
        The table de passage: its connecting links join old codes of a vintage to new
        codes of the next; a code observed in two consecutive vintages is one type.

    Returns
    -------
    (types, undocumented): the types ordered by subcategory and first code, and one
    message per code that appears or disappears between two vintages without a link.
    """
    years = sorted(observed)
    nodes: list[tuple[int, str]] = []
    index: dict[tuple[int, str], int] = {}
    for year in years:
        for code in sorted({c for c in observed[year] if code_subcategory.get(c)}):
            index[(year, code)] = len(nodes)
            nodes.append((year, code))
    rows, cols = [], []
    connecting = [k for k in passage.links if k.connects]
    for a, b in itertools.pairwise(years):
        for year, code in nodes:
            if year == a and (b, code) in index:
                rows.append(index[(a, code)])
                cols.append(index[(b, code)])
        for link in connecting:
            for old in link.old:
                for new in link.new:
                    if (a, old) in index and (b, new) in index:
                        rows.append(index[(a, old)])
                        cols.append(index[(b, new)])
    n = len(nodes)
    graph = coo_array((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[tuple[int, str]]] = {}
    for node, label in zip(nodes, labels, strict=True):
        members.setdefault(int(label), []).append(node)
    types, undocumented = [], []
    for group in members.values():
        codes: dict[int, list[str]] = {}
        for year, code in group:
            codes.setdefault(year, []).append(code)
        subs = {code_subcategory[c] for _, c in group}
        if len(subs) > 1:  # a code of two subcategories: excluded by load_passage
            raise InputFileError(f"codes {sorted(c for _, c in group)} of several "
                                 f"subcategories ({', '.join(sorted(subs))}) form one type")
        first, last = min(codes), max(codes)
        starts = ends = ""
        if first != years[0]:
            starts, note = _boundary(passage, codes[first], side="new")
            if note:
                undocumented.append(f"{'+'.join(codes[first])} appears in BPE {first} "
                                    f"({next(iter(subs))}) without a link in the table de "
                                    "passage: not counted as created")
        if last != years[-1]:
            ends, note = _boundary(passage, codes[last], side="old")
            if note:
                undocumented.append(f"{'+'.join(codes[last])} disappears after BPE {last} "
                                    f"({next(iter(subs))}) without a link in the table de "
                                    "passage: not counted as closed")
        types.append(HarmonisedType(
            subcategory=next(iter(subs)), codes={y: tuple(sorted(c)) for y, c in codes.items()},
            starts=starts, ends=ends))
    types.sort(key=lambda t: (t.subcategory, t.first, t.key))
    return types, undocumented


def _boundary(passage: Passage, codes: Sequence[str], *, side: str) -> tuple[str, bool]:
    """Why a type starts (``side="new"``) or ends (``"old"``): the kind of the link naming
    its codes on that side, in French; (reason, undocumented)."""
    for code in codes:
        for link in passage.links_of(code):
            if code in (link.new if side == "new" else link.old):
                if link.connects:
                    return "nomenclature modifiée (codes non observés)", False
                return _KIND_REASONS[link.kind], False
    return "non documenté", True


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendKey:
    """A subcategory, a group of subcategories or a category compared over time."""

    key: str
    level: Literal["categorie", "groupe", "sous_categorie"]
    label: str
    category: str
    subcategories: tuple[str, ...]


def trend_keys(categories: Categories) -> dict[str, TrendKey]:
    """Keys with BPE codes, in report order: categories, their groups
    (``<category>_<group>``), subcategories. Field names are ``n_<key>...``."""
    subs = {k: v for k, v in categories.subcategories.items() if v.bpe_2013 or v.bpe_2021}
    out: dict[str, TrendKey] = {}
    for cat in CATEGORY_KEYS:
        members = tuple(k for k, v in subs.items() if v.category == cat)
        if not members:
            continue
        out[cat] = TrendKey(cat, "categorie", categories.category_labels[cat], cat, members)
    for cat in CATEGORY_KEYS:
        for group, label in categories.groups.get(cat, {}).items():
            members = tuple(k for k, v in subs.items() if v.category == cat and v.group == group)
            if members:
                key = f"{cat}_{group}"
                out[key] = TrendKey(key, "groupe", label, cat, members)
    for k, v in subs.items():
        out[k] = TrendKey(k, "sous_categorie", v.label, v.category, (k,))
    return out


# --- the national commune table --------------------------------------------------------------


def commune_trends(*, settings: Settings | None = None) -> pd.DataFrame:
    """Facility counts of every BPE vintage and their changes, for every current commune.

    Returns
    -------
    DataFrame
        One row per commune of the reference: ``insee``, ``nom``; per vintage ``y``:
        ``population_bpe_<y>`` (legal population used, year in ``attrs["meta"]``),
        ``n_<key>_<y>`` (equipments of the vintage's own nomenclature) and
        ``n_<key>_per_10k_<y>``; per compared pair ``a, b`` (:func:`trend_pairs`):
        ``n_<key>_base_<a>_<b>`` (equipments in ``a`` of the types present in both),
        ``n_<key>_change_<a>_<b>`` (change on those types), ``n_<key>_per_10k_change_<a>_<b>``
        and ``<key>_lost_last_<a>_<b>`` (True: had one in ``a`` and none in ``b``; empty when
        it had none in ``a``). Empty where a vintage does not cover the département or the
        key has no type in both vintages. ``attrs["meta"]``: vintages, populations, types,
        statuses, undocumented changes, national totals per type.
    """
    s = settings or get_settings()
    cats = load_categories(s)
    passage = load_passage(s, categories=cats)
    code_sub = bpe_code_subcategories(cats)
    ref = communes.load_reference(s).set_index("insee")
    vintages = available_vintages(s)
    if len(vintages) < 2:
        raise DataSourceError(
            f"facility trends need two BPE vintages; found {[v.year for v in vintages]} "
            "(catalogue datasets with bpe_year: bpe_2009_counts, bpe_2013_counts, bpe_xy...)")
    years = [v.year for v in vintages]
    by_code: dict[int, pd.DataFrame] = {}
    covered: dict[int, set[str]] = {}
    reading: dict[str, Any] = {}
    for v in vintages:
        table, info = _vintage_by_commune(v, code_sub, cats, s)
        by_code[v.year] = table.reindex(ref.index)
        covered[v.year] = {departement_of(c) for c in table.index}
        reading[str(v.year)] = info
        log.info("BPE %d (%s): %s equipments in the categories, %d communes", v.year,
                 v.dataset, f"{info['equipments_kept']:,}", len(table))
    observed = {y: [c for c in t.columns if t[c].sum() > 0] for y, t in by_code.items()}
    types, undocumented = harmonise(observed, passage, code_sub)
    for msg in undocumented:
        log.warning("facility trends: %s", msg)
    keys = trend_keys(cats)
    pop_years = {y: population_year_for(y, communes.POPULATION_YEARS) for y in years}
    deps = ref.index.map(departement_of)
    cover = {y: np.asarray(deps.isin(sorted(covered[y]))) for y in years}
    per_type = {y: _type_counts(by_code[y], types, y) for y in years}
    pairs = trend_pairs(years)

    cols: dict[str, Any] = {"insee": ref.index.to_numpy(), "nom": ref["nom"].to_numpy()}
    pop = {}
    for y in years:
        pop[y] = _num(ref[f"pop_{pop_years[y]}"])
        cols[f"population_bpe_{y}"] = _ints(pop[y])
    statuses: dict[str, dict[str, Any]] = {}
    n_rows = len(ref)
    for k in keys.values():
        ktypes = [t for t in types if t.subcategory in k.subcategories]
        for y in years:
            n = _sum_types(per_type[y], [t for t in ktypes if t.present(y)]).where(cover[y])
            cols[f"n_{k.key}_{y}"] = _ints(n)
            cols[f"n_{k.key}_per_10k_{y}"] = _per_10k(n, pop[y]).array
        for a, b in pairs:
            suffix = f"{a}_{b}"
            status, common = pair_status(ktypes, a, b)
            if status is not None:
                statuses.setdefault(suffix, {})[k.key] = status
            if status is None or status == "non comparable":
                cols[f"n_{k.key}_base_{suffix}"] = pd.array([pd.NA] * n_rows, dtype="Int64")
                cols[f"n_{k.key}_change_{suffix}"] = pd.array([pd.NA] * n_rows, dtype="Int64")
                cols[f"n_{k.key}_per_10k_change_{suffix}"] = pd.array([pd.NA] * n_rows,
                                                                      dtype="Float64")
                cols[f"{k.key}_lost_last_{suffix}"] = pd.array([pd.NA] * n_rows,
                                                               dtype="boolean")
                continue
            both = cover[a] & cover[b]
            base = _sum_types(per_type[a], common).where(both)
            end = _sum_types(per_type[b], common).where(both)
            cols[f"n_{k.key}_base_{suffix}"] = _ints(base)
            cols[f"n_{k.key}_change_{suffix}"] = _ints(end - base)
            cols[f"n_{k.key}_per_10k_change_{suffix}"] = (
                _per_10k(end, pop[b]) - _per_10k(base, pop[a])).round(3).array
            lost = pd.array((end == 0).to_numpy(), dtype="boolean")
            lost[~(base > 0).to_numpy()] = pd.NA
            cols[f"{k.key}_lost_last_{suffix}"] = lost
    out = pd.DataFrame(cols)
    national = {t.key: {str(y): int(per_type[y][t.key].sum()) for y in years if t.present(y)}
                for t in types}
    out.attrs["meta"] = {
        "what": "BPE facility counts per commune and vintage, changes on one nomenclature",
        "cog_year": s.cog_year,
        "vintages": [{"year": v.year, "dataset": v.dataset, "source": v.label,
                      "path": str(v.path)} for v in vintages],
        "population_years": {str(y): pop_years[y] for y in years},
        "population_rule": "legal population of the nearest year in the commune reference "
                           f"({', '.join(map(str, communes.POPULATION_YEARS))}); ties: "
                           "the earlier year",
        "pairs": [f"{a}_{b}" for a, b in pairs],
        "keys": {k.key: {"level": k.level, "label": k.label, "category": k.category,
                         "subcategories": list(k.subcategories)} for k in keys.values()},
        "statuses": statuses,
        "types": [t.as_dict() for t in types],
        "national_totals": national,
        "undocumented_changes": undocumented,
        "covered_departements": {str(y): sorted(covered[y]) for y in years},
        "reading": reading,
        "passage": {"path": str(passage.path), "version": passage.version,
                    "links": len(passage.links)},
        "categories_version": cats.version,
    }
    _check_links(passage, types, national, years)
    return out


def pair_status(types: Sequence[HarmonisedType], a: int, b: int
                ) -> tuple[Status | None, list[HarmonisedType]]:
    """Status of a key between vintages ``a < b`` and its types present in both
    (None when no type of the key exists in either vintage)."""
    seen = [t for t in types if t.present(a) or t.present(b)]
    common = [t for t in seen if t.present(a) and t.present(b)]
    if not seen:
        return None, []
    if not common:
        return "non comparable", []
    return ("comparable" if len(common) == len(seen) else "partiel"), common


def _vintage_by_commune(v: Vintage, code_sub: Mapping[str, str], cats: Categories,
                        s: Settings) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Equipments per current commune (index) and mapped TYPEQU code (columns)."""
    long = read_vintage(v.path, label=f"BPE {v.year} ({v.dataset})")
    known = long["typequ"].map(code_sub)
    outside = {c for c in long["typequ"].unique() if not code_sub.get(c)
               and any(cats.bpe_subcategory(c, nom) == "" for nom in ("2013", "2021"))}
    ignored = long["typequ"].isin(outside)
    unknown = known.isna() & ~ignored
    unknown_codes = {str(c): int(n) for c, n in
                     long[unknown].groupby("typequ")["n"].sum().items()}
    info: dict[str, Any] = {
        "equipments": int(long["n"].sum()),
        "equipments_kept": int(long.loc[known.notna(), "n"].sum()),
        "equipments_outside_categories": int(long.loc[ignored, "n"].sum()),
        "unknown_codes": unknown_codes}
    if unknown_codes:
        log.warning("BPE %d: %d TYPEQU code(s) neither mapped nor ignored by the categories "
                    "left out (%s)", v.year, len(unknown_codes),
                    ", ".join(list(unknown_codes)[:8]))
    wide = long[known.notna()].pivot_table(index="depcom", columns="typequ", values="n",
                                           aggfunc="sum", fill_value=0)
    wide.columns = [str(c) for c in wide.columns]
    agg = communes.aggregate_to_current(wide.reset_index(), "depcom", sum_cols=list(wide.columns),
                                        settings=s)
    table = agg.set_index("insee").drop(columns="n_source_codes").astype("float64")
    dropped = int(wide.sum().sum() - table.sum().sum())
    info["equipments_unknown_communes"] = dropped
    return table, info


def _type_counts(table: pd.DataFrame, types: Sequence[HarmonisedType], year: int
                 ) -> pd.DataFrame:
    """Equipments per commune and harmonised type in one vintage (NaN off coverage)."""
    cols = {}
    for t in types:
        codes = [c for c in t.codes.get(year, ()) if c in table.columns]
        cols[t.key] = table[codes].sum(axis=1, min_count=1).fillna(0.0) if codes else \
            pd.Series(0.0, index=table.index)
    return pd.DataFrame(cols, index=table.index)


def _sum_types(counts: pd.DataFrame, types: Sequence[HarmonisedType]) -> pd.Series:
    if not types:
        return pd.Series(0.0, index=counts.index)
    return counts[[t.key for t in types]].sum(axis=1)


def _per_10k(n: pd.Series, pop: pd.Series) -> pd.Series:
    """Per 10,000 inhabitants (Float64, 3 decimals; empty without a population)."""
    return (_num(n) / pop.where(pop > 0) * 10_000).astype("Float64").round(3)


def _num(values: pd.Series) -> pd.Series:
    """A numeric column as float64 (missing values as NaN)."""
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _ints(values: pd.Series) -> Any:
    """Counts as a nullable Int64 array (missing stays missing)."""
    return _num(values).round().astype("Int64").array


def _check_links(passage: Passage, types: Sequence[HarmonisedType],
                 national: Mapping[str, Mapping[str, int]], years: Sequence[int]) -> None:
    """Warn when a joined type's national total jumps across a change of codes (x2 or /2
    between consecutive vintages): the link may hide a change of scope."""
    for t in types:
        for a, b in itertools.pairwise(years):
            if not (t.present(a) and t.present(b)) or t.codes[a] == t.codes[b]:
                continue
            na, nb = national[t.key][str(a)], national[t.key][str(b)]
            if na and not 0.5 <= nb / na <= 2.0:
                log.warning("facility trends: type %s goes from %d (BPE %d) to %d (BPE %d) "
                            "nationally across a change of codes: check its link in %s",
                            t.key, na, a, nb, b, passage.path)


def write_commune_trends(table: pd.DataFrame, path: str | Path | None = None, *,
                         settings: Settings | None = None) -> Path:
    """Write :func:`commune_trends` to Parquet (default
    ``data/interim/facility_trends_communes.parquet``), atomically, with its metadata."""
    s = settings or get_settings()
    target = Path(path) if path is not None else s.interim_dir / TRENDS_FILE
    frame = table.copy()
    frame.attrs = {}
    write_parquet(frame, target, metadata=table.attrs.get("meta", {}))
    log.info("wrote facility trends of %d communes to %s", len(frame), target)
    return target


def _inputs(s: Settings) -> list[Path]:
    ids = [d.id for d in sources.load_catalogue(s).values() if "bpe_year" in d.extra]
    paths = [sources.dataset_path(i, s) for i in ids]
    return [*[p for p in paths if p.is_file()], Path(s.bpe_passage_file),
            Path(s.categories_file), Path(__file__), Path(communes.__file__),
            s.interim_dir / "communes.parquet"]


def facility_trends_by_commune(settings: Settings | None = None) -> pd.DataFrame:
    """:func:`commune_trends`, cached in ``data/interim/facility_trends_communes.parquet``.

    Rebuilt when the cache is missing, older than an input (BPE files, the table de
    passage, the categories file, this module, the commune reference) or built on other
    vintages than those now available (a geolocated vintage downloaded since).
    """
    s = settings or get_settings()
    cache = s.interim_dir / TRENDS_FILE
    communes.load_reference(s)  # builds data/interim/communes.parquet, an input
    years = [v.year for v in available_vintages(s)]
    stale = is_stale(cache, _inputs(s))
    if not stale:
        built = [v["year"] for v in read_parquet_metadata(cache).get("vintages", [])]
        stale = built != years
    if stale:
        write_commune_trends(commune_trends(settings=s), cache, settings=s)
    table = read_parquet_cached(cache)
    table.attrs["meta"] = read_parquet_metadata(cache)
    return table


# --- statistics by typology ------------------------------------------------------------------


def typology_trends(settings: Settings | None = None, *,
                    table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The change of every key by group and compared pair of vintages.

    Groups are :func:`geo.communes.typology_groups` (petite ville, ville moyenne, grande
    ville, PVD, ACV, France: current communes, population 2023), over the communes both
    vintages cover. Columns: ``groupe, periode, debut, fin, niveau, cle, libelle, statut,
    communes, equipements_debut, equipements_fin`` (types present in both vintages),
    ``evolution``, ``evolution_relative`` (0.05 = +5 %), ``population_debut``,
    ``population_fin`` (legal populations used), ``pour_10k_debut``, ``pour_10k_fin``,
    ``evolution_pour_10k``, ``communes_avec`` (at least one in ``debut``),
    ``communes_en_baisse`` and ``part_communes_en_baisse`` (fewer in ``fin``, among
    them), ``communes_perte_dernier`` and ``part_communes_perte_dernier`` (none left),
    ``communes_gain_premier`` (none in ``debut``, some in ``fin``), ``hors_champ_debut``
    and ``hors_champ_fin`` (equipments of types present in one vintage only).
    """
    s = settings or get_settings()
    data = facility_trends_by_commune(s) if table is None else table
    meta = data.attrs.get("meta", {})
    ref = communes.load_reference(s)
    masks = {k: v.to_numpy() for k, v in communes.typology_groups(ref).items()}
    data = data.set_index("insee").reindex(ref["insee"])
    rows = []
    for pair in meta["pairs"]:
        a, b = (int(x) for x in pair.split("_"))
        pops = (data[f"population_bpe_{a}"], data[f"population_bpe_{b}"])
        for key, info in meta["keys"].items():
            status = meta["statuses"][pair].get(key)
            if status is None:
                continue
            cols = _KeyColumns.of(data, key, a, b, pops)
            for name, mask in masks.items():
                row = {"groupe": name, "periode": f"{a}-{b}", "debut": a, "fin": b,
                       "niveau": info["level"], "cle": key, "libelle": info["label"],
                       "statut": STATUS_LABELS[status]}
                row.update(cols.group(mask, comparable=status != "non comparable"))
                rows.append(row)
    return pd.DataFrame(rows, columns=TYPOLOGY_COLUMNS)


#: Columns of :func:`typology_trends`, in order.
TYPOLOGY_COLUMNS = [
    "groupe", "periode", "debut", "fin", "niveau", "cle", "libelle", "statut", "communes",
    "equipements_debut", "equipements_fin", "evolution", "evolution_relative",
    "population_debut", "population_fin", "pour_10k_debut", "pour_10k_fin",
    "evolution_pour_10k", "communes_avec", "communes_en_baisse", "part_communes_en_baisse",
    "communes_perte_dernier", "part_communes_perte_dernier", "communes_gain_premier",
    "hors_champ_debut", "hors_champ_fin",
]


@dataclass(frozen=True)
class _KeyColumns:
    """One key's columns for one pair, as float arrays over the reference communes."""

    full_a: np.ndarray
    full_b: np.ndarray
    base: np.ndarray
    end: np.ndarray
    pop_a: np.ndarray
    pop_b: np.ndarray

    @classmethod
    def of(cls, data: pd.DataFrame, key: str, a: int, b: int,
           pops: tuple[pd.Series, pd.Series]) -> _KeyColumns:
        base = _num(data[f"n_{key}_base_{a}_{b}"]).to_numpy()
        return cls(full_a=_num(data[f"n_{key}_{a}"]).to_numpy(),
                   full_b=_num(data[f"n_{key}_{b}"]).to_numpy(), base=base,
                   end=base + _num(data[f"n_{key}_change_{a}_{b}"]).to_numpy(),
                   pop_a=_num(pops[0]).to_numpy(), pop_b=_num(pops[1]).to_numpy())

    def group(self, mask: np.ndarray, *, comparable: bool) -> dict[str, Any]:
        """The figures of :func:`typology_trends` over the communes of ``mask`` that both
        vintages cover (per 10,000 inhabitants: those with both populations)."""
        sel = mask & ~np.isnan(self.full_a) & ~np.isnan(self.full_b)
        with_pop = sel & (self.pop_a > 0) & (self.pop_b > 0)
        nan = float("nan")
        pa, pb = float(self.pop_a[with_pop].sum()), float(self.pop_b[with_pop].sum())
        out: dict[str, Any] = {"communes": int(sel.sum()), "population_debut": pa,
                               "population_fin": pb}
        full_a, full_b = float(self.full_a[sel].sum()), float(self.full_b[sel].sum())
        if not comparable:
            out.update(dict.fromkeys(TYPOLOGY_COLUMNS[9:], nan))
            out.update(communes=int(sel.sum()), population_debut=pa, population_fin=pb,
                       hors_champ_debut=full_a, hors_champ_fin=full_b)
            return out
        base, end = self.base[sel], self.end[sel]
        n_a, n_b = float(base.sum()), float(end.sum())
        has = base > 0
        n_has = int(has.sum())
        lost, down = int((has & (end == 0)).sum()), int((has & (end < base)).sum())
        d_a = float(self.base[with_pop].sum()) / pa * 10_000 if pa else nan
        d_b = float(self.end[with_pop].sum()) / pb * 10_000 if pb else nan
        out.update({
            "equipements_debut": n_a, "equipements_fin": n_b, "evolution": n_b - n_a,
            "evolution_relative": n_b / n_a - 1 if n_a else nan,
            "pour_10k_debut": d_a, "pour_10k_fin": d_b, "evolution_pour_10k": d_b - d_a,
            "communes_avec": n_has, "communes_en_baisse": down,
            "part_communes_en_baisse": down / n_has if n_has else nan,
            "communes_perte_dernier": lost,
            "part_communes_perte_dernier": lost / n_has if n_has else nan,
            "communes_gain_premier": int(((base == 0) & (end > 0)).sum()),
            "hors_champ_debut": full_a - n_a, "hors_champ_fin": full_b - n_b,
        })
        return out


_TREND_TABLE = "typologie_evolution_equipements.csv"
_TYPES_TABLE = "typologie_evolution_equipements_types.csv"


def _headline(trends: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The pair of the charts (first -> last vintage) and its rows."""
    first, last = int(trends["debut"].min()), int(trends["fin"].max())
    pair = f"{first}-{last}"
    return pair, trends[trends["periode"] == pair]


def typology_charts(trends: pd.DataFrame) -> dict[str, str]:
    """SVG charts of the trend by group for the first -> last pair: relative change of
    the key subcategories, share of communes that lost their last one."""
    pair, rows = _headline(trends)
    keys = [k for k in KEY_SUBCATEGORIES
            if k in set(rows["cle"]) and (rows.loc[rows["cle"] == k, "statut"]
                                          != STATUS_LABELS["non comparable"]).all()]
    labels = [str(rows.loc[rows["cle"] == k, "libelle"].iloc[0]) for k in keys]
    groups = list(dict.fromkeys(rows["groupe"]))

    def series(col: str) -> dict[str, list[float | None]]:
        out = {}
        for g in groups:
            part = rows[rows["groupe"] == g].set_index("cle")
            out[g] = [svg.to_float(part.at[k, col]) for k in keys]
        return out

    short = [lab.split(",")[0] for lab in labels]

    def pct(v: float) -> str:
        return svg.format_fr(round(v, 9) + 0.0, 1, percent=True)  # no "-0,0 %" tick
    return {
        "evolution_equipements": svg.grouped_bar_chart(
            short, series("evolution_relative"), fmt=pct, width=900,
            title=f"Évolution du nombre d'équipements {pair} (à nomenclature constante)"),
        "perte_dernier_equipement": svg.grouped_bar_chart(
            short, series("part_communes_perte_dernier"), fmt=pct, width=900,
            title=f"Part des communes qui avaient l'équipement et n'en ont plus aucun, {pair}"),
    }


def types_table(meta: Mapping[str, Any]) -> pd.DataFrame:
    """The harmonised types as applied: codes per vintage, national totals, why a type
    starts or ends (the documented mapping, one row per type)."""
    years = [int(v["year"]) for v in meta["vintages"]]
    rows = []
    for t in meta["types"]:
        row = {"type": t["type"], "sous_categorie": t["subcategory"],
               "premier_millesime": t["first"], "dernier_millesime": t["last"],
               "debut": t["starts"], "fin": t["ends"]}
        for y in years:
            row[f"codes_{y}"] = "+".join(t["codes"].get(str(y), []))
            row[f"equipements_{y}"] = meta["national_totals"][t["type"]].get(str(y))
        rows.append(row)
    return pd.DataFrame(rows)


def render_typology_section(trends: pd.DataFrame, meta: Mapping[str, Any],
                            charts: Mapping[str, str]) -> str:
    """The French HTML section of the typology page: charts, tables, method, notes."""
    pair, rows = _headline(trends)
    shown = ["commerces_alimentaire", *KEY_SUBCATEGORIES]
    part = rows[rows["cle"].isin(shown)].copy()
    order = {k: i for i, k in enumerate(shown)}
    part = part.sort_values(by="cle", key=lambda c: c.map(order), kind="stable")
    part["colonne"] = part["libelle"].str.split(",").str[0]
    pct = lambda v: svg.format_fr(v, 1, percent=True, signed=True)  # noqa: E731
    share = lambda v: svg.format_fr(v, 1, percent=True)  # noqa: E731
    vint = ", ".join(f"BPE {v['year']} ({escape(v['source'])})" for v in meta["vintages"])
    pops = ", ".join(f"BPE {y} : population légale {p}"
                     for y, p in meta["population_years"].items())
    years = [int(v["year"]) for v in meta["vintages"]]
    types = types_table(meta)
    one = types[(types["premier_millesime"] != min(years))
                | (types["dernier_millesime"] != max(years))]
    one_rows = []
    for _, r in one.iterrows():
        counts = " ; ".join(f"{report.fmt_count(r[f'equipements_{y}'])} ({y})" for y in years
                            if not svg.is_missing(r[f"equipements_{y}"]))
        why = " ; ".join(x for x in (
            f"début : {r['debut']}" if r["debut"] else "",
            f"fin : {r['fin']}" if r["fin"] else "") if x)
        sub = meta["keys"].get(r["sous_categorie"], {}).get("label", r["sous_categorie"])
        one_rows.append([escape(str(r["type"])), escape(str(sub)),
                         f"{r['premier_millesime']}–{r['dernier_millesime']}", escape(why),
                         counts])
    parts = [
        f'<section id="evolution-equipements"><h2>Évolution des équipements {pair} '
        "(BPE)</h2>",
        f"<figure>{charts['evolution_equipements']}</figure>",
        f"<figure>{charts['perte_dernier_equipement']}</figure>",
        "<h3>Évolution du nombre d'équipements (à nomenclature constante)</h3>",
        report.pivot(part, "colonne", "evolution_relative", pct),
        "<h3>Part des communes qui avaient l'équipement et n'en ont plus aucun "
        "(« dernier commerce »)</h3>",
        report.pivot(part, "colonne", "part_communes_perte_dernier", share),
        "<h3>Part des communes équipées dont le nombre a baissé</h3>",
        report.pivot(part, "colonne", "part_communes_en_baisse", share),
        "<h3>Équipements pour 10 000 habitants, évolution</h3>",
        report.pivot(part, "colonne", "evolution_pour_10k",
                     lambda v: svg.format_fr(v, 2, signed=True)),
        f"<p class=\"note\">Millésimes : {vint}. Nomenclatures rapprochées par la table de "
        "passage data/bpe_passage.toml (codes renumérotés, scindés ou fusionnés réunis en un "
        "même type) ; un type d'équipement présent dans un seul millésime (créé, supprimé ou "
        "redéfini) est décompté à part et jamais compté comme une ouverture ou une "
        "fermeture. Communes au COG 2026 (communes fusionnées additionnées). Pour 10 000 "
        f"habitants : {escape(pops)} (population légale la plus proche disponible ; aucune "
        "population légale antérieure à 2016 dans les données). « Dernier commerce » : "
        "communes qui avaient au moins un équipement du type au premier millésime et "
        "aucun au second, rapportées aux communes qui en avaient. Toutes les catégories, "
        "groupes et sous-catégories : typologie_evolution_equipements.csv ; types et codes "
        "par millésime : typologie_evolution_equipements_types.csv.</p>",
        "<h3>Types présents dans un seul millésime (non comptés comme évolution)</h3>",
        report.table(["Type (codes TYPEQU)", "Sous-catégorie", "Millésimes", "Motif",
                      "Équipements"], one_rows, num_cols=[4]),
        f'<p class="warn">{escape(SNAPSHOT_NOTE)}</p>',
        "</section>",
    ]
    return "\n".join(parts)


def write_typology_trends(out_dir: Path, *, settings: Settings | None = None
                          ) -> tuple[list[Path], str | None]:
    """Write the trend tables (``typologie_evolution_equipements.csv``, the types table)
    and charts (``typologie_<chart>.svg``) into ``out_dir``; returns the paths and the HTML
    section for the typology page (None, and nothing written, when the trend cannot be
    built: the reason is logged)."""
    s = settings or get_settings()
    try:
        data = facility_trends_by_commune(s)
        trends = typology_trends(s, table=data)
    except GeoError as exc:
        log.warning("no facility trends by typology: %s", exc)
        return [], None
    meta = data.attrs["meta"]
    out = Path(out_dir)
    paths = [_write_csv(trends, out / _TREND_TABLE),
             _write_csv(types_table(meta), out / _TYPES_TABLE)]
    charts = typology_charts(trends)
    for name, chart in charts.items():
        path = out / f"typologie_{name}.svg"
        write_text_atomic(path, '<?xml version="1.0" encoding="utf-8"?>\n' + chart + "\n")
        paths.append(path)
    return paths, render_typology_section(trends, meta, charts)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    return path


# --- the town's section of its portrait ------------------------------------------------------


@dataclass
class TownTrend:
    """The change of a town's offer, with its peers and France."""

    insee: str
    nom: str
    years: list[int]
    #: one row per key and pair: cle, libelle, niveau, periode, statut, commune_debut,
    #: commune_fin (types present in both vintages), commune_hors_champ_debut,
    #: commune_hors_champ_fin (types of one vintage only), commune_evolution,
    #: commune_evolution_pour_10k, commune_perte_dernier, n_pairs,
    #: pairs_evolution_relative (total over the peers), pairs_mediane_evolution_pour_10k,
    #: pairs_avec, pairs_perte_dernier, france_evolution_relative, france_part_perte_dernier
    table: pd.DataFrame
    #: chart key -> {series name -> values per year} (per 10,000 inhabitants, chained)
    series: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def town_trend(insee: str, peers: Iterable[str], *, settings: Settings | None = None
               ) -> TownTrend | None:
    """The town's trend against its peers and France, from the national commune table;
    None (with a warning) when the trend cannot be built."""
    s = settings or get_settings()
    try:
        data = facility_trends_by_commune(s)
    except GeoError as exc:
        log.warning("facility trends unavailable for the portrait: %s", exc)
        return None
    meta = data.attrs["meta"]
    data.attrs = {}  # pandas deep-copies attrs on every operation: a large meta costs seconds
    table = data.set_index("insee")
    if insee not in table.index:
        return None
    peer_codes = [c for c in peers if c in table.index and c != insee]
    years = [int(v["year"]) for v in meta["vintages"]]
    keys = ["commerces", "commerces_alimentaire", *KEY_SUBCATEGORIES, "sante", "services",
            "education"]
    keys = [k for k in keys if k in meta["keys"]]
    rows = []
    for pair in meta["pairs"]:
        a, b = (int(x) for x in pair.split("_"))
        for key in keys:
            status = meta["statuses"][pair].get(key)
            if status is None:
                continue
            rows.append(_town_row(table, insee, peer_codes, key, meta["keys"][key], status,
                                  a, b))
    series = {k: _chained_series(table, insee, peer_codes, k, years)
              for k in PORTRAIT_CHART_KEYS if k in meta["keys"]}
    return TownTrend(insee=insee, nom=str(table.at[insee, "nom"]), years=years,
                     table=pd.DataFrame(rows), series=series, meta=meta)


def _town_row(table: pd.DataFrame, insee: str, peers: Sequence[str], key: str,
              info: Mapping[str, Any], status: str, a: int, b: int) -> dict[str, Any]:
    """The town's, its peers' and France's figures for one key and pair."""
    suffix = f"{a}_{b}"
    row: dict[str, Any] = {"cle": key, "libelle": info["label"], "niveau": info["level"],
                           "periode": f"{a}-{b}", "statut": STATUS_LABELS[status]}
    base = _num(table[f"n_{key}_base_{suffix}"])
    end = base + _num(table[f"n_{key}_change_{suffix}"])
    per10k = _num(table[f"n_{key}_per_10k_change_{suffix}"])
    b0, e0 = svg.to_float(base[insee]), svg.to_float(end[insee])
    full_a = svg.to_float(table.at[insee, f"n_{key}_{a}"])
    full_b = svg.to_float(table.at[insee, f"n_{key}_{b}"])
    row["commune_debut"], row["commune_fin"] = b0, e0
    row["commune_hors_champ_debut"] = None if full_a is None else full_a - (b0 or 0.0)
    row["commune_hors_champ_fin"] = None if full_b is None else full_b - (e0 or 0.0)
    row["commune_evolution"] = None if b0 is None or e0 is None else e0 - b0
    row["commune_evolution_pour_10k"] = svg.to_float(per10k[insee])
    row["commune_perte_dernier"] = None if b0 is None or b0 <= 0 else bool(e0 == 0)
    pb, pe = base.reindex(peers), end.reindex(peers)
    pp = per10k.reindex(peers).dropna()
    has = pb > 0
    row["n_pairs"] = int(pb.notna().sum())
    row["pairs_evolution_relative"] = (float(pe.sum()) / float(pb.sum()) - 1
                                       if pb.sum() > 0 else np.nan)
    row["pairs_mediane_evolution_pour_10k"] = float(pp.median()) if len(pp) else np.nan
    row["pairs_avec"] = int(has.sum())
    row["pairs_perte_dernier"] = int((has & (pe == 0)).sum())
    ok = base.notna()
    nb, ne = float(base[ok].sum()), float(end[ok].sum())
    row["france_evolution_relative"] = ne / nb - 1 if nb else np.nan
    fh = base[ok] > 0
    row["france_part_perte_dernier"] = (float((fh & (end[ok] == 0)).sum() / fh.sum())
                                        if fh.any() else np.nan)
    return row


def _chained_series(table: pd.DataFrame, insee: str, peers: Sequence[str], key: str,
                    years: Sequence[int]) -> dict[str, list[float | None]]:
    """Per 10,000 inhabitants over the vintages at constant scope, chained: the first
    value is the density of the first pair's common types, each next one adds the per-10k
    change of the consecutive pair (types present in both). Town, peers' median, France
    (totals over the communes each pair covers)."""
    consecutive = list(itertools.pairwise(years))
    a0, b0 = consecutive[0]
    rows = table.reindex([insee, *peers])
    level = _num(_per_10k(rows[f"n_{key}_base_{a0}_{b0}"], _num(rows[f"population_bpe_{a0}"])))
    per = {years[0]: level}
    nat_level: float | None = None
    nat = []
    for a, b in consecutive:
        per[b] = per[a] + _num(rows[f"n_{key}_per_10k_change_{a}_{b}"])
        base = _num(table[f"n_{key}_base_{a}_{b}"])
        end = base + _num(table[f"n_{key}_change_{a}_{b}"])
        pa, pb = _num(table[f"population_bpe_{a}"]), _num(table[f"population_bpe_{b}"])
        ok = base.notna() & (pa > 0) & (pb > 0)
        da = float(base[ok].sum() / pa[ok].sum() * 10_000) if ok.any() else np.nan
        db = float(end[ok].sum() / pb[ok].sum() * 10_000) if ok.any() else np.nan
        if nat_level is None:
            nat_level = da
            nat.append(da)
        nat_level = nat_level + (db - da)
        nat.append(nat_level)
    frame = pd.DataFrame(per)
    return {
        "commune": [svg.to_float(frame.at[insee, y]) for y in years],
        "pairs": [svg.to_float(frame.loc[list(peers), y].median()) if peers else None
                  for y in years],
        "france": [svg.to_float(v) for v in nat],
    }


def render_portrait_section(trend: TownTrend) -> str:
    """The portrait's French HTML section: chart over vintages, table, method notes."""
    meta = trend.meta
    first, last = trend.years[0], trend.years[-1]
    charts = []
    for key, series in trend.series.items():
        label = meta["keys"][key]["label"]
        charts.append(svg.line_chart(
            trend.years,
            {trend.nom: series["commune"], "Médiane des pairs": series["pairs"],
             "France": series["france"]},
            title=f"{label}, pour 10 000 habitants",
            fmt=lambda v: svg.format_fr(v, 1), width=460, height=260))
    pair = f"{first}-{last}"
    rows = []
    part = trend.table[trend.table["periode"] == pair]
    if part["commune_debut"].isna().all():
        dep = departement_of(trend.insee)
        missing = [str(v["year"]) for v in meta["vintages"]
                   if dep not in meta["covered_departements"][str(v["year"])]]
        return (f'<section id="evolution-equipements"><h2>Évolution de l\'offre '
                f"d'équipements {pair}</h2><p class=\"nd\">La BPE {', '.join(missing)} ne "
                f"couvre pas le département {escape(dep)} : pas d'évolution mesurable pour "
                f"cette commune.</p><p class=\"warn\">{escape(SNAPSHOT_NOTE)}</p></section>")
    for r in part.itertuples():
        lost = ("oui" if r.commune_perte_dernier else "non") \
            if r.commune_perte_dernier is not None else "–"
        peers = (f"{r.pairs_perte_dernier} sur {r.pairs_avec}" if r.pairs_avec else "–")
        label = escape(str(r.libelle))
        if r.niveau != "sous_categorie":
            label = f"<b>{label}</b>"
        status = escape(str(r.statut))
        outside = [f"{report.fmt_count(n)} en {y}" for n, y in
                   ((r.commune_hors_champ_debut, first), (r.commune_hors_champ_fin, last))
                   if not svg.is_missing(n) and n]
        if outside:
            status += f'<br><span class="note">hors champ : {", ".join(outside)}</span>'
        rows.append([
            label,
            f"{report.fmt_count(r.commune_debut)} → {report.fmt_count(r.commune_fin)}",
            svg.format_fr(r.commune_evolution, 0, signed=True),
            svg.format_fr(r.commune_evolution_pour_10k, 1, signed=True),
            lost,
            svg.format_fr(r.pairs_evolution_relative, 1, percent=True, signed=True),
            peers,
            svg.format_fr(r.france_evolution_relative, 1, percent=True, signed=True),
            svg.format_fr(r.france_part_perte_dernier, 1, percent=True),
            status,
        ])
    pops = ", ".join(f"{y} : population légale {p}" for y, p in meta["population_years"].items())
    vint = ", ".join(f"BPE {v['year']}" for v in meta["vintages"])
    figures = "".join(f"<figure>{c}</figure>" for c in charts)
    return (
        f'<section id="evolution-equipements"><h2>Évolution de l\'offre d\'équipements '
        f"{pair}</h2>"
        f"<p>Nombre d'équipements de la Base permanente des équipements (INSEE) : {vint}, "
        "comparés à nomenclature constante (mêmes types d'équipements aux deux dates) ; "
        "pairs : les communes comparables ci-dessus (évolution de leur total) ; France : "
        "toutes les communes couvertes par les deux millésimes.</p>"
        f'<div style="display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));'
        f'gap:.6rem">{figures}</div>'
        + report.table(
            ["Équipement", f"Commune {first} → {last}", "Évolution",
             "Évol. pour 10 000 hab.", "Plus aucun", "Pairs : évolution",
             "Pairs ayant perdu le dernier", "France : évolution",
             "France : communes ayant perdu le dernier", "Comparaison"],
            rows, num_cols=[1, 2, 3, 5, 7, 8])
        + "<p class=\"note\">Évolution calculée sur les types d'équipements présents dans "
        "les deux millésimes (table de passage data/bpe_passage.toml : codes renumérotés, "
        "scindés ou fusionnés réunis ; un type présent dans un seul millésime n'est compté "
        "ni comme ouverture ni comme fermeture, « partiel » le signale). « Plus aucun » : la "
        "commune avait au moins un équipement du type et n'en a plus aucun. Pour 10 000 "
        f"habitants : {escape(pops)} (population légale disponible la plus proche). Courbes : "
        "densité du premier millésime puis évolutions à champ constant ajoutées.</p>"
        f'<p class="warn">{escape(SNAPSHOT_NOTE)}</p></section>'
    )


def write_town_trend(trend: TownTrend, path: Path) -> Path:
    """The town's trend table as CSV (``portrait_evolution_equipements.csv``)."""
    table = trend.table.copy()
    table.insert(0, "insee", trend.insee)
    return _write_csv(table, path)
