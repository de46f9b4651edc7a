"""Peers, portrait and national statistics by typology (geo.portrait) on real data."""

from __future__ import annotations

import math
import os
import time
import xml.etree.ElementTree as ET
from html import escape

import numpy as np
import pandas as pd
import pytest
from browser.harness import ARTIFACTS, check_page, console_errors
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from geo import _svg as svg
from geo import communes, facilities, indicators, portrait
from geo.cli import main
from geo.errors import (
    InputFileError,
    MissingColumnsError,
    SettingsError,
    UnknownCommuneError,
)

# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref(mirror_settings):
    return communes.load_reference(mirror_settings)


@pytest.fixture(scope="module")
def apl(mirror_settings):
    return indicators.apl_by_commune(mirror_settings)


@pytest.fixture
def local_settings(mirror_settings, ref, apl, tmp_path):
    """Settings on a fresh data folder that shares the session's raw files and national
    caches (symlinks) but has its own ``out/`` and ``interim/`` for synthetic runs."""
    data = tmp_path / "data"
    (data / "interim").mkdir(parents=True)
    (data / "raw").symlink_to(mirror_settings.raw_dir, target_is_directory=True)
    for name in ("communes.parquet", "apl_communes.parquet"):
        (data / "interim" / name).symlink_to(mirror_settings.interim_dir / name)
    return mirror_settings.replace(data_dir=data)


def _national_facility_table(df, settings):
    """Install a synthetic national facility table as an up-to-date cache (newer than
    every input of facilities.facilities_by_commune, whatever the test order)."""
    path = settings.interim_dir / "facilities_communes.parquet"
    df.to_parquet(path)
    later = time.time() + 3600
    os.utime(path, (later, later))


def _raw_csv(shared_data, rel):
    return pd.read_csv(shared_data / rel, dtype=str, keep_default_na=False, na_values=[""])


# --- percentiles --------------------------------------------------------------------------


def test_percentile_rank_constructed_example():
    peers = [10.0, 20.0, 30.0, 40.0]
    assert portrait.percentile_rank(30.0, peers) == 62.5  # 2 below + half of 1 tie, of 4
    assert portrait.percentile_rank(25.0, peers) == 50.0
    assert portrait.percentile_rank(5.0, peers) == 0.0
    assert portrait.percentile_rank(50.0, peers) == 100.0
    assert portrait.percentile_rank(20.0, [20.0, 20.0, 20.0, 20.0]) == 50.0
    # missing values among the peers are left out, never counted as zero
    assert portrait.percentile_rank(30.0, [10.0, None, float("nan"), 40.0, pd.NA]) == 50.0
    assert portrait.percentile_rank(None, peers) is None
    assert portrait.percentile_rank(float("nan"), peers) is None
    assert portrait.percentile_rank(3.0, []) is None
    assert portrait.percentile_rank(3.0, [None, float("nan")]) is None


# --- peer rules -----------------------------------------------------------------------------


def test_peer_rule_validation_and_widening_order():
    with pytest.raises(SettingsError, match=r"unknown peer criterion .taille.*programme"):
        portrait.PeerRule(("programme", "taille"))
    with pytest.raises(SettingsError, match="listed twice"):
        portrait.PeerRule(("programme", "programme"))
    with pytest.raises(SettingsError, match=r"ratio must be in \(0, 1\)"):
        portrait.PeerRule(("programme",), 2.0)
    rule = portrait.PeerRule(("programme", "centralite", "region"), 0.5)
    steps = [(r.criteria, r.population_ratio) for r in rule.widenings()]
    assert steps == [
        (("programme", "centralite", "region"), 0.5),
        (("programme", "centralite"), 0.5),     # 1. geography dropped
        (("programme", "centralite"), 0.25),    # 2. population band widened
        (("programme",), 0.25),                 # 3. criteria dropped, last first
        ((), 0.25),
        ((), 0.0625),                           # 4. population band widened again
        ((), None),                             # 5. population band dropped
    ]
    assert portrait.PeerRule((), None).widenings() == [portrait.PeerRule((), None)]
    assert [r.population_ratio for r in portrait.PeerRule((), 0.5).widenings()] == [
        0.5, 0.25, 0.0625, None]


def test_settings_configure_the_rule(mirror_settings):
    s = mirror_settings.replace(peer_criteria="programme,densite,region",
                                peer_population_ratio=0.8, peer_min_count=3)
    rule = portrait.PeerRule.from_settings(s)
    assert rule == portrait.PeerRule(("programme", "densite", "region"), 0.8)
    with pytest.raises(SettingsError, match="peer_min_count"):
        mirror_settings.replace(peer_min_count=0)


_COLUMNS = {
    "centralite": "centralite", "densite": "densite", "typologie": "typologie",
    "ruralite": "ruralite", "montagne": "montagne", "aav_categorie": "aav_categorie_libelle",
    "region": "region_nom", "departement": "departement_nom",
}


