"""APL per current commune (geo.indicators.apl_by_commune) against the raw DREES files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo import communes, indicators
from geo.errors import InputFileError, MissingColumnsError

APL_FILES = {
    "apl_mg": ("apl/apl_medecins_generalistes_2021_drees.csv.gz",
               "APL aux médecins généralistes de 65 ans et moins"),
    "apl_dentistes": ("apl/apl_chirurgiens_dentistes_2021_drees.csv.gz",
                      "APL 2021 aux chirurgiens-dentistes de 65 ans et moins"),
    "apl_infirmiers": ("apl/apl_infirmiers_2021_drees.csv.gz",
                       "APL 2021 aux infirmières de 65 ans et moins"),
    "apl_kine": ("apl/apl_kinesitherapeutes_2021_drees.csv.gz",
                 "APL 2021 aux masseuses-kinésithérapeutes de 65 ans et moins"),
    "apl_sages_femmes": ("apl/apl_sages_femmes_2021_drees.csv.gz", "APL 2021 aux sages-femmes"),
}


@pytest.fixture(scope="module")
def apl(mirror_settings):
    return indicators.apl_by_commune(mirror_settings).set_index("insee")


def _raw(shared_data, field):
    rel, col = APL_FILES[field]
    df = pd.read_csv(shared_data / rel, dtype={"Code commune": str})
    return df.set_index("Code commune")[[col, "Population totale"]].set_axis(
        ["apl", "pop"], axis=1)


@pytest.mark.parametrize("field", list(APL_FILES))
def test_unchanged_communes_keep_the_drees_value(apl, shared_data, mirror_settings, field):
    raw = _raw(shared_data, field)
    mapping = communes.current_code_map(mirror_settings)
    targets = pd.Series(raw.index.map(mapping), index=raw.index).dropna()
    alone = targets[~targets.duplicated(keep=False) & (targets == targets.index)].index
    values = raw.loc[alone, "apl"].dropna()
    assert len(values) > 34_000
    np.testing.assert_allclose(apl.loc[values.index, field].to_numpy(), values.to_numpy(),
                               rtol=1e-12)


def test_merged_and_arrondissement_codes_are_population_weighted(apl, shared_data):
    raw = _raw(shared_data, "apl_mg")
    paris = raw.loc[[f"751{i:02d}" for i in range(1, 21)]]
    expected = (paris["apl"] * paris["pop"]).sum() / paris["pop"].sum()
    assert apl.at["75056", "apl_mg"] == pytest.approx(expected, rel=1e-12)
    assert apl.at["75056", "apl_population"] == pytest.approx(paris["pop"].sum())
    # a commune nouvelle of 2023-2026 that the APL file still has as two communes
    cog = pd.read_csv(shared_data / "admin/communes_cog2026_decoupage_administratif.csv.gz",
                      dtype=str)
    cur = cog[(cog["type"] == "commune-actuelle") & cog["anciensCodes"].notna()]
    checked = 0
    for code, olds in zip(cur["code"], cur["anciensCodes"], strict=True):
        members = [c for c in {code, *olds.split(";")} if c in raw.index]
        part = raw.loc[members].dropna()
        if len(part) < 2:
            continue
        expected = (part["apl"] * part["pop"]).sum() / part["pop"].sum()
        assert apl.at[code, "apl_mg"] == pytest.approx(expected, rel=1e-9), code
        checked += 1
    assert checked >= 20


def test_missing_apl_stays_missing_and_threshold_flag(apl, mirror_settings):
    # Villages détruits de la Meuse have no APL in the DREES files
    assert pd.isna(apl.at["55039", "apl_mg"])
    assert pd.isna(apl.at["55039", "apl_mg_sous_dote"])
    ok = apl["apl_mg"].notna()
    below = apl.loc[ok, "apl_mg"] < mirror_settings.apl_threshold
    assert (apl.loc[ok, "apl_mg_sous_dote"].astype(bool) == below).all()
    stricter = indicators.apl_by_commune(mirror_settings.replace(apl_threshold=1.0))
    assert stricter["apl_mg_sous_dote"].sum() < apl["apl_mg_sous_dote"].sum()


def test_bad_apl_files(tmp_path):
    prof = indicators.APL_PROFESSIONS[0]
    bad = tmp_path / "apl.csv"
    bad.write_text("Code commune,Population totale,autre\n01001,10,3\n", encoding="utf-8")
    with pytest.raises(MissingColumnsError, match="APL column for médecins généralistes"):
        indicators.read_apl_file(bad, prof)
    neg = tmp_path / "neg.csv"
    neg.write_text("Code commune,Population totale,APL aux médecins généralistes de 65 ans "
                   "et moins\n1001,10,-3\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="negative"):
        indicators.read_apl_file(neg, prof)
    ok = tmp_path / "ok.csv"
    ok.write_text("Code commune,Population totale,APL aux médecins généralistes de 65 ans "
                  "et moins\n1001,10,3.5\n2A004,,\n", encoding="utf-8")
    out = indicators.read_apl_file(ok, prof)
    assert out["code"].tolist() == ["01001", "2A004"]  # lost leading zero restored
    assert pd.isna(out.at[1, "apl_mg"])
