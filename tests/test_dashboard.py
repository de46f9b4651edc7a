"""The national dashboard table (geo.dashboard): registry, the table from the national
commune tables (real data), legend classes, comparison with the peers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from geo import communes, dashboard, facilities, facility_trends, indicators, portrait
from geo._categories import load_categories
from geo.dashboard import DashboardIndicator, SourceData
from geo.errors import InputFileError, SettingsError

TOWN = "01306"  # Pont-de-Veyle, PVD


# --- registry -----------------------------------------------------------------------------------


def test_registry_covers_the_themes_of_the_issue() -> None:
    keys = [i.key for i in dashboard.INDICATORS]
    assert len(keys) == len(set(keys))
    themes = {i.theme for i in dashboard.INDICATORS}
    # population, santé/APL, commerces, culture, services, énergie, sols, accès, BPE trends
    assert {t.key for t in dashboard.THEMES} == themes
    for wanted in ("population", "sante", "commerces", "culture", "services", "energie",
                   "occupation_sols", "acces_pied", "acces_velo", "evolution_equipements"):
        assert wanted in themes
    assert {"apl_mg", "commerces_chain_share", "n_culture_vivant_per_10k",
            "n_culture_patrimoine_per_10k", "n_france_services",
            "walk_sante_pop_share_10min", "bike_pharmacie_pop_share_15min",
            "n_commerces_per_10k_change"} <= set(keys)
    assert 8 <= sum(i.headline for i in dashboard.INDICATORS) <= 12
    for ind in dashboard.INDICATORS:
        assert ind.label and ind.unit
        assert all(t in dashboard.SOURCE_TABLES for t in ind.tables)
        assert ind.higher_is_better is {"plus": True, "moins": False}.get(ind.sens)
    # access times: lower is better; their cells are drawn at street scale
    walk = next(i for i in dashboard.INDICATORS if i.key == "walk_pharmacie_minutes_median")
    assert walk.higher_is_better is False and walk.cell_field == walk.key
    assert walk.label == "Temps médian à pied jusqu'à la pharmacie la plus proche"


def test_registry_rejects_bad_entries() -> None:
    ind = DashboardIndicator(key="x", label="X", unit="nombre", theme="population")
    with pytest.raises(SettingsError, match="listed twice"):
        dashboard._check_registry([ind, ind])
    with pytest.raises(SettingsError, match="unknown theme 'nope'"):
        dashboard._check_registry([DashboardIndicator(key="x", label="X", unit="u",
                                                      theme="nope")])
    with pytest.raises(SettingsError, match=r"unknown source tables \['nowhere'\]"):
        dashboard._check_registry([DashboardIndicator(key="x", label="X", unit="u",
                                                      theme="population",
                                                      tables=("nowhere",))])


# --- the table (synthetic) -----------------------------------------------------------------------


def _reference(n: int = 6) -> pd.DataFrame:
    codes = [f"01{i:03d}" for i in range(1, n + 1)]
    return pd.DataFrame({
        "insee": codes, "nom": [f"Commune {i}" for i in range(n)], "departement": "01",
        "departement_nom": "Ain", "region": "84", "region_nom": "Auvergne-Rhône-Alpes",
        "zone": ["metro"] * (n - 1) + ["com"], "epci_nom": "CC", "typologie": "petite ville",
        "pvd": [True] + [False] * (n - 1), "acv": False, "centralite": "c", "densite": "d",
        "population": 1000.0, "cog_year": 2026,
    })


def test_first_table_with_a_value_wins_and_missing_stays_missing() -> None:
    ref = _reference()
    codes = ref["insee"].tolist()
    a = SourceData(pd.DataFrame({"x": [1.0, np.nan, 3.0]}, index=codes[:3]), datasets=("ds_a",))
    b = SourceData(pd.DataFrame({"x": [20.0, 40.0], "y": [5.0, 6.0]},
                                index=[codes[1], codes[3]]),
                   column_datasets={"x": ("ds_b",)}, notes={"x": "note b"})
    inds = [
        DashboardIndicator(key="x", label="X", unit="nombre", theme="population",
                           tables=("a", "b")),
        DashboardIndicator(key="z", label="Z", unit="nombre", theme="population",
                           tables=("absent",)),
        DashboardIndicator(key="w", label="W", unit="nombre", theme="population",
                           tables=("b",), column="y", sources=("explicit",)),
    ]
    board = dashboard.dashboard_table(ref, {"a": a, "b": b}, indicators=inds,
                                      built=[codes[3]], missing={"absent": "not built"})
    t = board.table.set_index("insee")
    # a first, b where a has nothing (01002) or no row (01004); 01003 keeps a's value
    assert t["x"].tolist()[:4] == [1.0, 20.0, 3.0, 40.0]
    assert t["x"].iloc[4:].isna().all()  # no table has a value: missing, not zero
    assert t["z"].isna().all()
    assert t.loc[codes[1], "w"] == 5.0 and np.isnan(t.loc[codes[0], "w"])
    assert board.sources == {"x": ("ds_a", "ds_b"), "z": (), "w": ("explicit",)}
    assert board.tables_used["x"] == ("a", "b") and board.notes == {"x": "note b"}
    assert board.missing == {"absent": "not built"}
    assert t["programme"].tolist()[:2] == ["PVD", "aucun"]
    assert t["commune_traitee"].tolist() == [False, False, False, True, False, False]
    assert list(board.table.columns[:len(dashboard.CARD_COLUMNS)]) == list(dashboard.CARD_COLUMNS)


def test_classes_are_quantiles_of_france_with_zero_apart() -> None:
    n = 200
    ref = _reference(n)
    codes = ref["insee"].tolist()
    rng = np.random.default_rng(0)
    values = pd.DataFrame({
        "even": np.arange(n, dtype=float),                              # 0..199
        "zeros": np.where(np.arange(n) % 2 == 0, 0.0, rng.uniform(1, 100, n)),  # half zero
        "empty": np.nan,
        "counts": np.where(np.arange(n) < 150, 0.0, 1.0 + (np.arange(n) % 3)),
    }, index=codes)
    inds = [DashboardIndicator(key=k, label=k, unit="nombre", theme="population",
                               tables=("t",)) for k in values.columns]
    board = dashboard.dashboard_table(ref, {"t": SourceData(values)}, indicators=inds)
    classes = dashboard.indicator_classes(board)
    france = board.table[dashboard.universe_mask(board.table)]
    assert len(france) == n - 1  # the COM commune is outside France's universe
    even = classes["even"]
    assert not even.zero_class and len(even.classes) == 5
    vals = france["even"].to_numpy()
    counts = [((vals >= c["min"] if i else True) & (vals < (c["max"] or np.inf))).sum()
              for i, c in enumerate(even.classes)]
    assert all(35 <= k <= 45 for k in counts), counts  # quintiles (rounded breaks)
    assert "quintiles des communes de France" in even.rule
    zeros = classes["zeros"]
    assert zeros.zero_class and zeros.classes[0]["label"] == "aucun"
    assert classes["empty"] is None
    # counts: 0, then 1, 2, 3: no empty "moins de 1" class
    labels = [c["label"] for c in classes["counts"].classes]
    assert labels[0] == "aucun" and "moins de 1" not in labels
    for key, cls in classes.items():
        if cls is None:
            continue
        v = france[key].dropna().to_numpy()
        for i, c in enumerate(cls.classes):
            lo = -np.inf if i == 0 else c["min"]
            hi = np.inf if c["max"] is None else c["max"]
            assert ((v >= lo) & (v < hi)).any(), (key, c)  # never an empty class
        assert len({c["color"] for c in cls.classes}) == len(cls.classes)


# --- real data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def board(mirror_settings):
    return dashboard.build_dashboard(mirror_settings)


def test_dashboard_table_on_real_data(board, mirror_settings) -> None:
    t = board.table.set_index("insee")
    ref = communes.load_reference(mirror_settings)
    assert len(t) == len(ref) and t.index.is_unique and t.index.is_monotonic_increasing
    # values are those of the national tables
    apl = indicators.apl_by_commune(mirror_settings).set_index("insee")["apl_mg"]
    both = apl.index.intersection(t.index)
    np.testing.assert_allclose(t.loc[both, "apl_mg"], apl.loc[both].astype(float))
    fac = facilities.facilities_by_commune(mirror_settings).set_index("insee")
    np.testing.assert_allclose(t["n_commerces_per_10k"],
                               fac["n_commerces_per_10k"].astype(float).reindex(t.index))
    # culture vivante: the sum of the group's subcategories a national source measures
    cats = load_categories(mirror_settings)
    vivant = [f"n_{k}" for k, sub in cats.subcategories.items()
              if sub.category == "culture" and sub.group == "vivant"]
    measured = [c for c in vivant if fac[c].notna().any()]
    assert {"n_cinema", "n_musee", "n_festival"} <= set(measured)
    expected = fac[measured].astype(float).sum(axis=1, min_count=1)
    np.testing.assert_allclose(t["n_culture_vivant_per_10k"],
                               (expected * 10_000 / fac["population"].astype(float)
                                .where(lambda p: p > 0)).round(3).reindex(t.index))
    # trends: the change between the first and last BPE vintages
    trends = facility_trends.facility_trends_by_commune(mirror_settings).set_index("insee")
    np.testing.assert_allclose(t["n_commerces_per_10k_change"],
                               trends["n_commerces_per_10k_change_2009_2013"].astype(float)
                               .reindex(t.index))
    assert board.notes["n_commerces_per_10k_change"].startswith("BPE 2009 → BPE 2013")
    # growth, independently
    r = ref.set_index("insee")
    growth = (r["pop_2023"] / r["pop_2016"] - 1) * 100
    assert t.at[TOWN, "pop_croissance_2016_2023_pct"] == pytest.approx(growth[TOWN])
    assert t.at[TOWN, "programme"] == "PVD" and t.at[TOWN, "typologie"] == "petite ville"
    # no national source: missing where no town run measured it, never zero
    runs = set(board.table.loc[board.table["commune_traitee"], "insee"])
    patrimoine = t["n_culture_patrimoine_per_10k"]
    assert patrimoine.drop(index=list(runs), errors="ignore").isna().all()
    assert not (t["walk_sante_pop_share_10min"].drop(index=list(runs), errors="ignore")
                .notna().any())
    assert board.sources["apl_mg"] == ("apl_mg",)
    assert board.sources["n_commerces_per_10k"] == ("bpe_2013_counts",)
    assert set(board.sources["n_culture_per_10k"]) >= {"bpe_2013_counts", "museofile",
                                                        "cinemas", "festivals"}


def test_classes_on_real_data(board) -> None:
    classes = dashboard.indicator_classes(board)
    france = board.table[dashboard.universe_mask(board.table)]
    apl = classes["apl_mg"]
    v = france["apl_mg"].dropna().to_numpy()
    shares = []
    for i, c in enumerate(apl.classes):
        lo = -np.inf if i == 0 else c["min"]
        hi = np.inf if c["max"] is None else c["max"]
        shares.append(((v >= lo) & (v < hi)).mean())
    assert len(shares) == 5 and all(0.15 <= x <= 0.25 for x in shares), shares
    musee = classes["n_musee"]
    assert musee.zero_class and musee.classes[0]["label"] == "aucun"
    assert (france["n_musee"] == 0).mean() > 0.9


def test_comparison_with_peers(board, mirror_settings) -> None:
    comp = dashboard.compare_towns(board, [TOWN], settings=mirror_settings)[TOWN]
    sel = portrait.find_peers(TOWN, settings=mirror_settings)
    assert comp.peers.peers["insee"].tolist() == sel.peers["insee"].tolist()
    rows = comp.table.set_index("indicateur")
    t = board.table.set_index("insee")
    peers = t.loc[sel.peers["insee"], "apl_mg"].dropna().to_numpy()
    own = t.at[TOWN, "apl_mg"]
    assert rows.at["apl_mg", "n_pairs"] == len(peers)
    assert rows.at["apl_mg", "mediane_pairs"] == pytest.approx(np.median(peers))
    expected = 50.0 if own == np.median(peers) else stats.percentileofscore(peers, own,
                                                                             kind="mean")
    assert rows.at["apl_mg", "percentile_pairs"] == pytest.approx(expected)
    assert rows.at["apl_mg", "part_pairs_inferieurs"] == pytest.approx((peers < own).mean())
    france = t.loc[dashboard.universe_mask(board.table), "apl_mg"].dropna()
    assert rows.at["apl_mg", "mediane_france"] == pytest.approx(france.median())
    # fewer than 5 peers with a value: no percentile
    few = rows[rows["n_pairs"] < mirror_settings.peer_min_count]
    assert few["percentile_pairs"].isna().all()
    # what distinguishes the town: 3 + 3, by the gap, with >= 5 peers, in French
    d = comp.distinctions
    strong, weak = d[d["cote"] == "fort"], d[d["cote"] == "faible"]
    assert len(strong) == 3 and len(weak) == 3
    assert (strong["ecart"] > 0).all() and strong["ecart"].is_monotonic_decreasing
    assert (weak["ecart"] < 0).all() and weak["ecart"].is_monotonic_increasing
    assert (d["n_pairs"] >= mirror_settings.peer_min_count).all()
    assert set(d["indicateur"]) <= set(rows.index[rows["sens"].isin(["plus", "moins"])])
    for r in d.itertuples():
        assert r.phrase.startswith(r.libelle)
        assert "communes comparables (médiane : " in r.phrase


def test_a_theme_table_from_data_interim(tmp_path) -> None:
    """What issue 15's themes do: a national table in data/interim, one SourceTable, one
    indicator; a table not built yet leaves its indicator missing, with the reason."""
    from geo._io import write_parquet
    from geo.settings import load_settings

    s = load_settings(environ={}, data_dir=tmp_path / "data")
    table = dashboard.interim_table("emplois", "emplois_communes.parquet",
                                    "private jobs per commune: pvdgeo fetch urssaf",
                                    datasets_metadata="sources")
    tables, missing = {}, {}
    with pytest.raises(InputFileError, match=r"emplois_communes\.parquet does not exist"):
        table.read(s)
    ref = _reference(4)
    write_parquet(pd.DataFrame({"insee": ref["insee"][:3], "nom": "x",
                                "emplois_prives": [10.0, 0.0, 5.0]}),
                  s.interim_dir / "emplois_communes.parquet",
                  metadata={"sources": ["urssaf_emplois"]})
    tables["emplois"] = table.read(s)
    ind = DashboardIndicator(key="emplois_prives", label="Emplois salariés privés",
                             unit="nombre", theme="population", tables=("emplois",), digits=0)
    board = dashboard.dashboard_table(ref, tables, indicators=[ind], missing=missing)
    assert board.table["emplois_prives"].tolist()[:3] == [10.0, 0.0, 5.0]
    assert np.isnan(board.table["emplois_prives"].iloc[3])
    assert board.sources["emplois_prives"] == ("urssaf_emplois",)
    assert dashboard.indicator_classes(board)["emplois_prives"] is not None