def _follows(ref: pd.DataFrame, town: pd.Series, rule: portrait.PeerRule) -> pd.Series:
    """Independent implementation of a rule for the property test."""
    prog = np.where(ref["acv"], np.where(ref["pvd"], "PVD et ACV", "ACV"),
                    np.where(ref["pvd"], "PVD", "aucun"))
    town_prog = prog[ref.index.get_loc(town.name)]
    ok = pd.Series(True, index=ref.index)
    for crit in rule.criteria:
        if crit == "programme":
            ok &= prog == town_prog
        elif crit == "montagne":  # not in a massif is a level of its own
            ok &= ref["montagne"].fillna("-").to_numpy() == (
                "-" if pd.isna(town["montagne"]) else town["montagne"])
        else:
            col = _COLUMNS[crit]
            ok &= ref[col].notna() & (ref[col].astype(object) == town[col])
    if rule.population_ratio is not None:
        p, r = float(town["population"]), rule.population_ratio
        pop = ref["population"].astype(float)
        ok &= (pop >= p * r) & (pop <= p / r)
    return ok & (ref.index != town.name)


@pytest.fixture(scope="module")
def codes(ref):
    return ref["insee"].tolist(), ref.loc[ref["pvd"] | ref["acv"], "insee"].tolist()


@hsettings(max_examples=60, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_peers_follow_the_rule(data, ref, codes, mirror_settings):
    all_codes, programme_codes = codes
    code = data.draw(st.one_of(st.sampled_from(programme_codes), st.sampled_from(all_codes)))
    criteria = tuple(data.draw(st.lists(st.sampled_from(list(portrait.PEER_CRITERIA)),
                                        unique=True, max_size=4)))
    ratio = data.draw(st.sampled_from([0.3, 0.5, 0.8]))
    min_count = data.draw(st.integers(1, 40))
    rule = portrait.PeerRule(criteria, ratio)
    sel = portrait.find_peers(code, rule, min_count=min_count, settings=mirror_settings)

    indexed = ref.set_index("insee", drop=False)
    town = indexed.loc[code]
    peers = sel.peers["insee"]
    assert code not in set(peers) and peers.is_unique
    # criteria the town has no value for are not applied, and said so
    lacking = {c for c in criteria if c != "programme" and c != "montagne"
               and pd.isna(town[_COLUMNS[c]])}
    assert set(sel.ignored) == lacking
    assert sel.rule.criteria == tuple(c for c in criteria if c not in lacking)
    # every rule tried: its count is the number of communes following it
    for step, n in sel.steps:
        assert n == int(_follows(indexed, town, step).sum())
    assert [s for s, _ in sel.steps] == sel.rule.widenings()[:len(sel.steps)]
    assert sel.applied == sel.steps[-1][0]
    assert all(n < min_count for _, n in sel.steps[:-1])
    assert sel.steps[-1][1] >= min_count or sel.applied == portrait.PeerRule((), None)
    assert sel.widened == (len(sel.steps) > 1)
    # the peers are exactly the communes following the applied rule
    expected = set(indexed.index[_follows(indexed, town, sel.applied)])
    assert set(peers) == expected


def test_demo_town_peers(mirror_settings, ref):
    sel = portrait.find_peers("01306", settings=mirror_settings)
    assert not sel.widened and sel.rule == portrait.PeerRule(("programme", "centralite"), 0.5)
    assert len(sel.peers) >= mirror_settings.peer_min_count
    assert (sel.peers["programme"] == "PVD").all()
    assert (sel.peers["centralite"] == "Centre intermédiaire d'équipements et de services").all()
    assert sel.peers["population"].between(1594 * 0.5, 1594 * 2).all()
    # nearest population first
    gaps = np.abs(np.log(sel.peers["population"].astype(float) / 1594))
    assert gaps.is_monotonic_increasing
    text = sel.describe(ref.set_index("insee").loc["01306"].to_dict() | {"programme": "PVD"})
    assert "797 à 3 188 habitants" in text.replace("\u202f", " ")


def test_no_peer_widens_and_says_so(mirror_settings, ref):
    # Paris: no other commune has 1.05 to 4.2 million inhabitants
    sel = portrait.find_peers("75056", settings=mirror_settings)
    assert sel.steps[0][1] == 0 and sel.widened
    assert len(sel.peers) >= mirror_settings.peer_min_count
    card = ref.set_index("insee").loc["75056"].to_dict() | {"programme": "aucun"}
    text = sel.describe(card)
    assert "ne donne que 0 commune" in text and "élargie" in text
    assert sel.applied == portrait.PeerRule((), 0.0625)  # the big cities, not all France
    assert (sel.peers["population"] >= 2_103_778 * 0.0625).all()
    # no population at all (Île de Clipperton): no band, said so, no crash
    sel = portrait.find_peers("98901", settings=mirror_settings)
    assert "population" in sel.ignored and sel.rule.population_ratio is None
    # a town without a centralité level: the criterion is not applied, and said so
    no_level = ref[ref["centralite"].isna() & ref["population"].notna()].iloc[0]
    sel = portrait.find_peers(no_level["insee"], settings=mirror_settings)
    assert sel.ignored == ("centralite",) and sel.rule.criteria == ("programme",)
    assert "non appliqué" in sel.describe(no_level.to_dict() | {"programme": "aucun"})
    with pytest.raises(UnknownCommuneError):
        portrait.find_peers("99999", settings=mirror_settings)


# --- the portrait ------------------------------------------------------------------------------


def test_portrait_against_independent_computation(mirror_settings, apl):
    p = portrait.build_portrait("01306", settings=mirror_settings)
    table = p.table.set_index("indicateur")
    assert list(table.index) == [i.key for i in portrait.INDICATORS]
    a = apl.set_index("insee")
    peers = p.peers.peers["insee"]
    for prof in indicators.APL_PROFESSIONS:
        key = prof.field
        town = a.at["01306", key]
        vals = a[key].reindex(peers).dropna()
        assert table.at[key, "valeur"] == pytest.approx(town)
        assert table.at[key, "mediane_pairs"] == pytest.approx(vals.median())
        assert table.at[key, "n_pairs"] == len(vals)
        below, ties = (vals < town).sum(), (vals == town).sum()
        assert table.at[key, "percentile_pairs"] == pytest.approx(
            100 * (below + ties / 2) / len(vals))
        assert table.at[key, "mediane_france"] == pytest.approx(a[key].median())
    assert table.at["population", "valeur"] == 1594
    assert table.at["pop_croissance_2016_2023_pct", "valeur"] == pytest.approx(
        (1594 / 1618 - 1) * 100)
    # national facility counts: a real zero stays zero
    fac = facilities.facilities_by_commune(mirror_settings).set_index("insee")
    for key in ("n_sante_per_10k", "n_commerces_per_10k", "n_cinema", "eolienne_power_mw"):
        assert table.at[key, "valeur"] == pytest.approx(float(fac.at["01306", key]))
        peer_vals = fac[key].reindex(peers).astype(float).dropna()
        assert table.at[key, "mediane_pairs"] == pytest.approx(peer_vals.median())
    assert table.at["n_cinema", "valeur"] == 0
    # Pont-de-Veyle has no land cover and no town run here: missing, with a reason
    for key in ("clc_artificialise_share", "walk_pharmacie_minutes_median"):
        assert math.isnan(table.at[key, "valeur"]) and table.at[key, "note"]
        assert math.isnan(table.at[key, "mediane_pairs"]) and table.at[key, "n_pairs"] == 0
    assert "aucune occupation des sols" in table.at["clc_artificialise_share", "note"]
    assert any("Temps à pied jusqu'à la pharmacie la plus proche" in m for m in p.missing)
    assert list(p.history["annee"]) == [2016, 2019, 2020, 2022, 2023]
    assert p.history["commune"].iloc[0] == pytest.approx(100.0)


def test_portrait_reads_town_runs_and_national_tables(local_settings, ref):
    s = local_settings
    sel = portrait.find_peers("01306", settings=s)
    p1, p2, p3 = sel.peers["insee"].iloc[:3]
    out = s.out_dir

    def run(code, **values):
        (out / code).mkdir(parents=True)
        row = {"insee": code, "nom": "x", **values}
        other = {"insee": "01001", "nom": "voisine", **dict.fromkeys(values, 99.0)}
        pd.DataFrame([row, other]).to_parquet(out / code / "communes.parquet")

    run("01306", walk_pharmacie_minutes_median=4.0, clc_artificialise_share=0.3)
    run(p1, walk_pharmacie_minutes_median=6.0)
    run(p2, walk_pharmacie_minutes_median=2.0)
    (out / p3).mkdir()
    (out / p3 / "communes.parquet").write_bytes(b"not parquet")  # broken run: left out
    pd.DataFrame({"insee": ["01306"] * 4 + ["01001"], "category": ["commerces"] * 4 + ["sante"],
                  "subcategory": ["boulangerie"] * 4 + ["pharmacie"],
                  "chain": [True, False, False, None, True]}).to_parquet(
        out / "01306" / "facilities.parquet")
    national = pd.DataFrame({"insee": ref["insee"], "n_cinema": 0.0})
    national.loc[national["insee"].isin(["01306", p1]), "n_cinema"] = 1.0
    _national_facility_table(national, s)

    p = portrait.build_portrait("01306", settings=s)
    t = p.table.set_index("indicateur")
    assert t.at["walk_pharmacie_minutes_median", "valeur"] == 4.0
    assert t.at["walk_pharmacie_minutes_median", "n_pairs"] == 2
    assert t.at["walk_pharmacie_minutes_median", "mediane_pairs"] == 4.0
    # 2 peers are not a distribution: no percentile, and the note says why
    assert math.isnan(t.at["walk_pharmacie_minutes_median", "percentile_pairs"])
    assert "2 pair(s) seulement" in t.at["walk_pharmacie_minutes_median", "note"]
    assert t.at["walk_pharmacie_minutes_median", "n_france"] == 3  # only the town rows
    assert t.at["clc_artificialise_share", "valeur"] == 0.3
    assert t.at["commerces_chain_share", "valeur"] == pytest.approx(1 / 3)
    # a real zero from the national table stays zero; an absent column stays missing
    assert t.at["n_cinema", "valeur"] == 1.0 and t.at["n_cinema", "mediane_france"] == 0.0
    assert t.at["n_cinema", "n_pairs"] == len(sel.peers)
    assert math.isnan(t.at["n_musee", "valeur"])
    assert "pas de source nationale" in t.at["n_musee", "note"]
    assert "aucun équipement de ce type" in t.at["walk_ecole_minutes_median", "note"]
    assert "temps non calculé" in t.at["walk_boulangerie_minutes_median", "note"]
    paths = portrait.write_portrait(p, settings=s)
    assert [x.name for x in paths] == ["portrait.html", "portrait.csv", "portrait_pairs.csv",
                                       "portrait_evolution_equipements.csv",
                                       "portrait_themes.csv"]
    csv = pd.read_csv(out / "01306" / "portrait.csv", dtype={"insee": str})
    assert (csv["insee"] == "01306").all()
    musee = csv.set_index("indicateur").loc["n_musee"]
    assert pd.isna(musee["valeur"])  # written empty, not 0
    # the town's own broken run is an error, not a silent gap
    (out / "01306" / "communes.parquet").write_bytes(b"broken")
    with pytest.raises(InputFileError, match="commune layer"):
        portrait.build_portrait("01306", settings=s)


@pytest.mark.browser
def test_portrait_html_renders_in_chromium(mirror_settings, tmp_path):
    p = portrait.build_portrait("46127", settings=mirror_settings)
    written = {q.name: q for q in portrait.write_portrait(p, tmp_path, settings=mirror_settings)}
    html, pairs = written["portrait.html"], written["portrait_pairs.csv"]
    text = html.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert pd.read_csv(pairs, dtype=str)["insee"].tolist() == p.peers.peers["insee"].tolist()
    report = check_page(html.as_uri(), screenshot=ARTIFACTS / "portrait_46127.png",
                        count={"svg": "svg", "indicators": "table.fixed tbody tr",
                               "missing": "#manquants li", "sections": "#indicateurs h3"})
    assert console_errors(report) == [] and report["failedRequests"] == []
    assert report["title"] == "Portrait de Gourdon (46127)"
    assert report["counts"]["sections"] == p.table["theme"].nunique() == 6
    # themes with no value at all (Gourdon: no land cover or street run here) are one line
    shown = p.table.groupby("theme").filter(
        lambda g: g["valeur"].notna().any() or (g["n_pairs"] > 0).any()
        or (g["n_france"] > 0).any())
    assert report["counts"]["indicators"] == len(shown)
    assert report["counts"]["missing"] == len(p.missing) > 0
    # strips, profile, population, the offer over BPE vintages (2 charts)
    assert report["counts"]["svg"] == len(shown) + 4
    assert (ARTIFACTS / "portrait_46127.png").stat().st_size > 10_000


# --- national statistics by typology ------------------------------------------------------


def _current_map(cog: pd.DataFrame) -> dict[str, str]:
    """Any code -> current commune, from the raw COG (independent of geo.communes)."""
    cur = cog[cog["type"] == "commune-actuelle"]
    mapping = {}
    for code, olds in zip(cur["code"], cur["anciensCodes"], strict=True):
        for old in olds.split(";") if isinstance(olds, str) else []:
            mapping[old] = code
    for _, r in cog[cog["type"] != "commune-actuelle"].iterrows():
        target = r["commune"] if r["type"] == "arrondissement-municipal" else r["chefLieu"]
        mapping.setdefault(r["code"], target)
    mapping.update({c: c for c in cur["code"]})
    return mapping


@pytest.fixture(scope="module")
def tables(mirror_settings):
    return portrait.typology_tables(mirror_settings)


def test_typology_tables_against_raw_tables(tables, shared_data, mirror_settings):
    cog = _raw_csv(shared_data, "admin/communes_cog2026_decoupage_administratif.csv.gz")
    mapping = _current_map(cog)
    cur = cog[cog["type"] == "commune-actuelle"].set_index("code")
    cur = cur[cur["zone"].isin(["metro", "drom"])]  # France = mainland + DROM
    legal = cur["population"].astype(float)
    pvd = set(_raw_csv(shared_data, "programmes/pvd_communes_anct_superposeur_2024-09.csv")
              ["insee_com"].map(mapping))
    acv = set(_raw_csv(shared_data, "programmes/acv_communes_anct_2025-04.csv")
              ["insee_com"].map(mapping))
    groups = {
        "petite ville": legal < 10_000, "ville moyenne": (legal >= 10_000) & (legal <= 100_000),
        "grande ville": legal > 100_000, "PVD": cur.index.isin(pvd),
        "ACV": cur.index.isin(acv), "France": pd.Series(True, index=cur.index),
    }
    pops = _raw_csv(shared_data,
                    "population/populations_communes_2016_2023_decoupage_administratif.csv.gz")
    pops["cur"] = pops["code"].map(mapping)
    pops["population"] = pops["population"].astype(float)
    by_year = {y: g.groupby("cur")["population"].sum(min_count=1).reindex(cur.index)
               for y, g in pops.groupby("pop_millesime")}
    raw = pd.read_csv(shared_data / "apl/apl_medecins_generalistes_2021_drees.csv.gz",
                      dtype={"Code commune": str})
    raw = raw.rename(columns={"APL aux médecins généralistes de 65 ans et moins": "apl",
                              "Population totale": "w"}).dropna(subset=["apl", "w"])
    raw["cur"] = raw["Code commune"].map(mapping)
    raw["aw"] = raw["apl"] * raw["w"]
    agg = raw.groupby("cur")[["aw", "w"]].sum()
    apl_mg = (agg["aw"] / agg["w"]).reindex(cur.index)
    threshold = mirror_settings.apl_threshold

    cr = tables["croissance"].set_index(["groupe", "periode"])
    mg = tables["apl"].query("indicateur == 'apl_mg'").set_index("groupe")
    pop = tables["population"].set_index(["groupe", "annee"])
    for name, mask in groups.items():
        mask = np.asarray(mask)
        for a, b in portrait.PERIODS:
            pa, pb = by_year[str(a)][mask], by_year[str(b)][mask]
            both = pa.notna() & pb.notna()
            assert cr.at[(name, f"{a}-{b}"), "croissance"] == pytest.approx(
                pb[both].sum() / pa[both].sum() - 1, rel=1e-9), (name, a, b)
        for y in communes.POPULATION_YEARS:
            # today's typology beside the year's own (below)
            assert pop.at[(name, y), "population_typologie_2023"] == int(
                by_year[str(y)][mask].sum())
            assert pop.at[(name, y), "part_population_nationale_typologie_2023"] == (
                pytest.approx(by_year[str(y)][mask].sum() / by_year[str(y)].sum()))
            year_mask = mask
            if name in ("petite ville", "ville moyenne", "grande ville"):
                p_y = by_year[str(y)]
                year_mask = np.asarray({"petite ville": p_y < 10_000,
                                        "ville moyenne": (p_y >= 10_000) & (p_y <= 100_000),
                                        "grande ville": p_y > 100_000}[name])
            assert pop.at[(name, y), "population"] == int(by_year[str(y)][year_mask].sum())
            assert pop.at[(name, y), "part_population_nationale"] == pytest.approx(
                by_year[str(y)][year_mask].sum() / by_year[str(y)].sum())
        vals = apl_mg[mask].dropna()
        w = by_year["2023"][mask].reindex(vals.index)
        assert mg.at[name, "communes_avec_apl"] == len(vals)
        assert mg.at[name, "mediane"] == pytest.approx(vals.median(), rel=1e-9), name
        assert mg.at[name, "part_communes_sous_seuil"] == pytest.approx(
            (vals < threshold).mean()), name
        assert mg.at[name, "part_population_sous_seuil"] == pytest.approx(
            w[vals < threshold].sum() / w.sum()), name
    synth = tables["synthese"].set_index("groupe")
    assert list(synth.index) == ["petite ville", "ville moyenne", "grande ville", "PVD",
                                 "ACV", "France"]
    assert synth.at["ville moyenne", "apl_mg_mediane"] == mg.at["ville moyenne", "mediane"]
    # facilities per 10,000 inhabitants: group totals over the national counts
    fac = facilities.facilities_by_commune(mirror_settings).set_index("insee").reindex(
        cur.index)
    eq = tables["equipements"].set_index(["groupe", "categorie"])
    for name, mask in groups.items():
        mask = np.asarray(mask)
        for cat in ("sante", "commerces", "cinema", "eolienne"):
            n = fac.loc[mask, f"n_{cat}"].astype(float)
            p23 = by_year["2023"][mask]
            ok = n.notna() & p23.notna() & (p23 > 0)
            assert eq.at[(name, cat), "pour_10k"] == pytest.approx(
                n[ok].sum() / p23[ok].sum() * 10_000), (name, cat)
    assert synth.at["PVD", "n_sante_per_10k"] == eq.at[("PVD", "sante"), "pour_10k"]


def test_typology_facilities_per_10k(local_settings, ref):
    fac = pd.DataFrame({"insee": ref["insee"], "n_sante": 2.0, "n_culture": 0.0})
    fac.loc[ref["acv"].to_numpy(), "n_culture"] = 3.0
    _national_facility_table(fac, local_settings)
    eq = portrait.typology_tables(local_settings)["equipements"].set_index(
        ["groupe", "categorie"])
    acv = ref[ref["acv"]]
    pop = acv["pop_2023"].astype(float)
    ok = pop > 0
    assert eq.at[("ACV", "culture"), "pour_10k"] == pytest.approx(
        3 * ok.sum() / pop[ok].sum() * 10_000)
    big = ref["typologie"] == "grande ville"
    assert eq.at[("grande ville", "culture"), "equipements"] == 3 * (big & ref["acv"]).sum()
    assert eq.at[("grande ville", "sante"), "equipements"] == 2 * big.sum()
    assert ("ACV", "commerces") not in eq.index  # no column: no row, never a zero


def test_write_typology_stats(tables, tmp_path, mirror_settings):
    paths = portrait.write_typology_stats(tmp_path, tables=tables, settings=mirror_settings)
    names = {p.name for p in paths}
    assert {"typologie_synthese.csv", "typologie_population.csv", "typologie_croissance.csv",
            "typologie_apl.csv", "typologie_apl_mg_mediane.svg", "index.html"} <= names
    for p in paths:
        if p.suffix == ".svg":
            root = ET.parse(p).getroot()
            assert root.tag.endswith("svg")
            assert root.find("{http://www.w3.org/2000/svg}title") is not None
    back = pd.read_csv(tmp_path / "typologie_apl.csv")
    assert len(back) == 6 * len(indicators.APL_PROFESSIONS)


@pytest.mark.browser
def test_typology_html_renders_in_chromium(tables, tmp_path, mirror_settings):
    portrait.write_typology_stats(tmp_path, tables=tables, settings=mirror_settings)
    report = check_page((tmp_path / "index.html").as_uri(),
                        screenshot=ARTIFACTS / "typologie_index.png", count={"svg": "svg"})
    assert console_errors(report) == [] and report["failedRequests"] == []
    assert report["counts"]["svg"] == 8  # 6 + the facility trends' 2 charts


# --- CLI and charts -------------------------------------------------------------------------


def test_cli_portrait_and_typology_stats(mirror_settings, shared_data, tmp_path, capsys):
    base = ["--mirror", str(shared_data), "--set", f"data_dir={mirror_settings.data_dir}"]
    assert main([*base, "portrait", "pont de veyle", "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "Portrait de Pont-de-Veyle (01306)" in out and "Règle : même programme" in out
    assert (tmp_path / "p" / "portrait.html").exists()
    assert main([*base, "portrait", "01306", "--criteria", "programme,region", "--ratio",
                 "0.9", "--out", str(tmp_path / "q")]) == 0
    assert "même région : Auvergne-Rhône-Alpes" in capsys.readouterr().out
    assert main([*base, "portrait", "01306", "--criteria", "taille"]) == 2
    assert "unknown peer criterion 'taille'" in capsys.readouterr().err
    assert main([*base, "portrait", "1306"]) == 2
    assert "leading zero" in capsys.readouterr().err
    assert main([*base, "typology-stats", "--year", "2019", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "Population légale 2019" in out and "APL médecins généralistes" in out
    assert (tmp_path / "t" / "index.html").exists()


def test_svg_helpers():
    assert svg.format_fr(1234.56, 1) == "1\u202f234,6"
    assert svg.format_fr(0.1234, 1, percent=True) == "12,3\u202f%"
    assert svg.format_fr(-0.0001, 1, signed=True) == "0,0"
    assert svg.format_fr(float("nan")) == svg.format_fr(None) == "n.d."
    assert svg.nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    chart = svg.grouped_bar_chart(["a", "b"], {"x": [1.0, None], "y": [-2.0, 3.0]}, title="t<")
    root = ET.fromstring(chart)
    assert root.find("{http://www.w3.org/2000/svg}title").text == "t<"
    assert "n.d." in chart  # a missing bar is labelled, not drawn as zero
    assert ET.fromstring(svg.strip_chart([], town=None)) is not None
    line = svg.line_chart([2016, 2023], {"s": [100.0, None]}, title="l")
    assert "<polyline" not in line and line.count("<circle") == 1


def test_local_rows_reads_each_town_run_once(tmp_path, monkeypatch):
    """Town rows are cached with their files' versions: unchanged runs are not re-read
    (a batch over all PVD towns must not read every run again for every portrait)."""
    from geo.settings import load_settings

    s = load_settings(environ={}, data_dir=tmp_path / "data")
    for code, value in (("01306", 12.5), ("46127", 30.0)):
        folder = s.town_dir(code)
        folder.mkdir(parents=True)
        pd.DataFrame({"insee": [code, "99999"], "n_sante_per_10k": [value, 1.0],
                      "nom": ["x", "y"]}).to_parquet(folder / "communes.parquet")
    reads = []
    from geo.portrait import table  # where local_rows looks _local_row up

    real = table._local_row
    monkeypatch.setattr(table, "_local_row",
                        lambda d, insee: reads.append(insee) or real(d, insee))
    first = portrait.local_rows(s)
    assert first.loc["01306", "n_sante_per_10k"] == 12.5
    assert first.loc["46127", "n_sante_per_10k"] == 30.0
    assert "nom" not in first.columns and sorted(reads) == ["01306", "46127"]
    again = portrait.local_rows(s)
    assert sorted(reads) == ["01306", "46127"]  # nothing re-read
    pd.testing.assert_frame_equal(again.sort_index(), first.sort_index(), check_dtype=False)
    pd.DataFrame({"insee": ["46127"], "n_sante_per_10k": [31.0]}).to_parquet(
        s.town_dir("46127") / "communes.parquet")
    third = portrait.local_rows(s)
    assert sorted(reads) == ["01306", "46127", "46127"]  # only the changed run
    assert third.loc["46127", "n_sante_per_10k"] == 31.0


# --- what distinguishes the town, France, print (issue 12) -----------------------------------


def _table(rows):
    cols = ["indicateur", "libelle", "unite", "sens", "valeur", "mediane_pairs", "n_pairs",
            "percentile_pairs", "part_pairs_inferieurs", "part_pairs_superieurs"]
    return pd.DataFrame(rows, columns=cols)


def test_distinguishing_indicators_ranks_by_gap_and_needs_five_peers():
    t = _table([
        ("apl_mg", "APL", "consultations", "plus", 4.0, 2.0, 120, 95.0, 0.94, 0.04),
        ("n_sante_per_10k", "Santé", "pour 10 000 habitants", "plus", 50.0, 40.0, 120, 70.0,
         0.68, 0.30),
        ("walk_pharmacie_minutes_median", "Temps à pied jusqu'à la pharmacie", "min", "moins",
         12.0, 5.0, 8, 90.0, 0.88, 0.10),  # long walk: a weakness (lower is better)
        ("n_cinema", "Cinémas", "nombre", "plus", 0.0, 0.0, 120, 50.0, 0.0, 0.28),  # tie
        ("clc_eau_share", "Part des surfaces en eau", "part", "", 0.2, 0.01, 120, 99.0, 0.99,
         0.0),  # neither good nor bad: left out
        ("n_musee", "Musées", "nombre", "plus", 3.0, 0.0, 4, 99.0, 1.0, 0.0),  # 4 peers only
        ("apl_kine", "APL kiné", "ETP", "plus", 10.0, 30.0, 120, 10.0, 0.08, 0.90),
    ])
    d = portrait.distinguishing_indicators(t, n=3, min_peers=5)
    strong = d[d["cote"] == "fort"]
    weak = d[d["cote"] == "faible"]
    assert list(strong["indicateur"]) == ["apl_mg", "n_sante_per_10k"]  # by gap: 45, 20
    # both -40: the larger relative gap to the median first (12 vs 5 min, 10 vs 30 ETP)
    assert list(weak["indicateur"]) == ["walk_pharmacie_minutes_median", "apl_kine"]
    assert list(strong["rang"]) == [1, 2] and strong["ecart"].iloc[0] == 45.0
    assert {"n_cinema", "clc_eau_share", "n_musee"}.isdisjoint(d["indicateur"])
    phrase = weak.set_index("indicateur").at["walk_pharmacie_minutes_median", "phrase"]
    assert phrase == ("Temps à pied jusqu'à la pharmacie : 12\u202fmin, plus long que pour "
                      "88\u202f% des 8 communes comparables (médiane : 5\u202fmin).")
    assert "plus élevé que pour 94\u202f% des 120 communes" in strong["phrase"].iloc[0]
    assert portrait.distinguishing_indicators(t, n=1)["indicateur"].tolist() == [
        "apl_mg", "walk_pharmacie_minutes_median"]
    with pytest.raises(MissingColumnsError):
        portrait.distinguishing_indicators(t.drop(columns="sens"))


def test_percentile_at_the_peers_median_is_50():
    # 0 cinemas among peers 72 % of which have none: the median, not "below" it
    peers = [0.0] * 72 + [1.0] * 28
    assert portrait.percentile_rank(0.0, peers) == 50.0
    assert portrait.percentile_rank(1.0, peers) == pytest.approx(86.0)


def test_portrait_synthesis_france_and_print(mirror_settings, tmp_path):
    p = portrait.build_portrait("01306", settings=mirror_settings)
    t = p.table.set_index("indicateur")
    # no percentile from fewer than the minimum of peers
    few = t[t["n_pairs"] < p.peers.min_count]
    assert few["percentile_pairs"].isna().all()
    assert (t.loc[t["percentile_pairs"].notna(), "n_pairs"] >= p.peers.min_count).all()
    # synthesis: from the table, with at least 5 peers each
    d = p.distinctions
    assert len(d) > 0 and (d["n_pairs"] >= 5).all()
    assert set(d["cote"]) <= {"fort", "faible"}
    expected = portrait.distinguishing_indicators(p.table, min_peers=p.peers.min_count)
    pd.testing.assert_frame_equal(d, expected)
    # France as in typology-stats: same universe, same growth
    stats = communes.typology_stats(2023, settings=mirror_settings).set_index("groupe")
    growth = stats.at["France", "croissance_depuis_2016"]
    assert p.history["france"].iloc[-1] == pytest.approx(100 * (1 + growth))
    assert t.at["pop_croissance_2016_2023_pct", "valeur_france"] == pytest.approx(growth * 100)
    tables = portrait.typology_tables(mirror_settings)
    eq = tables["equipements"].set_index(["groupe", "categorie"])
    assert t.at["n_sante_per_10k", "valeur_france"] == pytest.approx(
        eq.at[("France", "sante"), "pour_10k"], rel=1e-6)
    assert t.at["n_sante_per_10k", "valeur_france"] > 10  # not the 0.0 median of villages
    assert t.at["n_sante_per_10k", "reference_france"] == "moyenne pondérée par la population"
    written = {q.name: q for q in portrait.write_portrait(p, tmp_path, settings=mirror_settings)}
    html, csv_path = written["portrait.html"], written["portrait.csv"]
    text = html.read_text(encoding="utf-8")
    assert 'id="synthese"' in text and "Ce qui distingue la commune" in text
    for phrase in d["phrase"]:
        assert escape(phrase) in text
    assert 'href="portrait.csv"' in text and 'href="portrait_pairs.csv"' in text
    assert "@page{size:A4" in text and "@media print" in text
    assert "packaged by" not in text and "Licence Ouverte 2.0" in text
    back = pd.read_csv(csv_path, dtype={"insee": str}).set_index("indicateur")
    assert {"sens", "valeur_france", "reference_france", "part_pairs_inferieurs"} <= set(
        back.columns)
    # the sections are a list a new section slots into
    extra = (*portrait.PORTRAIT_SECTIONS[:2], ("essai", lambda _p: "<section id=\"essai\">x"
                                                              "</section>"),
             *portrait.PORTRAIT_SECTIONS[2:])
    assert 'id="essai"' in portrait.render_portrait_html(p, sections=extra)


def test_typology_2019_share_by_2019_typology_from_raw_table(shared_data, tables):
    """The 2019 share of villes moyennes classifies communes by their 2019 population:
    35.2 % (by 2023 population it would be 35.7 %), mainland + DROM, computed here from
    the raw COG and legal-population tables."""
    cog = _raw_csv(shared_data, "admin/communes_cog2026_decoupage_administratif.csv.gz")
    mapping = _current_map(cog)
    cur = cog[cog["type"] == "commune-actuelle"].set_index("code")
    cur = cur[cur["zone"].isin(["metro", "drom"])]
    pops = _raw_csv(shared_data,
                    "population/populations_communes_2016_2023_decoupage_administratif.csv.gz")
    pops["cur"] = pops["code"].map(mapping)
    pops["population"] = pops["population"].astype(float)
    by_year = {y: g.groupby("cur")["population"].sum(min_count=1).reindex(cur.index)
               for y, g in pops.groupby("pop_millesime")}
    p19, p16, p23 = by_year["2019"], by_year["2016"], by_year["2023"]
    moyenne_2019 = (p19 >= 10_000) & (p19 <= 100_000)
    share = p19[moyenne_2019].sum() / p19.sum()
    assert round(share * 100, 1) == 35.2
    moyenne_2023 = (cur["population"].astype(float) >= 10_000) & (
        cur["population"].astype(float) <= 100_000)
    assert round(p19[moyenne_2023].sum() / p19.sum() * 100, 1) == 35.7
    pop = tables["population"].set_index(["groupe", "annee"])
    assert pop.at[("ville moyenne", 2019), "part_population_nationale"] == pytest.approx(share)
    assert pop.at[("ville moyenne", 2019), "typologie_annee"] == 2019
    assert pop.at[("ville moyenne", 2019), "part_population_nationale_typologie_2023"] == (
        pytest.approx(p19[moyenne_2023].sum() / p19.sum()))
    # growth 2016-2023: start-year cohort beside today's typology
    cr = tables["croissance"].set_index(["groupe", "periode"])
    cohort = (p16 >= 10_000) & (p16 <= 100_000) & p16.notna() & p23.notna()
    fixed = moyenne_2023 & p16.notna() & p23.notna()
    assert cr.at[("ville moyenne", "2016-2023"), "croissance_cohorte"] == pytest.approx(
        p23[cohort].sum() / p16[cohort].sum() - 1)
    assert cr.at[("ville moyenne", "2016-2023"), "croissance"] == pytest.approx(
        p23[fixed].sum() / p16[fixed].sum() - 1)
    assert round(cr.at[("ville moyenne", "2016-2023"), "croissance_cohorte"] * 100, 2) == 3.63
    # both GP APL columns, named; dentists per 10,000
    raw = pd.read_csv(shared_data / "apl/apl_medecins_generalistes_2021_drees.csv.gz",
                      dtype={"Code commune": str})
    raw = raw.rename(columns={"APL aux médecins généralistes (sans borne d'âge)": "apl",
                              "Population totale": "w"}).dropna(subset=["apl", "w"])
    raw["cur"] = raw["Code commune"].map(mapping)
    raw["aw"] = raw["apl"] * raw["w"]
    agg = raw.groupby("cur")[["aw", "w"]].sum()
    all_ages = (agg["aw"] / agg["w"]).reindex(cur.index)
    apl = tables["apl"].set_index(["groupe", "indicateur"])
    assert apl.at[("ville moyenne", "apl_mg_tous_ages"), "mediane"] == pytest.approx(
        all_ages[moyenne_2023].median(), rel=1e-9)
    assert "tous âges" in apl.at[("ville moyenne", "apl_mg_tous_ages"), "profession"]
    assert "65 ans et moins" in apl.at[("ville moyenne", "apl_mg"), "profession"]
    eq = tables["equipements"].set_index(["groupe", "categorie"])
    assert eq.at[("France", "dentiste"), "pour_10k"] > 0
    html = portrait.render_typology_html(tables, threshold=2.5, cog_year=2026)
    for text in ("typologie de l'année", "cohorte", "Chirurgiens-dentistes",
                 "médecins généralistes, tous âges"):
        assert text in html, text
