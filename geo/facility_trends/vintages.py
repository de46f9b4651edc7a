"""The BPE vintages: the catalogue datasets with a ``bpe_year``
(:func:`available_vintages`), each read as equipments per commune and TYPEQU code
(:func:`read_vintage`), the legal-population year of each (:func:`population_year_for`)
and the pairs compared (:func:`trend_pairs`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from geo import sources
from geo._io import head_text as _head_text
from geo._io import read_delimited as _read_csv
from geo.errors import DataSourceError, InputFileError
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.facility_trends: log lines keep their logger name


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
